import Models
import Tensor

/// Records the cross-attention maps of the U-Net's spatial cross-attention layers at one grid,
/// averaged over heads, while they compute exactly as without it (prompt-to-prompt's `AttentionStore` as CLoRA
/// uses it, as an attention processor). Layers at other grids run the fused default.
///
/// Two ways to keep what it sees: `maps`, one `[N, H·W, L]` map per layer call with gradient history
/// when grad mode is on (cleared by `reset`); and, when `accumulatedFrames` is set, a running sum of
/// the last `accumulatedFrames` items of every call (the conditional half of a guided pass), for heat
/// maps of a whole render.
public final class CrossAttentionRecorder: AttentionProcessor {
    public let grid: FeatureGrid
    let latentHeight: Int
    let latentWidth: Int
    /// When false the recorder only computes.
    public var keepsMaps = true
    public private(set) var maps: [Tensor] = []
    /// Frames per pass whose maps are summed into `accumulated`; nil: no running sum.
    public var accumulatedFrames: Int?
    /// Σ over calls of the last `accumulatedFrames` items' maps, `[F, H·W, L]`.
    public private(set) var accumulated: Tensor?
    public private(set) var accumulatedCalls = 0

    public init(grid: FeatureGrid, latentHeight: Int, latentWidth: Int) {
        self.grid = grid
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
    }

    public func reset() { maps = [] }

    public func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
        guard call.isCrossAttention, keepsMaps || accumulatedFrames != nil,
              FeatureGrid.resolve(tokens: query.shape[1], latentHeight: latentHeight, latentWidth: latentWidth) == grid else {
            return try ScaledDotProductAttentionProcessor.shared.attend(attention, query: query, key: key, value: value, call: call)
        }
        let heads = attention.heads
        let q = try Attention.splitHeads(query, heads: heads)
        let k = try Attention.splitHeads(key, heads: heads)
        let probabilities = try Tensor.attentionProbabilities(query: q, key: k, scale: attention.scale)
        let map = try AttentionMath.meanOverHeads(probabilities, heads: heads)
        if keepsMaps { maps.append(map) }
        if let frames = accumulatedFrames, frames <= map.shape[0] {
            try Tensor.withoutGrad {
                let last = try map.detached().slice(rows: map.shape[0] - frames ..< map.shape[0]).copy()
                accumulated = try accumulated.map { try $0 + last } ?? last
                accumulatedCalls += 1
            }
        }
        // The output is the fused kernel's, as without the recorder: recording never changes a render.
        return try Attention.mergeHeads(Tensor.attention(query: q, key: k, value: Attention.splitHeads(value, heads: heads),
                                                         scale: attention.scale), heads: heads)
    }

    /// The mean of the maps recorded since `reset`, or nil.
    public func averagedMap() throws -> Tensor? {
        guard var sum = maps.first else { return nil }
        for map in maps.dropFirst() { sum = try sum + map }
        return maps.count == 1 ? sum : sum / Float(maps.count)
    }

    /// Installs the recorder on every spatial cross-attention layer; returns what restores the
    /// previous processors.
    public func install(on layers: SpatialAttentionLayers) -> () -> Void {
        let previous = layers.crossAttention.map { ($0.attention, $0.attention.processor) }
        for layer in layers.crossAttention { layer.attention.processor = self }
        return { for (attention, processor) in previous { attention.processor = processor } }
    }
}
