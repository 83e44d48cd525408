import Adapters
import Models
import Tensor

/// Adds each concept's `to_out.0` LoRA inside its box to a cross-attention layer's output
/// projection: Σ_concepts weight ⊙ ΔW_out(concept's attended values), read from what the
/// `RegionInjectionProcessor` left for this call. With the base projection of the mixed values this
/// gives exactly the reference's average of per-region `to_out` outputs (the projection is linear).
final class RegionOutputDelta: LayerDelta {
    let adapterName = "lora-composer-region-output"
    /// Set by the processor just before the layer's `to_out` runs; consumed by `delta`.
    var pending: [(weight: Tensor, lora: LoRA, attended: Tensor)] = []

    func delta(_ x: Tensor) throws -> Tensor? {
        defer { pending = [] }
        var sum: Tensor?
        for (weight, lora, attended) in pending {
            let term = try lora.appliedDelta(attended) * weight
            sum = try sum.map { try $0 + term } ?? term
        }
        return sum
    }
}
