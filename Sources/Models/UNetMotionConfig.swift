import Foundation

/// diffusers' `UNetMotionModel` config.json (unets/unet_motion_model.py): an image U-Net's keys with
/// `CrossAttnDownBlockMotion`/`DownBlockMotion`/`CrossAttnUpBlockMotion`/`UpBlockMotion` blocks,
/// true `num_attention_heads`, and the motion modules' keys (`motion_max_seq_length`,
/// `motion_num_attention_heads`, `use_motion_mid_block`, `temporal_transformer_layers_per_block`).
/// Absent keys take diffusers' defaults; keys of features not built here must keep them.
public struct UNetMotionConfig: Codable, Equatable, Sendable {
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
    public var reverseTransformerLayersPerBlock: IntOrList?
    public var temporalTransformerLayersPerBlock: IntOrList
    public var reverseTemporalTransformerLayersPerBlock: IntOrList?
    public var transformerLayersPerMidBlock: Int?
    public var temporalTransformerLayersPerMidBlock: Int?
    public var useLinearProjection: Bool
    public var numAttentionHeads: IntOrList
    public var motionMaxSeqLength: Int
    public var motionNumAttentionHeads: IntOrList
    public var useMotionMidBlock: Bool
    public var midBlockLayers: Int
    var unsupported: [String: String] = [:]

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
        case transformerLayersPerBlock = "transformer_layers_per_block"
        case reverseTransformerLayersPerBlock = "reverse_transformer_layers_per_block"
        case temporalTransformerLayersPerBlock = "temporal_transformer_layers_per_block"
        case reverseTemporalTransformerLayersPerBlock = "reverse_temporal_transformer_layers_per_block"
        case transformerLayersPerMidBlock = "transformer_layers_per_mid_block"
        case temporalTransformerLayersPerMidBlock = "temporal_transformer_layers_per_mid_block"
        case useLinearProjection = "use_linear_projection"
        case numAttentionHeads = "num_attention_heads"
        case motionMaxSeqLength = "motion_max_seq_length"
        case motionNumAttentionHeads = "motion_num_attention_heads"
        case useMotionMidBlock = "use_motion_mid_block"
        case midBlockLayers = "mid_block_layers"
    }

    static let fixedDefaults: [String: FixedConfigValue] = [
        "reverse_motion_num_attention_heads": .null, "encoder_hid_dim": .null, "encoder_hid_dim_type": .null,
        "addition_embed_type": .null, "addition_time_embed_dim": .null, "projection_class_embeddings_input_dim": .null,
        "time_cond_proj_dim": .null,
    ]

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? "UNetMotionModel"
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        sampleSize = try c.decodeIfPresent(IntOrList.self, forKey: .sampleSize)
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? 4
        outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? 4
        downBlockTypes = try c.decodeIfPresent([String].self, forKey: .downBlockTypes)
            ?? ["CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "CrossAttnDownBlockMotion", "DownBlockMotion"]
        upBlockTypes = try c.decodeIfPresent([String].self, forKey: .upBlockTypes)
            ?? ["UpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion", "CrossAttnUpBlockMotion"]
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? [320, 640, 1280, 1280]
        layersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .layersPerBlock) ?? .single(2)
        downsamplePadding = try c.decodeIfPresent(Int.self, forKey: .downsamplePadding) ?? 1
        midBlockScaleFactor = try c.decodeIfPresent(Float.self, forKey: .midBlockScaleFactor) ?? 1
        actFn = try c.decodeIfPresent(String.self, forKey: .actFn) ?? "silu"
        normNumGroups = c.contains(.normNumGroups) ? try c.decodeIfPresent(Int.self, forKey: .normNumGroups) : 32
        normEps = try c.decodeIfPresent(Float.self, forKey: .normEps) ?? 1e-5
        crossAttentionDim = try c.decodeIfPresent(Int.self, forKey: .crossAttentionDim) ?? 1280
        transformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .transformerLayersPerBlock) ?? .single(1)
        reverseTransformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .reverseTransformerLayersPerBlock)
        temporalTransformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .temporalTransformerLayersPerBlock) ?? .single(1)
        reverseTemporalTransformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .reverseTemporalTransformerLayersPerBlock)
        transformerLayersPerMidBlock = try c.decodeIfPresent(Int.self, forKey: .transformerLayersPerMidBlock)
        temporalTransformerLayersPerMidBlock = c.contains(.temporalTransformerLayersPerMidBlock)
            ? try c.decodeIfPresent(Int.self, forKey: .temporalTransformerLayersPerMidBlock) : 1
        useLinearProjection = try c.decodeIfPresent(Bool.self, forKey: .useLinearProjection) ?? false
        numAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .numAttentionHeads) ?? .single(8)
        motionMaxSeqLength = try c.decodeIfPresent(Int.self, forKey: .motionMaxSeqLength) ?? 32
        motionNumAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .motionNumAttentionHeads) ?? .single(8)
        useMotionMidBlock = try c.decodeIfPresent(Bool.self, forKey: .useMotionMidBlock) ?? true
        midBlockLayers = try c.decodeIfPresent(Int.self, forKey: .midBlockLayers) ?? 1
        unsupported = try decoder.settingsOffDefault(Self.fixedDefaults)
    }

    /// The config diffusers' `UNetMotionModel.from_unet2d(unet, adapter)` derives: the image U-Net's
    /// keys with Motion blocks, `num_attention_heads` resolved, and the adapter's motion keys.
    public init(image: UNet2DConditionConfig, adapter: MotionAdapterConfig) {
        className = "UNetMotionModel"
        diffusersVersion = image.diffusersVersion
        sampleSize = image.sampleSize
        inChannels = image.inChannels
        outChannels = image.outChannels
        downBlockTypes = image.downBlockTypes.map { $0.hasPrefix("CrossAttn") ? "CrossAttnDownBlockMotion" : "DownBlockMotion" }
        upBlockTypes = image.upBlockTypes.map { $0.hasPrefix("CrossAttn") ? "CrossAttnUpBlockMotion" : "UpBlockMotion" }
        blockOutChannels = image.blockOutChannels
        layersPerBlock = adapter.motionLayersPerBlock
        downsamplePadding = image.downsamplePadding
        midBlockScaleFactor = image.midBlockScaleFactor
        actFn = image.actFn
        normNumGroups = image.normNumGroups
        normEps = image.normEps
        crossAttentionDim = image.crossAttentionDim
        transformerLayersPerBlock = image.transformerLayersPerBlock
        reverseTransformerLayersPerBlock = nil
        temporalTransformerLayersPerBlock = adapter.motionTransformerLayersPerBlock
        reverseTemporalTransformerLayersPerBlock = nil
        transformerLayersPerMidBlock = nil
        temporalTransformerLayersPerMidBlock = adapter.motionTransformerLayersPerMidBlock.perBlock(1)[0]
        useLinearProjection = image.useLinearProjection
        numAttentionHeads = image.numAttentionHeads ?? image.attentionHeadDim
        motionMaxSeqLength = adapter.motionMaxSeqLength
        motionNumAttentionHeads = adapter.motionNumAttentionHeads
        useMotionMidBlock = adapter.useMotionMidBlock
        midBlockLayers = 1
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
        try c.encode(reverseTransformerLayersPerBlock, forKey: .reverseTransformerLayersPerBlock)
        try c.encode(temporalTransformerLayersPerBlock, forKey: .temporalTransformerLayersPerBlock)
        try c.encode(reverseTemporalTransformerLayersPerBlock, forKey: .reverseTemporalTransformerLayersPerBlock)
        try c.encode(transformerLayersPerMidBlock, forKey: .transformerLayersPerMidBlock)
        try c.encode(temporalTransformerLayersPerMidBlock, forKey: .temporalTransformerLayersPerMidBlock)
        try c.encode(useLinearProjection, forKey: .useLinearProjection)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(motionMaxSeqLength, forKey: .motionMaxSeqLength)
        try c.encode(motionNumAttentionHeads, forKey: .motionNumAttentionHeads)
        try c.encode(useMotionMidBlock, forKey: .useMotionMidBlock)
        try c.encode(midBlockLayers, forKey: .midBlockLayers)
    }

    public static func load(path: String) throws -> UNetMotionConfig {
        let config = try ConfigFile.load(UNetMotionConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    public func validate(file: String = "config.json") throws {
        func bad(_ key: CodingKeys, _ reason: String) -> ModelError { .badConfig(file: file, key: key.rawValue, reason: reason) }
        if let key = unsupported.keys.sorted().first { throw ModelError.badConfig(file: file, key: key, reason: unsupported[key]!) }
        let count = blockOutChannels.count
        try ImageUNetLayout.checkBlocks(file: file, count: count, blockOutChannels: blockOutChannels,
                                        down: (CodingKeys.downBlockTypes.rawValue, downBlockTypes, "CrossAttnDownBlockMotion", "DownBlockMotion"),
                                        up: (CodingKeys.upBlockTypes.rawValue, upBlockTypes, "CrossAttnUpBlockMotion", "UpBlockMotion"))
        try ImageUNetLayout.checkCommon(file: file, actFn: actFn, normNumGroups: normNumGroups,
                                        blockOutChannels: blockOutChannels, inChannels: inChannels, outChannels: outChannels,
                                        crossAttentionDim: crossAttentionDim, downsamplePadding: downsamplePadding)
        for (key, value) in [(CodingKeys.layersPerBlock, layersPerBlock), (.transformerLayersPerBlock, transformerLayersPerBlock),
                             (.temporalTransformerLayersPerBlock, temporalTransformerLayersPerBlock)] {
            try ImageUNetLayout.checkPerBlock(file: file, key: key.rawValue, value, count: count)
        }
        for (key, value) in [(CodingKeys.reverseTransformerLayersPerBlock, reverseTransformerLayersPerBlock),
                             (.reverseTemporalTransformerLayersPerBlock, reverseTemporalTransformerLayersPerBlock)] {
            if let value { try ImageUNetLayout.checkPerBlock(file: file, key: key.rawValue, value, count: count) }
        }
        try ImageUNetLayout.checkHeads(file: file, key: CodingKeys.numAttentionHeads.rawValue, numAttentionHeads, blockOutChannels: blockOutChannels)
        try ImageUNetLayout.checkHeads(file: file, key: CodingKeys.motionNumAttentionHeads.rawValue, motionNumAttentionHeads,
                                       blockOutChannels: blockOutChannels)
        guard motionMaxSeqLength >= 1 else { throw bad(.motionMaxSeqLength, "must be at least 1, got \(motionMaxSeqLength)") }
        guard midBlockLayers >= 1 else { throw bad(.midBlockLayers, "must be at least 1, got \(midBlockLayers)") }
        if let layers = transformerLayersPerMidBlock, layers < 1 { throw bad(.transformerLayersPerMidBlock, "must be at least 1") }
        if useMotionMidBlock, (temporalTransformerLayersPerMidBlock ?? 1) < 1 {
            throw bad(.temporalTransformerLayersPerMidBlock, "must be at least 1")
        }
    }

    /// The resolved layout (call after `validate`).
    public var layout: ImageUNetLayout {
        let count = blockOutChannels.count
        let transformerLayers = transformerLayersPerBlock.perBlock(count)
        let temporalLayers = temporalTransformerLayersPerBlock.perBlock(count)
        let motion = MotionLayout(
            heads: motionNumAttentionHeads.perBlock(count), maxSequenceLength: motionMaxSeqLength,
            layersPerBlock: temporalLayers,
            reverseLayersPerBlock: reverseTemporalTransformerLayersPerBlock?.perBlock(count) ?? temporalLayers.reversed(),
            useMidBlock: useMotionMidBlock, layersPerMidBlock: temporalTransformerLayersPerMidBlock ?? 1)
        return ImageUNetLayout(
            inChannels: inChannels, outChannels: outChannels, blockOutChannels: blockOutChannels,
            downCrossAttention: downBlockTypes.map { $0.hasPrefix("CrossAttn") },
            upCrossAttention: upBlockTypes.map { $0.hasPrefix("CrossAttn") },
            layersPerBlock: layersPerBlock.perBlock(count), transformerLayersPerBlock: transformerLayers,
            reverseTransformerLayersPerBlock: reverseTransformerLayersPerBlock?.perBlock(count) ?? transformerLayers.reversed(),
            transformerLayersPerMidBlock: transformerLayersPerMidBlock ?? transformerLayers.last!,
            attentionHeads: numAttentionHeads.perBlock(count), crossAttentionDim: crossAttentionDim,
            useLinearProjection: useLinearProjection, normNumGroups: normNumGroups!, normEps: normEps,
            downsamplePadding: downsamplePadding, midBlockScaleFactor: midBlockScaleFactor, midBlockLayers: midBlockLayers,
            motion: motion)
    }
}
