import Foundation

/// diffusers' `AutoencoderKL` config.json (autoencoders/autoencoder_kl.py); keys are diffusers' keys
/// and absent keys take diffusers' defaults.
public struct AutoencoderKLConfig: Codable, Equatable, Sendable {
    public var className: String
    public var diffusersVersion: String?
    public var inChannels: Int
    public var outChannels: Int
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var actFn: String
    public var latentChannels: Int
    public var normNumGroups: Int
    public var sampleSize: IntOrList
    public var scalingFactor: Float
    public var shiftFactor: Float?
    public var latentsMean: [Float]?
    public var latentsStd: [Float]?
    public var forceUpcast: Bool
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case diffusersVersion = "_diffusers_version"
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block"
        case actFn = "act_fn"
        case latentChannels = "latent_channels"
        case normNumGroups = "norm_num_groups"
        case sampleSize = "sample_size"
        case scalingFactor = "scaling_factor"
        case shiftFactor = "shift_factor"
        case latentsMean = "latents_mean"
        case latentsStd = "latents_std"
        case forceUpcast = "force_upcast"
        case useQuantConv = "use_quant_conv"
        case usePostQuantConv = "use_post_quant_conv"
        case midBlockAddAttention = "mid_block_add_attention"
    }

    /// diffusers' defaults, with the given channels per block.
    public init(blockOutChannels: [Int] = [64], layersPerBlock: Int = 1, latentChannels: Int = 4, normNumGroups: Int = 32) {
        className = "AutoencoderKL"
        diffusersVersion = nil
        inChannels = 3
        outChannels = 3
        downBlockTypes = Array(repeating: "DownEncoderBlock2D", count: blockOutChannels.count)
        upBlockTypes = Array(repeating: "UpDecoderBlock2D", count: blockOutChannels.count)
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        actFn = "silu"
        self.latentChannels = latentChannels
        self.normNumGroups = normNumGroups
        sampleSize = .single(32)
        scalingFactor = 0.18215
        shiftFactor = nil
        latentsMean = nil
        latentsStd = nil
        forceUpcast = true
        useQuantConv = true
        usePostQuantConv = true
        midBlockAddAttention = true
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? "AutoencoderKL"
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 3
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 3
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes) ?? ["DownEncoderBlock2D"]
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes) ?? ["UpDecoderBlock2D"]
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? [64]
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? 1
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? "silu"
        latentChannels = try c.decodeIfPresent(Int.self, forKey: .latentChannels) ?? 4
        normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups) ?? 32
        sampleSize = try c.decodeIfPresent(IntOrList.self, forKey: .sampleSize) ?? .single(32)
        scalingFactor = try c.decodeIfPresent(Float.self, forKey: .scalingFactor) ?? 0.18215
        shiftFactor = try c.decodeIfPresent(Float.self, forKey: .shiftFactor)
        latentsMean = try c.decodeIfPresent([Float].self, forKey: .latentsMean)
        latentsStd = try c.decodeIfPresent([Float].self, forKey: .latentsStd)
        forceUpcast = try c.decodeIfPresent(Bool.self, forKey: .forceUpcast) ?? true
        useQuantConv = try c.decodeIfPresent(Bool.self, forKey: .useQuantConv) ?? true
        usePostQuantConv = try c.decodeIfPresent(Bool.self, forKey: .usePostQuantConv) ?? true
        midBlockAddAttention = try c.decodeIfPresent(Bool.self, forKey: .midBlockAddAttention) ?? true
    }

    /// Reads `config.json` at `path`.
    public static func load(path: String) throws -> AutoencoderKLConfig {
        let config = try ConfigFile.load(AutoencoderKLConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    /// Throws `badConfig` naming the first key this implementation cannot build.
    public func validate(file: String = "config.json") throws {
        func bad(_ key: CodingKeys, _ reason: String) -> ModelError { .badConfig(file: file, key: key.rawValue, reason: reason) }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw bad(.blockOutChannels, "needs at least one positive channel count, got \(blockOutChannels)")
        }
        if let index = downBlockTypes.firstIndex(where: { $0 != "DownEncoderBlock2D" }) {
            throw bad(.downBlockTypes, "unsupported block \"\(downBlockTypes[index])\" (supported: DownEncoderBlock2D)")
        }
        if let index = upBlockTypes.firstIndex(where: { $0 != "UpDecoderBlock2D" }) {
            throw bad(.upBlockTypes, "unsupported block \"\(upBlockTypes[index])\" (supported: UpDecoderBlock2D)")
        }
        guard downBlockTypes.count == blockOutChannels.count else {
            throw bad(.downBlockTypes, "\(downBlockTypes.count) blocks for \(blockOutChannels.count) block_out_channels")
        }
        guard upBlockTypes.count == blockOutChannels.count else {
            throw bad(.upBlockTypes, "\(upBlockTypes.count) blocks for \(blockOutChannels.count) block_out_channels")
        }
        guard actFn == "silu" || actFn == "swish" else { throw bad(.actFn, "unsupported activation \"\(actFn)\" (supported: silu)") }
        guard layersPerBlock >= 1 else { throw bad(.layersPerBlock, "must be at least 1, got \(layersPerBlock)") }
        guard inChannels > 0 else { throw bad(.inChannels, "must be positive, got \(inChannels)") }
        guard outChannels > 0 else { throw bad(.outChannels, "must be positive, got \(outChannels)") }
        guard latentChannels > 0 else { throw bad(.latentChannels, "must be positive, got \(latentChannels)") }
        guard normNumGroups > 0, blockOutChannels.allSatisfy({ $0 % normNumGroups == 0 }) else {
            throw bad(.normNumGroups, "\(normNumGroups) groups do not divide block_out_channels \(blockOutChannels)")
        }
        if let latentsMean, latentsMean.count != latentChannels {
            throw bad(.latentsMean, "\(latentsMean.count) values for \(latentChannels) latent channels")
        }
        if let latentsStd, latentsStd.count != latentChannels {
            throw bad(.latentsStd, "\(latentsStd.count) values for \(latentChannels) latent channels")
        }
    }
}
