import Adapters
import Models
import Tensor

/// Small tensor steps the composition processors share.
enum AttentionMath {
    /// `[B, L, D]` → `[B·frames, L, D]`, each row repeated `frames` times in place (torch's
    /// `repeat_interleave`, how the U-Net lays text states out per frame).
    static func repeatPerFrame(_ x: Tensor, frames: Int) throws -> Tensor {
        if frames == 1 { return x }
        let rest = Array(x.shape.dropFirst())
        return try x.reshaped([x.shape[0], 1] + rest).repeated([1, frames] + rest.map { _ in 1 })
            .reshaped([x.shape[0] * frames] + rest)
    }

    /// Attention probabilities `[N·heads, Lq, Lk]` → `[N, Lq, Lk]`, averaged over the heads.
    static func meanOverHeads(_ probabilities: Tensor, heads: Int) throws -> Tensor {
        if heads == 1 { return probabilities }
        let (batchHeads, queries, keys) = (probabilities.shape[0], probabilities.shape[1], probabilities.shape[2])
        return try probabilities.reshaped([batchHeads / heads, heads, queries, keys]).mean(axes: [1])
    }

    /// A per-token weight `[1, tokens, 1]` that broadcasts over `[N·heads, tokens, depth]`.
    static func tokenWeight(_ values: [Float]) throws -> Tensor {
        try Tensor(shape: [1, values.count, 1], values: values)
    }

    /// `layer(x)` plus `lora`'s delta applied whether or not the adapter is enabled on the layer.
    static func project(_ layer: Linear, lora: LoRA?, _ x: Tensor) throws -> Tensor {
        let base = try layer(x)
        guard let lora else { return base }
        return try base + lora.appliedDelta(x)
    }
}

extension LoRA {
    /// scale · multiplier · B(A(x)) for a LoRA on a Linear layer, computed whether or not the adapter
    /// is enabled on its layer (dropout off): composition applies a concept's LoRA to part of a
    /// layer's work only, with the adapter itself left disabled.
    func appliedDelta(_ x: Tensor) throws -> Tensor {
        guard case .linear = geometry else {
            throw CompositionError.invalidSetting("LoRA on \(modulePath) is \(geometry); only Linear LoRAs apply to attention projections")
        }
        let output = try Tensor.linear(Tensor.linear(x, weight: down), weight: up)
        let strength = effectiveScale
        return strength == 1 ? output : output * strength
    }
}
