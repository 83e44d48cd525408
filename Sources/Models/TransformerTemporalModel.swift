import Tensor

/// diffusers' `TransformerTemporalModel` (transformers/transformer_temporal.py): attention across
/// the frames of each pixel. `norm` (GroupNorm, eps 1e-6, over `[B, C, F, H, W]`, so statistics span
/// the clip) → tokens `[B·H·W, F, C]` → `proj_in` (Linear) → `transformer_blocks` with
/// `double_self_attention` (attn2 is a second self-attention; no encoder states and no positional
/// embedding) → `proj_out` → back to `[B·F, C, H, W]` → + residual.
///
/// With `positionalEmbeddingLength` it is AnimateDiff's motion module, diffusers'
/// `AnimateDiffTransformer3D` (unets/unet_motion_model.py): the same computation, with each
/// block's sinusoidal frame positions (`pos_embed`, up to `motion_max_seq_length` frames) and GEGLU
/// feed-forward.
public final class TransformerTemporalModel: Module {
    public let heads: Int
    public let headDimension: Int
    public let inChannels: Int
    public let norm: GroupNorm
    public let projIn: Linear
    public let transformerBlocks: ModuleList<BasicTransformerBlock>
    public let projOut: Linear

    public init(heads: Int, headDimension: Int, inChannels: Int, layers: Int = 1, normGroups: Int = 32,
                crossAttentionDimension: Int? = nil, doubleSelfAttention: Bool = true, attentionBias: Bool = false,
                positionalEmbeddingLength: Int? = nil) {
        self.heads = heads
        self.headDimension = headDimension
        self.inChannels = inChannels
        let inner = heads * headDimension
        norm = GroupNorm(groups: normGroups, channels: inChannels, epsilon: 1e-6)
        projIn = Linear(inChannels, inner)
        transformerBlocks = ModuleList((0..<layers).map { _ in
            BasicTransformerBlock(dimension: inner, heads: heads, headDimension: headDimension,
                                  crossAttentionDimension: crossAttentionDimension,
                                  doubleSelfAttention: doubleSelfAttention, attentionBias: attentionBias,
                                  positionalEmbeddingLength: positionalEmbeddingLength)
        })
        projOut = Linear(inner, inChannels)
        super.init()
        child("norm", norm)
        child("proj_in", projIn)
        child("transformer_blocks", transformerBlocks)
        child("proj_out", projOut)
    }

    /// `hiddenStates` `[B·F, C, H, W]` with F = `context.frames`.
    public func callAsFunction(_ hiddenStates: Tensor, context: ForwardContext) throws -> Tensor {
        let (batchFrames, channels, height, width) = (hiddenStates.shape[0], hiddenStates.shape[1], hiddenStates.shape[2], hiddenStates.shape[3])
        let frames = context.frames
        guard frames >= 1, batchFrames % frames == 0 else {
            throw ModelError.badInput("temporal transformer: batch \(batchFrames) is not a multiple of \(frames) frames")
        }
        let batch = batchFrames / frames
        if !GradMode.isEnabled && projIn.deltas.isEmpty && projOut.deltas.isEmpty {
            // Inference: the same computation without the three permutes (Tensor.projectChannelMajor).
            let normed = try Tensor.groupNormAcrossFrames(hiddenStates, frames: frames, groups: norm.groups,
                                                          weight: norm.weight, bias: norm.bias, epsilon: norm.epsilon)
            var states = try Tensor.projectChannelMajor(normed, frames: frames, weight: projIn.weight, bias: projIn.bias,
                                                        order: .pixelMajor)
                .reshaped([batch * height * width, frames, projIn.outFeatures])
            for block in transformerBlocks {
                states = try block(states, encoderHiddenStates: nil, context: context)
            }
            return try Tensor.projectToChannelMajor(states, frames: frames, weight: projOut.weight, bias: projOut.bias,
                                                    residual: hiddenStates, order: .pixelMajor)
        }
        let clips = try hiddenStates.reshaped([batch, frames, channels, height, width]).permuted([0, 2, 1, 3, 4])
        let normed = try norm(clips)
        let tokens = try normed.permuted([0, 3, 4, 2, 1]).reshaped([batch * height * width, frames, channels])
        var states = try projIn(tokens)
        for block in transformerBlocks {
            // The blocks get no encoder states: diffusers' 3-D blocks call temp_attn without them.
            states = try block(states, encoderHiddenStates: nil, context: context)
        }
        let projected = try projOut(states)
        let output = try projected.reshaped([batch, height, width, frames, channels]).permuted([0, 3, 4, 1, 2])
            .reshaped([batchFrames, channels, height, width])
        return try output + hiddenStates
    }
}
