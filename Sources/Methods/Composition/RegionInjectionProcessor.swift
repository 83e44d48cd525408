import Adapters
import Models
import Tensor

/// LoRA-Composer's region-aware concept injection in a spatial cross-attention layer
/// (`region_rewrite` of the reference's `register_region_aware_attention`).
///
/// The base output is the layer's own attention on the global prompt. For each concept, every query
/// attends to keys and values projected from the concept's region-prompt states with the concept's
/// LoRA on `to_k` and `to_v` (the queries stay the base model's); inside the concept's box that
/// output replaces the base output, averaged where boxes overlap. The concept's `to_out.0` LoRA is
/// added inside its box by a `RegionOutputDelta` on the layer's output projection, so the result
/// equals the reference's per-region `to_out` of the LoRA model.
///
/// Queries outside a box are computed too (the mixing weight is 0 there): a grid-wide product keeps
/// the work to dense tensor operations, and the maps of every query are what the latent energy and
/// the heat maps read.
final class RegionInjectionProcessor: AttentionProcessor {
    let state: ComposerAttentionState

    init(state: ComposerAttentionState) {
        self.state = state
    }

    func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
        guard call.isCrossAttention, let grid = state.grid(tokens: query.shape[1]) else {
            return try ScaledDotProductAttentionProcessor.shared.attend(attention, query: query, key: key, value: value, call: call)
        }
        let heads = attention.heads
        let items = query.shape[0]
        guard state.regionStates.count == state.concepts.count else {
            throw CompositionError.invalidSetting("\(call.path): \(state.regionStates.count) region prompts set for \(state.concepts.count) concepts")
        }
        let q = try Attention.splitHeads(query, heads: heads)
        let base = try Tensor.attention(query: q, key: Attention.splitHeads(key, heads: heads),
                                        value: Attention.splitHeads(value, heads: heads), scale: attention.scale)
        let weights = try state.weights(for: grid)
        let records = state.recordsMaps && grid == state.analysisGrid
        var mixed = try base * weights.background
        var outputs: [(weight: Tensor, lora: LoRA, attended: Tensor)] = []
        for (index, concept) in state.concepts.enumerated() {
            guard let weight = weights.concepts[index] else { continue }
            let states = state.regionStates[index]
            guard states.shape[0] * call.frames == items else {
                throw CompositionError.invalidSetting("\(call.path): region prompt states for \(concept.name) hold \(states.shape[0]) items, the pass \(items / max(call.frames, 1))")
            }
            let regionKey = try AttentionMath.project(attention.toK, lora: concept.loras[call.path + ".to_k"], states)
            let regionValue = try AttentionMath.project(attention.toV, lora: concept.loras[call.path + ".to_v"], states)
            let k = try Attention.splitHeads(AttentionMath.repeatPerFrame(regionKey, frames: call.frames), heads: heads)
            let v = try Attention.splitHeads(AttentionMath.repeatPerFrame(regionValue, frames: call.frames), heads: heads)
            if records {
                let probabilities = try Tensor.attentionProbabilities(query: q, key: k, scale: attention.scale)
                state.crossMaps[index].append(try AttentionMath.meanOverHeads(probabilities, heads: heads))
            }
            // The output always comes from the fused kernel, so recording maps never changes a render.
            let attended = try Tensor.attention(query: q, key: k, value: v, scale: attention.scale)
            mixed = try mixed + attended * weight
            if let outputLoRA = concept.loras[call.path + ".to_out.0"] {
                outputs.append((weight, outputLoRA, try Attention.mergeHeads(attended, heads: heads)))
            }
        }
        if let delta = state.outputDeltas[call.path] { delta.pending = outputs }
        return try Attention.mergeHeads(mixed, heads: heads)
    }
}
