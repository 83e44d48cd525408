import Models
import Tensor

/// LoRA-Composer's concept isolation in a spatial self-attention layer: scores from a query inside
/// one box to keys inside any other box get −1e6 (`ComposerAttentionState.isolationMask`), so
/// concepts cannot copy each other's features; background queries and keys are unrestricted and the
/// weights are the base model's. At the analysis grid it also records the (masked) self-attention
/// map the energy's region term reads.
final class ConceptIsolationProcessor: AttentionProcessor {
    let state: ComposerAttentionState

    init(state: ComposerAttentionState) {
        self.state = state
    }

    func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
        guard !call.isCrossAttention, let grid = state.grid(tokens: query.shape[1]) else {
            return try ScaledDotProductAttentionProcessor.shared.attend(attention, query: query, key: key, value: value, call: call)
        }
        let mask = state.isolates ? try state.isolationMask(for: grid) : nil
        let records = state.recordsMaps && grid == state.analysisGrid
        guard mask != nil || records else {
            return try ScaledDotProductAttentionProcessor.shared.attend(attention, query: query, key: key, value: value, call: call)
        }
        let heads = attention.heads
        let q = try Attention.splitHeads(query, heads: heads)
        let k = try Attention.splitHeads(key, heads: heads)
        let v = try Attention.splitHeads(value, heads: heads)
        if records {
            let probabilities = try Tensor.attentionProbabilities(query: q, key: k, scale: attention.scale, mask: mask)
            state.selfMaps.append(try AttentionMath.meanOverHeads(probabilities, heads: heads))
        }
        // The output always comes from the fused kernel, so recording maps never changes a render.
        return try Attention.mergeHeads(Tensor.attention(query: q, key: k, value: v, scale: attention.scale, mask: mask), heads: heads)
    }
}
