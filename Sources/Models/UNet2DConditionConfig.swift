import Foundation

/// diffusers' `UNet2DConditionModel` config.json (unets/unet_2d_condition.py), Stable Diffusion's
/// image U-Net and AnimateDiff's image half; keys are diffusers' keys and absent keys take
/// diffusers' defaults. Keys of features not built here must keep their defaults (`validate`).
public struct UNet2DConditionConfig: Codable, Equatable, Sendable {
    public var className: String
    public var diffusersVersion: String?
    public var sampleSize: IntOrList?
    public var inChannels: Int
    public var outChannels: Int
    public var downBlockTypes: [String]
    public var upBlockTypes: [String]
    public var blockOutChannels: [Int]
    public var layersPerBlock: IntOrList
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var actFn: String
    public var normNumGroups: Int?
    public var normEps: Float
    public var crossAttentionDim: Int
    public var transformerLayersPerBlock: IntOrList
    /// The heads of each block's transformers when `num_attention_heads` is null (diffusers' naming
    /// quirk): block i gets `attention_head_dim[i]` heads of `channels / attention_head_dim[i]` channels.
    public var attentionHeadDim: IntOrList
    public var numAttentionHeads: IntOrList?
    public var useLinearProjection: Bool
    public var midBlockType: String?
    /// Keys whose values are not diffusers' defaults, for features this implementation does not build.
    var unsupported: [String: String] = [:]

    enum CodingKeys: String, CodingKey, CaseIterable {
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
        case transformerLayersPerBlock = "transformer_layers_per_block"
        case attentionHeadDim = "attention_head_dim"
        case numAttentionHeads = "num_attention_heads"
        case useLinearProjection = "use_linear_projection"
        case midBlockType = "mid_block_type"
    }

    /// Keys of `UNet2DConditionModel.__init__` for features not built here, with their defaults.
    static let fixedDefaults: [String: FixedConfigValue] = [
        "center_input_sample": .bool(false), "flip_sin_to_cos": .bool(true), "freq_shift": .number(0),
        "only_cross_attention": .bool(false), "dual_cross_attention": .bool(false),
        "reverse_transformer_layers_per_block": .null, "encoder_hid_dim": .null, "encoder_hid_dim_type": .null,
        "class_embed_type": .null, "addition_embed_type": .null, "addition_time_embed_dim": .null,
        "num_class_embeds": .null, "resnet_time_scale_shift": .string("default"), "resnet_skip_time_act": .bool(false),
        "resnet_out_scale_factor": .number(1), "time_embedding_type": .string("positional"),
        "time_embedding_dim": .null, "time_embedding_act_fn": .null, "timestep_post_act": .null,
        "time_cond_proj_dim": .null, "conv_in_kernel": .number(3), "conv_out_kernel": .number(3),
        "projection_class_embeddings_input_dim": .null, "attention_type": .string("default"),
        "class_embeddings_concat": .bool(false), "mid_block_only_cross_attention": .null,
        "cross_attention_norm": .null, "dropout": .number(0), "addition_embed_type_num_heads": .number(64),
    ]

    /// A config with the given layout: cross-attention down blocks except the last, mirrored up blocks.
    public init(blockOutChannels: [Int] = [320, 640, 1280, 1280], layersPerBlock: Int = 2, normNumGroups: Int = 32,
                crossAttentionDim: Int = 1280, attentionHeads: Int = 8, inChannels: Int = 4, outChannels: Int = 4,
                sampleSize: Int? = nil) {
        className = "UNet2DConditionModel"
        diffusersVersion = nil
        self.sampleSize = sampleSize.map { .single($0) }
        self.inChannels = inChannels
        self.outChannels = outChannels
        let count = blockOutChannels.count
        downBlockTypes = Array(repeating: "CrossAttnDownBlock2D", count: max(count - 1, 0)) + ["DownBlock2D"]
        upBlockTypes = ["UpBlock2D"] + Array(repeating: "CrossAttnUpBlock2D", count: max(count - 1, 0))
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = .single(layersPerBlock)
        downsamplePadding = 1
        midBlockScaleFactor = 1
        actFn = "silu"
        self.normNumGroups = normNumGroups
        normEps = 1e-5
        self.crossAttentionDim = crossAttentionDim
        transformerLayersPerBlock = .single(1)
        attentionHeadDim = .single(attentionHeads)
        numAttentionHeads = nil
        useLinearProjection = false
        midBlockType = "UNetMidBlock2DCrossAttn"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? "UNet2DConditionModel"
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        sampleSize = try c.decodeIfPresent(IntOrList.self, forKey: .sampleSize)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 4
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 4
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes)
            ?? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes)
            ?? ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? [320, 640, 1280, 1280]
        layersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .layersPerBlock) ?? .single(2)
        downsamplePadding = try c.decodeIfPresent(Int.self, forKey: .downsamplePadding) ?? 1
        midBlockScaleFactor = try c.decodeIfPresent(Float.self, forKey: .midBlockScaleFactor) ?? 1
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? "silu"
        normNumGroups = c.contains(.normNumGroups) ? try c.decodeIfPresent(Int.self, forKey: .normNumGroups) : 32
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-5
        crossAttentionDim = try c.decodeIfPresent(Int.self, forKey: .crossAttentionDim) ?? 1280
        transformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .transformerLayersPerBlock) ?? .single(1)
        attentionHeadDim = try c.decodeIfPresent(IntOrList.self, forKey: .attentionHeadDim) ?? .single(8)
        numAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .numAttentionHeads)
        useLinearProjection = try c.decodeIfPresent(Bool.self, forKey: .useLinearProjection) ?? false
        midBlockType = c.contains(.midBlockType) ? try c.decodeIfPresent(String.self, forKey: .midBlockType) : "UNetMidBlock2DCrossAttn"
        unsupported = try decoder.settingsOffDefault(Self.fixedDefaults)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(className, forKey: .className)
        try c.encodeIfPresent(diffusersVersion, forKey: .diffusersVersion)
        try c.encodeIfPresent(sampleSize, forKey: .sampleSize)
        try c.encode(inChannels, forKey: .inChannels)
        try c.encode(outChannels, forKey: .outChannels)
        try c.encode(downBlockTypes, forKey: .downBlockTypes)
        try c.encode(upBlockTypes, forKey: .upBlockTypes)
        try c.encode(blockOutChannels, forKey: .blockOutChannels)
        try c.encode(layersPerBlock, forKey: .layersPerBlock)
        try c.encode(downsamplePadding, forKey: .downsamplePadding)
        try c.encode(midBlockScaleFactor, forKey: .midBlockScaleFactor)
        try c.encode(actFn, forKey: .actFn)
        try c.encode(normNumGroups, forKey: .normNumGroups)
        try c.encode(normEps, forKey: .normEps)
        try c.encode(crossAttentionDim, forKey: .crossAttentionDim)
        try c.encode(transformerLayersPerBlock, forKey: .transformerLayersPerBlock)
        try c.encode(attentionHeadDim, forKey: .attentionHeadDim)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(useLinearProjection, forKey: .useLinearProjection)
        try c.encode(midBlockType, forKey: .midBlockType)
    }

    /// Reads `config.json` at `path` and validates it.
    public static func load(path: String) throws -> UNet2DConditionConfig {
        let config = try ConfigFile.load(UNet2DConditionConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    /// Heads per block: `num_attention_heads`, or else `attention_head_dim` (diffusers' fallback).
    public var blockHeads: [Int] { (numAttentionHeads ?? attentionHeadDim).perBlock(blockOutChannels.count) }

    /// Throws `badConfig` naming the first key this implementation (or diffusers) cannot build.
    public func validate(file: String = "config.json") throws {
        func bad(_ key: String, _ reason: String) -> ModelError { .badConfig(file: file, key: key, reason: reason) }
        if let key = unsupported.keys.sorted().first { throw bad(key, unsupported[key]!) }
        let count = blockOutChannels.count
        guard let midBlockType, midBlockType == "UNetMidBlock2DCrossAttn" else {
            throw bad(CodingKeys.midBlockType.rawValue, "\(midBlockType.map { "\"\($0)\"" } ?? "null") is not supported (only UNetMidBlock2DCrossAttn)")
        }
        try ImageUNetLayout.checkBlocks(file: file, count: count, blockOutChannels: blockOutChannels,
                                        down: (CodingKeys.downBlockTypes.rawValue, downBlockTypes, "CrossAttnDownBlock2D", "DownBlock2D"),
                                        up: (CodingKeys.upBlockTypes.rawValue, upBlockTypes, "CrossAttnUpBlock2D", "UpBlock2D"))
        try ImageUNetLayout.checkCommon(file: file, actFn: actFn, normNumGroups: normNumGroups,
                                        blockOutChannels: blockOutChannels, inChannels: inChannels, outChannels: outChannels,
                                        crossAttentionDim: crossAttentionDim, downsamplePadding: downsamplePadding)
        try ImageUNetLayout.checkPerBlock(file: file, key: CodingKeys.layersPerBlock.rawValue, layersPerBlock, count: count)
        try ImageUNetLayout.checkPerBlock(file: file, key: CodingKeys.transformerLayersPerBlock.rawValue, transformerLayersPerBlock, count: count)
        let headsKey = numAttentionHeads == nil ? CodingKeys.attentionHeadDim.rawValue : CodingKeys.numAttentionHeads.rawValue
        try ImageUNetLayout.checkHeads(file: file, key: headsKey, numAttentionHeads ?? attentionHeadDim, blockOutChannels: blockOutChannels)
    }

    /// The resolved layout (call after `validate`).
    public var layout: ImageUNetLayout {
        let count = blockOutChannels.count
        let transformerLayers = transformerLayersPerBlock.perBlock(count)
        return ImageUNetLayout(
            inChannels: inChannels, outChannels: outChannels, blockOutChannels: blockOutChannels,
            downCrossAttention: downBlockTypes.map { $0.hasPrefix("CrossAttn") },
            upCrossAttention: upBlockTypes.map { $0.hasPrefix("CrossAttn") },
            layersPerBlock: layersPerBlock.perBlock(count), transformerLayersPerBlock: transformerLayers,
            reverseTransformerLayersPerBlock: transformerLayers.reversed(),
            transformerLayersPerMidBlock: transformerLayers.last!, attentionHeads: blockHeads,
            crossAttentionDim: crossAttentionDim, useLinearProjection: useLinearProjection,
            normNumGroups: normNumGroups!, normEps: normEps, downsamplePadding: downsamplePadding,
            midBlockScaleFactor: midBlockScaleFactor, midBlockLayers: 1, motion: nil)
    }
}

extension ImageUNetLayout {
    typealias BlockTypes = (key: String, types: [String], crossAttention: String, plain: String)

    static func checkBlocks(file: String, count: Int, blockOutChannels: [Int], down: BlockTypes, up: BlockTypes) throws {
        guard count >= 1, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw ModelError.badConfig(file: file, key: "block_out_channels", reason: "needs at least one positive channel count, got \(blockOutChannels)")
        }
        for blocks in [down, up] {
            if let bad = blocks.types.first(where: { $0 != blocks.crossAttention && $0 != blocks.plain }) {
                throw ModelError.badConfig(file: file, key: blocks.key,
                                           reason: "unsupported block \"\(bad)\" (supported: \(blocks.crossAttention), \(blocks.plain))")
            }
            guard blocks.types.count == count else {
                throw ModelError.badConfig(file: file, key: blocks.key, reason: "\(blocks.types.count) blocks for \(count) block_out_channels")
            }
        }
    }

    static func checkCommon(file: String, actFn: String, normNumGroups: Int?, blockOutChannels: [Int], inChannels: Int,
                            outChannels: Int, crossAttentionDim: Int, downsamplePadding: Int) throws {
        func bad(_ key: String, _ reason: String) -> ModelError { .badConfig(file: file, key: key, reason: reason) }
        guard actFn == "silu" || actFn == "swish" else { throw bad("act_fn", "unsupported activation \"\(actFn)\" (supported: silu)") }
        guard let groups = normNumGroups else { throw bad("norm_num_groups", "null (no group norm) is not supported") }
        guard groups > 0, blockOutChannels.allSatisfy({ $0 % groups == 0 }) else {
            throw bad("norm_num_groups", "\(groups) groups do not divide block_out_channels \(blockOutChannels)")
        }
        guard inChannels > 0 else { throw bad("in_channels", "must be positive, got \(inChannels)") }
        guard outChannels > 0 else { throw bad("out_channels", "must be positive, got \(outChannels)") }
        guard downsamplePadding >= 0 else { throw bad("downsample_padding", "must not be negative") }
        guard crossAttentionDim > 0 else { throw bad("cross_attention_dim", "must be positive, got \(crossAttentionDim)") }
    }

    static func checkPerBlock(file: String, key: String, _ value: IntOrList, count: Int, minimum: Int = 1) throws {
        let values = value.perBlock(count)
        guard values.count == count else {
            throw ModelError.badConfig(file: file, key: key, reason: "\(values.count) values for \(count) blocks")
        }
        if let bad = values.first(where: { $0 < minimum }) {
            throw ModelError.badConfig(file: file, key: key, reason: "must be at least \(minimum), got \(bad)")
        }
    }

    static func checkHeads(file: String, key: String, _ heads: IntOrList, blockOutChannels: [Int]) throws {
        try checkPerBlock(file: file, key: key, heads, count: blockOutChannels.count)
        for (channels, count) in zip(blockOutChannels, heads.perBlock(blockOutChannels.count)) where channels % count != 0 {
            throw ModelError.badConfig(file: file, key: key, reason: "\(count) heads do not divide block channels \(channels)")
        }
    }
}
