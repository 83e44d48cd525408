import Tensor

/// diffusers' `BasicTransformerBlock` (attention.py) with `norm_type="layer_norm"`:
/// `norm1` → `attn1` (self) → `norm2` → `attn2` (cross-attention to the encoder states, or a second
/// self-attention with `double_self_attention`) → `norm3` → `ff`, each with a residual add.
/// With `positional_embeddings="sinusoidal"` (AnimateDiff's motion modules) `pos_embed` adds its
/// table to the normed states before attn1 and before attn2.
public final class BasicTransformerBlock: Module {
    public let norm1: LayerNorm
    public let attn1: Attention
    public let norm2: LayerNorm?
    public let attn2: Attention?
    public let norm3: LayerNorm
    public let ff: FeedForward
    public let doubleSelfAttention: Bool
    public let positionalEmbedding: SinusoidalPositionalEmbedding?

    public init(dimension: Int, heads: Int, headDimension: Int, crossAttentionDimension: Int?,
                doubleSelfAttention: Bool = false, attentionBias: Bool = false, dropout: Float = 0,
                normEpsilon: Float = 1e-5, positionalEmbeddingLength: Int? = nil) {
        self.doubleSelfAttention = doubleSelfAttention
        positionalEmbedding = positionalEmbeddingLength.map { SinusoidalPositionalEmbedding(dimension: dimension, maxSequenceLength: $0) }
        norm1 = LayerNorm(dimension, epsilon: normEpsilon)
        attn1 = Attention(queryDimension: dimension, crossAttentionDimension: nil, heads: heads, dimHead: headDimension,
                          dropout: dropout, bias: attentionBias)
        if crossAttentionDimension != nil || doubleSelfAttention {
            norm2 = LayerNorm(dimension, epsilon: normEpsilon)
            attn2 = Attention(queryDimension: dimension,
                              crossAttentionDimension: doubleSelfAttention ? nil : crossAttentionDimension,
                              heads: heads, dimHead: headDimension, dropout: dropout, bias: attentionBias)
        } else {
            norm2 = nil
            attn2 = nil
        }
        norm3 = LayerNorm(dimension, epsilon: normEpsilon)
        ff = FeedForward(dimension, dropout: dropout)
        super.init()
        if let positionalEmbedding { child("pos_embed", positionalEmbedding) }
        child("norm1", norm1)
        child("attn1", attn1)
        if let norm2, let attn2 {
            child("norm2", norm2)
            child("attn2", attn2)
        }
        child("norm3", norm3)
        child("ff", ff)
    }

    /// `hiddenStates` `[B, L, dimension]`; `encoderHiddenStates` `[B, Lk, D]` feeds attn2 (nil: attn2 attends to itself).
    public func callAsFunction(_ hiddenStates: Tensor, encoderHiddenStates: Tensor?, context: ForwardContext) throws -> Tensor {
        var states = try attn1(withPositions(norm1(hiddenStates)), context: context) + hiddenStates
        if let norm2, let attn2 {
            states = try attn2(withPositions(norm2(states)), encoderHiddenStates: encoderHiddenStates, context: context) + states
        }
        return try ff(norm3(states), context: context) + states
    }

    private func withPositions(_ x: Tensor) throws -> Tensor {
        guard let positionalEmbedding else { return x }
        return try positionalEmbedding(x)
    }
}
