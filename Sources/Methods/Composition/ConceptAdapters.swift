import Adapters
import Checkpoints
import Diffusion
import Models
import Tensor

/// The concept LoRAs of a composition, loaded side by side onto a pipeline's U-Net and text encoder
/// without being merged (diffusers' `load_lora_weights(..., adapter_name=...)` for each), so that a
/// method can switch them per U-Net pass (`set_adapters`) or read their factors per layer.
///
/// Every adapter starts disabled: the pipeline computes with its base weights until a method
/// activates one. Each keeps the user's strength as its multiplier.
public final class ConceptAdapters {
    public let pipeline: TextToVideoPipeline
    public let unet: AdapterSet
    public let textEncoder: AdapterSet
    /// Adapter names in the order loaded.
    public private(set) var names: [String] = []

    public init(pipeline: TextToVideoPipeline) {
        self.pipeline = pipeline
        unet = AdapterSet(model: pipeline.unet, component: "unet")
        textEncoder = AdapterSet(model: pipeline.textEncoder, component: "text_encoder")
    }

    /// What loading one file did.
    public struct Loaded {
        public let name: String
        public let path: String
        public let metadata: LoRAFileMetadata
        /// Module paths of the U-Net that received a LoRA.
        public let unetModules: [String]
        /// True when the file also adapts the text encoder.
        public let adaptsTextEncoder: Bool
        /// Tensors for components this pipeline lacks, ignored.
        public let ignoredTensors: [String]
        /// What did not fit the model and was skipped (`allowPartial` only).
        public let skipped: [LoRAFileProblem]
    }

    /// Loads `path` as adapter `name` at strength `scale` onto the U-Net (unprefixed or `unet.`
    /// keys) and the text encoder (`text_encoder.` keys), disabled. A file whose metadata names a
    /// base model with another U-Net config is refused (`baseModelMismatch`) before anything is
    /// attached; keys that do not fit the model fail with the loader's list of them, or with
    /// `allowPartial` are skipped and listed in `skipped`. On failure nothing of the file stays loaded.
    @discardableResult
    public func load(_ path: String, as name: String, scale: Float, allowPartial: Bool = false) throws -> Loaded {
        guard !names.contains(name) else { throw AdapterError.duplicateAdapter(name) }
        let file = try SafeTensorsFile(path: path)
        let metadata = LoRAFileMetadata(raw: file.metadata)
        if let stored = metadata.baseModel {
            let expected = try BaseModelIdentity(name: "this model", unet: pipeline.unet)
            if stored.unetConfigSHA256 != expected.unetConfigSHA256 {
                throw CompositionError.baseModelMismatch(
                    file: path, stored: "\(stored.name), U-Net config \(stored.unetConfigSHA256.prefix(12))",
                    expected: "U-Net config \(expected.unetConfigSHA256.prefix(12))")
            }
        }
        let loaded = try PipelineLoRAFile.load(path, as: name, multiplier: scale, allowPartial: allowPartial,
                                               unet: unet, textEncoder: textEncoder)
        for (set, report) in [(unet, loaded.unet), (textEncoder, loaded.textEncoder)] where report != nil {
            try set.setEnabled(false, for: name)
        }
        names.append(name)
        return Loaded(name: name, path: path, metadata: metadata, unetModules: loaded.unet?.modulePaths ?? [],
                      adaptsTextEncoder: loaded.textEncoder != nil, ignoredTensors: loaded.ignoredTensors, skipped: loaded.skipped)
    }

    /// Enables exactly the adapters `active` (each at its strength) on both components and disables
    /// the others: diffusers' `set_adapters(active)`.
    public func activate(_ active: [String]) throws {
        for name in active where !names.contains(name) {
            throw AdapterError.unknownAdapter(name, known: names)
        }
        for set in [unet, textEncoder] {
            for name in set.adapterNames { try set.setEnabled(active.contains(name), for: name) }
        }
    }

    /// Every adapter off: the base model.
    public func deactivateAll() throws { try activate([]) }

    /// The text encoder's states `[1, L, D]` for `text` with only `adapter`'s text-encoder LoRA
    /// active (none: the base encoder), as diffusers' `encode_prompt` after `set_adapters`.
    public func encodePrompt(_ text: String, adapter: String?) throws -> Tensor {
        let previous = textEncoder.summaries().filter(\.isEnabled).map(\.name)
        defer {
            for name in textEncoder.adapterNames { try? textEncoder.setEnabled(previous.contains(name), for: name) }
        }
        for name in textEncoder.adapterNames { try textEncoder.setEnabled(name == adapter, for: name) }
        return try pipeline.encodePrompt(text)
    }

    /// `encodePrompt` for a conditional (positive) prompt: through the pipeline's
    /// `conditionalTextTransform` (DECOR) when one is set; negative prompts use `encodePrompt`.
    public func encodeConditional(_ text: String, adapter: String?) throws -> Tensor {
        let states = try encodePrompt(text, adapter: adapter)
        return try pipeline.conditionalTextTransform.map { try $0(states) } ?? states
    }

    /// The U-Net LoRAs of `adapter` by module path (`…attn2.to_k`), for methods that apply an adapter
    /// to part of a layer's input only.
    public func unetLoRAsByPath(of adapter: String) throws -> [String: LoRA] {
        guard unet.adapterNames.contains(adapter) else { return [:] }
        return Dictionary(try unet.loras(of: adapter).map { ($0.modulePath, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The strength `adapter` was loaded at.
    public func scale(of adapter: String) throws -> Float {
        if unet.adapterNames.contains(adapter) { return try unet.multiplier(of: adapter) }
        return try textEncoder.multiplier(of: adapter)
    }
}
