import Foundation

/// diffusers' `UNet3DConditionModel` config.json (unets/unet_3d_condition.py); keys are diffusers'
/// keys and absent keys take diffusers' defaults.
public struct UNet3DConfig: Codable, Equatable, Sendable {
    public var className: String
    public var diffusersVersion: String?
    public var sampleSize: IntOrList?
    public var inChannels: Int
    public var outChannels: Int
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var actFn: String
    public var normNumGroups: Int?
    public var normEps: Float
    public var crossAttentionDim: Int
    /// Per diffusers' naming bug this is, in effect, the number of heads `nh` the blocks receive:
    /// their transformers get `C / nh` heads of `nh` channels.
    public var attentionHeadDim: IntOrList
    /// Must be absent or null: diffusers raises when it is set (the naming issue, diffusers #2011).
    public var numAttentionHeads: IntOrList?
    public var timeCondProjDim: Int?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case diffusersVersion = "_diffusers_version"
        case sampleSize = "sample_size"
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case downBlockTypes = "down_block_types"
        case upBlockTypes = "up_block_types"
        case blockOutChannels = "block_out_channels"
        case layersPerBlock = "layers_per_block"
        case downsamplePadding = "downsample_padding"
        case midBlockScaleFactor = "mid_block_scale_factor"
        case actFn = "act_fn"
        case normNumGroups = "norm_num_groups"
        case normEps = "norm_eps"
        case crossAttentionDim = "cross_attention_dim"
        case attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads"
        case timeCondProjDim = "time_cond_proj_dim"
    }

    /// A config with the given layout: cross-attention down blocks except the last, mirrored up blocks.
    public init(blockOutChannels: [Int] = [320, 640, 1280, 1280], layersPerBlock: Int = 2, normNumGroups: Int = 32,
                crossAttentionDim: Int = 1024, attentionHeadDim: Int = 64, inChannels: Int = 4, outChannels: Int = 4) {
        className = "UNet3DConditionModel"
        diffusersVersion = nil
        sampleSize = nil
        self.inChannels = inChannels
        self.outChannels = outChannels
        let count = blockOutChannels.count
        downBlockTypes = Array(repeating: "CrossAttnDownBlock3D", count: max(count - 1, 0)) + ["DownBlock3D"]
        upBlockTypes = ["UpBlock3D"] + Array(repeating: "CrossAttnUpBlock3D", count: max(count - 1, 0))
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        downsamplePadding = 1
        midBlockScaleFactor = 1
        actFn = "silu"
        self.normNumGroups = normNumGroups
        normEps = 1e-5
        self.crossAttentionDim = crossAttentionDim
        self.attentionHeadDim = .single(attentionHeadDim)
        numAttentionHeads = nil
        timeCondProjDim = nil
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? "UNet3DConditionModel"
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        sampleSize = try c.decodeIfPresent(IntOrList.self, forKey: .sampleSize)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 4
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 4
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes)
            ?? ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"]
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes)
            ?? ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"]
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? [320, 640, 1280, 1280]
        layersPerBlock = try c.decodeIfPresent(Int.self, forKey: .layersPerBlock) ?? 2
        downsamplePadding = try c.decodeIfPresent(Int.self, forKey: .downsamplePadding) ?? 1
        midBlockScaleFactor = try c.decodeIfPresent(Float.self, forKey: .midBlockScaleFactor) ?? 1
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? "silu"
        // An explicit null is diffusers' "no output norm" (unsupported, reported by validate()).
        if c.contains(.normNumGroups) {
            normNumGroups = try c.decodeIfPresent(Int.self, forKey: .normNumGroups)
        } else {
            normNumGroups = 32
        }
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-5
        crossAttentionDim = try c.decodeIfPresent(Int.self, forKey: .crossAttentionDim) ?? 1024
        attentionHeadDim = try c.decodeIfPresent(IntOrList.self, forKey: .attentionHeadDim) ?? .single(64)
        numAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .numAttentionHeads)
        timeCondProjDim = try c.decodeIfPresent(Int.self, forKey: .timeCondProjDim)
    }

    /// Reads `config.json` at `path` and validates it.
    public static func load(path: String) throws -> UNet3DConfig {
        let config = try ConfigFile.load(UNet3DConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    static let downBlocks: Set<String> = ["CrossAttnDownBlock3D", "DownBlock3D"]
    static let upBlocks: Set<String> = ["CrossAttnUpBlock3D", "UpBlock3D"]

    /// The per-block `num_attention_heads` the blocks receive (`attention_head_dim`, diffusers' quirk).
    public var blockHeadParameters: [Int] { attentionHeadDim.perBlock(blockOutChannels.count) }

    /// Throws `badConfig` naming the first key this implementation (or diffusers) cannot build.
    public func validate(file: String = "config.json") throws {
        func bad(_ key: CodingKeys, _ reason: String) -> ModelError { .badConfig(file: file, key: key.rawValue, reason: reason) }
        let count = blockOutChannels.count
        guard count >= 1, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw bad(.blockOutChannels, "needs at least one positive channel count, got \(blockOutChannels)")
        }
        if let index = downBlockTypes.firstIndex(where: { !Self.downBlocks.contains($0) }) {
            throw bad(.downBlockTypes, "unsupported block \"\(downBlockTypes[index])\" (supported: CrossAttnDownBlock3D, DownBlock3D)")
        }
        if let index = upBlockTypes.firstIndex(where: { !Self.upBlocks.contains($0) }) {
            throw bad(.upBlockTypes, "unsupported block \"\(upBlockTypes[index])\" (supported: CrossAttnUpBlock3D, UpBlock3D)")
        }
        guard downBlockTypes.count == count else {
            throw bad(.downBlockTypes, "\(downBlockTypes.count) blocks for \(count) block_out_channels")
        }
        guard upBlockTypes.count == count else {
            throw bad(.upBlockTypes, "\(upBlockTypes.count) blocks for \(count) block_out_channels")
        }
        if numAttentionHeads != nil {
            throw bad(.numAttentionHeads, "must be null: diffusers' UNet3DConditionModel takes heads from attention_head_dim")
        }
        if timeCondProjDim != nil { throw bad(.timeCondProjDim, "timestep conditioning projection is not supported") }
        guard actFn == "silu" || actFn == "swish" else { throw bad(.actFn, "unsupported activation \"\(actFn)\" (supported: silu)") }
        guard let groups = normNumGroups else { throw bad(.normNumGroups, "null (no group norm) is not supported") }
        guard groups > 0, blockOutChannels.allSatisfy({ $0 % groups == 0 }) else {
            throw bad(.normNumGroups, "\(groups) groups do not divide block_out_channels \(blockOutChannels)")
        }
        guard layersPerBlock >= 1 else { throw bad(.layersPerBlock, "must be at least 1, got \(layersPerBlock)") }
        guard inChannels > 0 else { throw bad(.inChannels, "must be positive, got \(inChannels)") }
        guard outChannels > 0 else { throw bad(.outChannels, "must be positive, got \(outChannels)") }
        guard downsamplePadding >= 0 else { throw bad(.downsamplePadding, "must not be negative") }
        guard crossAttentionDim > 0 else { throw bad(.crossAttentionDim, "must be positive, got \(crossAttentionDim)") }
        guard case .single = attentionHeadDim else {
            // diffusers' transformer_in takes attention_head_dim as one number and fails on a list.
            throw bad(.attentionHeadDim, "must be one number for UNet3DConditionModel, got a list")
        }
        let heads = blockHeadParameters
        for (channels, nh) in zip(blockOutChannels, heads) {
            guard nh > 0, channels % nh == 0 else {
                throw bad(.attentionHeadDim, "\(nh) does not divide block channels \(channels) (blocks use \(channels)/\(nh) heads of \(nh) channels)")
            }
        }
    }
}
