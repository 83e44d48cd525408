import Foundation

/// diffusers' `MotionAdapter` config.json (unets/unet_motion_model.py): AnimateDiff's motion
/// modules for an image U-Net with `block_out_channels`. Keys are diffusers' keys; absent keys take
/// diffusers' defaults.
public struct MotionAdapterConfig: Codable, Equatable, Sendable {
    public var className: String
    public var diffusersVersion: String?
    public var blockOutChannels: [Int]
    public var motionLayersPerBlock: IntOrList
    public var motionTransformerLayersPerBlock: IntOrList
    public var motionMidBlockLayersPerBlock: Int
    public var motionTransformerLayersPerMidBlock: IntOrList
    public var motionNumAttentionHeads: IntOrList
    public var motionNormNumGroups: Int
    public var motionMaxSeqLength: Int
    public var useMotionMidBlock: Bool
    /// Must be null: an adapter with its own `conv_in` (AnimateDiff's sparse-control inputs) is not supported.
    public var convInChannels: Int?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case diffusersVersion = "_diffusers_version"
        case blockOutChannels = "block_out_channels"
        case motionLayersPerBlock = "motion_layers_per_block"
        case motionTransformerLayersPerBlock = "motion_transformer_layers_per_block"
        case motionMidBlockLayersPerBlock = "motion_mid_block_layers_per_block"
        case motionTransformerLayersPerMidBlock = "motion_transformer_layers_per_mid_block"
        case motionNumAttentionHeads = "motion_num_attention_heads"
        case motionNormNumGroups = "motion_norm_num_groups"
        case motionMaxSeqLength = "motion_max_seq_length"
        case useMotionMidBlock = "use_motion_mid_block"
        case convInChannels = "conv_in_channels"
    }

    public init(blockOutChannels: [Int], layersPerBlock: Int = 2, heads: Int = 8, normNumGroups: Int = 32,
                maxSequenceLength: Int = 32, useMidBlock: Bool = true) {
        className = "MotionAdapter"
        diffusersVersion = nil
        self.blockOutChannels = blockOutChannels
        motionLayersPerBlock = .single(layersPerBlock)
        motionTransformerLayersPerBlock = .single(1)
        motionMidBlockLayersPerBlock = 1
        motionTransformerLayersPerMidBlock = .single(1)
        motionNumAttentionHeads = .single(heads)
        motionNormNumGroups = normNumGroups
        motionMaxSeqLength = maxSequenceLength
        useMotionMidBlock = useMidBlock
        convInChannels = nil
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        className = try c.decodeIfPresent(String.self, forKey: .className) ?? "MotionAdapter"
        diffusersVersion = try c.decodeIfPresent(String.self, forKey: .diffusersVersion)
        blockOutChannels = try c.decodeIfPresent([Int].self, forKey: .blockOutChannels) ?? [320, 640, 1280, 1280]
        motionLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .motionLayersPerBlock) ?? .single(2)
        motionTransformerLayersPerBlock = try c.decodeIfPresent(IntOrList.self, forKey: .motionTransformerLayersPerBlock) ?? .single(1)
        motionMidBlockLayersPerBlock = try c.decodeIfPresent(Int.self, forKey: .motionMidBlockLayersPerBlock) ?? 1
        motionTransformerLayersPerMidBlock = try c.decodeIfPresent(IntOrList.self, forKey: .motionTransformerLayersPerMidBlock) ?? .single(1)
        motionNumAttentionHeads = try c.decodeIfPresent(IntOrList.self, forKey: .motionNumAttentionHeads) ?? .single(8)
        motionNormNumGroups = try c.decodeIfPresent(Int.self, forKey: .motionNormNumGroups) ?? 32
        motionMaxSeqLength = try c.decodeIfPresent(Int.self, forKey: .motionMaxSeqLength) ?? 32
        useMotionMidBlock = try c.decodeIfPresent(Bool.self, forKey: .useMotionMidBlock) ?? true
        convInChannels = try c.decodeIfPresent(Int.self, forKey: .convInChannels)
    }

    public static func load(path: String) throws -> MotionAdapterConfig {
        let config = try ConfigFile.load(MotionAdapterConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    public func validate(file: String = "config.json") throws {
        func bad(_ key: CodingKeys, _ reason: String) -> ModelError { .badConfig(file: file, key: key.rawValue, reason: reason) }
        let count = blockOutChannels.count
        guard count >= 1, blockOutChannels.allSatisfy({ $0 > 0 }) else {
            throw bad(.blockOutChannels, "needs at least one positive channel count, got \(blockOutChannels)")
        }
        if convInChannels != nil { throw bad(.convInChannels, "an adapter with its own conv_in is not supported (must be null)") }
        try ImageUNetLayout.checkPerBlock(file: file, key: CodingKeys.motionLayersPerBlock.rawValue, motionLayersPerBlock, count: count)
        try ImageUNetLayout.checkPerBlock(file: file, key: CodingKeys.motionTransformerLayersPerBlock.rawValue,
                                          motionTransformerLayersPerBlock, count: count)
        try ImageUNetLayout.checkHeads(file: file, key: CodingKeys.motionNumAttentionHeads.rawValue, motionNumAttentionHeads,
                                       blockOutChannels: blockOutChannels)
        guard motionMidBlockLayersPerBlock >= 1 else { throw bad(.motionMidBlockLayersPerBlock, "must be at least 1") }
        guard case .single(let midLayers) = motionTransformerLayersPerMidBlock, midLayers >= 1 else {
            throw bad(.motionTransformerLayersPerMidBlock, "must be one number of at least 1")
        }
        guard motionNormNumGroups > 0, blockOutChannels.allSatisfy({ $0 % motionNormNumGroups == 0 }) else {
            throw bad(.motionNormNumGroups, "\(motionNormNumGroups) groups do not divide block_out_channels \(blockOutChannels)")
        }
        guard motionMaxSeqLength >= 1 else { throw bad(.motionMaxSeqLength, "must be at least 1, got \(motionMaxSeqLength)") }
    }

    /// The motion layout these modules give a U-Net (call after `validate`).
    public var motionLayout: MotionLayout {
        let count = blockOutChannels.count
        let layers = motionTransformerLayersPerBlock.perBlock(count)
        return MotionLayout(heads: motionNumAttentionHeads.perBlock(count), maxSequenceLength: motionMaxSeqLength,
                            layersPerBlock: layers, reverseLayersPerBlock: layers.reversed(), useMidBlock: useMotionMidBlock,
                            layersPerMidBlock: motionTransformerLayersPerMidBlock.perBlock(1)[0])
    }
}
