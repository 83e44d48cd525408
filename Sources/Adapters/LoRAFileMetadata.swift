import Foundation
import Models

/// Which base model an adapter was trained on: the model folder's name and the SHA-256 of its U-Net
/// config (canonical JSON: sorted keys, without `_diffusers_version`, so that re-saving the config
/// with another diffusers version or other whitespace does not change it).
public struct BaseModelIdentity: Codable, Equatable, Sendable {
    public var name: String
    public var unetConfigSHA256: String

    enum CodingKeys: String, CodingKey {
        case name
        case unetConfigSHA256 = "unet_config_sha256"
    }

    public init(name: String, unetConfigSHA256: String) {
        self.name = name
        self.unetConfigSHA256 = unetConfigSHA256
    }

    public init(name: String, unetConfig: UNet3DConfig) throws {
        self.init(name: name, unetConfigSHA256: SHA256.hexDigest(try unetConfig.canonicalJSON()))
    }

    public init(name: String, unet: any Denoiser) throws {
        self.init(name: name, unetConfigSHA256: SHA256.hexDigest(try unet.canonicalConfigJSON()))
    }
}

/// The `__metadata__` of an adapter file, all values strings as safetensors requires:
///
///     format                 "pt" (what diffusers writes)
///     lora_adapter_metadata  diffusers' JSON of PEFT `LoraConfig` fields per component
///                            ({"unet.r": 32, "unet.lora_alpha": 32, "unet.target_modules": [...], ...}),
///                            so that diffusers' `load_lora_weights` restores alpha and rsLoRA
///     rank, alpha            the most common rank and alpha (JSON numbers)
///     target_modules         JSON list of the patterns the adapter was injected with
///     base_model             JSON {"name": ..., "unet_config_sha256": ...}
///     method                 e.g. "motiondirector-temporal"
///     training               JSON object of the training settings (steps, lr, seed, ...)
public struct LoRAFileMetadata: Equatable, Sendable {
    public var method: String?
    public var baseModel: BaseModelIdentity?
    public var training: [String: JSONValue]
    /// Read back from a file (the writer derives them from the adapters).
    public internal(set) var rank: Int?
    public internal(set) var alpha: Float?
    public internal(set) var targetModules: [String]
    /// Every metadata entry as stored, ours and foreign.
    public internal(set) var raw: [String: String]

    public init(method: String? = nil, baseModel: BaseModelIdentity? = nil, training: [String: JSONValue] = [:]) {
        self.method = method
        self.baseModel = baseModel
        self.training = training
        rank = nil
        alpha = nil
        targetModules = []
        raw = [:]
    }

    enum Key {
        static let format = "format"
        static let adapterMetadata = "lora_adapter_metadata"
        static let rank = "rank"
        static let alpha = "alpha"
        static let targetModules = "target_modules"
        static let baseModel = "base_model"
        static let method = "method"
        static let training = "training"
    }

    /// Reads what it recognises from a file's metadata; entries it cannot parse stay in `raw` only.
    public init(raw: [String: String]) {
        self.init()
        self.raw = raw
        method = raw[Key.method]
        if let text = raw[Key.baseModel] {
            baseModel = try? JSONDecoder().decode(BaseModelIdentity.self, from: Data(text.utf8))
        }
        training = raw[Key.training].flatMap(JSONValue.decode)?.object ?? [:]
        rank = raw[Key.rank].flatMap { Int($0) }
        alpha = raw[Key.alpha].flatMap { Float($0) }
        targetModules = raw[Key.targetModules].flatMap(JSONValue.decode)?.array?.compactMap(\.string) ?? []
    }
}
