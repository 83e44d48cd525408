import Tensor

/// Where and how one attention layer is being called; handed to its processor.
public struct AttentionCall {
    /// The layer's module path (`down_blocks.0.attentions.0.transformer_blocks.0.attn2`).
    public let path: String
    /// True when keys and values come from encoder states (text) rather than the hidden states.
    public let isCrossAttention: Bool
    /// The states keys and values were projected from when `isCrossAttention`; nil for self-attention.
    public let encoderHiddenStates: Tensor?
    /// Frames per clip in this pass (spatial layers see `[batch·frames, H·W, C]`, temporal layers
    /// `[batch·H·W, frames, C]`).
    public let frames: Int
    /// The forward context of the pass (training flag, dropout generator).
    public let context: ForwardContext

    public init(path: String, isCrossAttention: Bool, encoderHiddenStates: Tensor?, frames: Int, context: ForwardContext) {
        self.path = path
        self.isCrossAttention = isCrossAttention
        self.encoderHiddenStates = encoderHiddenStates
        self.frames = frames
        self.context = context
    }
}

/// The core of an attention layer (principle 2): given the projected query `[B, Lq, heads·d]`,
/// key and value `[B, Lk, heads·d]`, return the attended values `[B, Lq, heads·d]` (before
/// `to_out`). diffusers' attention processors mirrored; methods install their own per layer path
/// to add masks, swap keys and values, or record attention maps.
public protocol AttentionProcessor: AnyObject {
    func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor
}

/// diffusers' `AttnProcessor2_0`: fused scaled-dot-product attention over the heads
/// (`Tensor.multiHeadAttention`, which reads the heads in place when no gradient is recorded).
public final class ScaledDotProductAttentionProcessor: AttentionProcessor, @unchecked Sendable {
    public static let shared = ScaledDotProductAttentionProcessor()

    public init() {}

    public func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
        try Tensor.multiHeadAttention(query: query, key: key, value: value, heads: attention.heads, scale: attention.scale)
    }
}
