/// The shape of an image U-Net, with or without motion modules: what `UNet2DConditionConfig` and
/// `UNetMotionConfig` both describe, resolved to one value per block (lists as diffusers expands
/// them). Down-block order for per-block values unless named `reverse…` (up-block order).
public struct ImageUNetLayout: Equatable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    /// Per down block: `CrossAttnDownBlock…` (true) or `DownBlock…`.
    public var downCrossAttention: [Bool]
    /// Per up block (deepest first): `CrossAttnUpBlock…` or `UpBlock…`.
    public var upCrossAttention: [Bool]
    public var layersPerBlock: [Int]
    public var transformerLayersPerBlock: [Int]
    public var reverseTransformerLayersPerBlock: [Int]
    public var transformerLayersPerMidBlock: Int
    /// Spatial attention heads per block; each head has `channels / heads` channels.
    public var attentionHeads: [Int]
    public var crossAttentionDim: Int
    public var useLinearProjection: Bool
    public var normNumGroups: Int
    public var normEps: Float
    public var downsamplePadding: Int
    public var midBlockScaleFactor: Float
    public var midBlockLayers: Int
    /// The motion modules, or nil for the image U-Net alone.
    public var motion: MotionLayout?

    public var timeEmbeddingDimension: Int { blockOutChannels[0] * 4 }

    func spatialTransformer(channels: Int, block: Int, layers: Int) -> Transformer2DModel {
        let heads = attentionHeads[block]
        return Transformer2DModel(heads: heads, headDimension: channels / heads, inChannels: channels, layers: layers,
                                  normGroups: normNumGroups, crossAttentionDimension: crossAttentionDim,
                                  useLinearProjection: useLinearProjection)
    }
}

/// AnimateDiff's motion modules in a U-Net (diffusers' `MotionAdapter` / `UNetMotionModel` keys).
public struct MotionLayout: Equatable, Sendable {
    /// Motion-module heads per block (`motion_num_attention_heads`); each head has `channels / heads` channels.
    public var heads: [Int]
    /// Frames the sinusoidal positions cover (`motion_max_seq_length`).
    public var maxSequenceLength: Int
    /// Transformer blocks per motion module, per down block (`temporal_transformer_layers_per_block`).
    public var layersPerBlock: [Int]
    public var reverseLayersPerBlock: [Int]
    /// Whether the middle block has motion modules (`use_motion_mid_block`).
    public var useMidBlock: Bool
    public var layersPerMidBlock: Int

    /// `count` motion modules of block `block`'s `channels` and heads, each `layers` transformer blocks deep.
    func modules(_ count: Int, channels: Int, block: Int, layers: Int, groups: Int) -> [TransformerTemporalModel] {
        (0..<count).map { _ in
            TransformerTemporalModel(heads: heads[block], headDimension: channels / heads[block], inChannels: channels,
                                     layers: layers, normGroups: groups, positionalEmbeddingLength: maxSequenceLength)
        }
    }
}
