import Tensor

/// LoRA-Composer's latent energy for one concept (`_compute_max_attention_per_index` and
/// `_compute_loss` of the reference), on maps read at one grid:
///
///     E = Σ_tokens [ 8·max(0, 1 − mean topk(A⊙G, k))               concept enhancement
///                  + 2·L1(max_rows(A⊙M), max_rows M) + 2·L1(max_cols(A⊙M), max_cols M) ]   fill
///       + 10·max(0, mean topk(S[M, ¬M], k))                          region perception
///
/// A is a token's cross-attention map (Gaussian-smoothed), M the box mask, G the box mask times a
/// Gaussian bump over the box, S the self-attention map and k = ⌊0.2·|box|⌋ (at least 1, ours: the
/// reference's `topk(0)` of a box under five cells has no mean). Frames are separate images: each
/// frame's energy is computed on its own maps and the frames' energies are added.
public struct LoRAComposerEnergy: Sendable {
    public var enhancementWeight: Float = 8
    public var fillWeight: Float = 2
    public var regionWeight: Float = 10
    public var topKRatio: Float = 0.2
    public var smoothingKernel = 3
    public var smoothingSigma: Float = 0.5

    public init() {}

    /// The energy and its three parts (summed over tokens and frames).
    public struct Value {
        public var total: Tensor
        public var enhancement: Float
        public var fill: Float
        public var region: Float
    }

    /// - Parameters:
    ///   - tokenMaps: one `[F, H·W]` map per concept token (cross-attention probabilities of the
    ///     token, averaged over heads and layers).
    ///   - selfMap: `[F, H·W, H·W]` self-attention probabilities averaged over heads and layers, or
    ///     nil to leave the region term out.
    public func energy(tokenMaps: [Tensor], selfMap: Tensor?, box: ConceptBox, grid: FeatureGrid) throws -> Value {
        let (rows, columns) = box.cells(height: grid.height, width: grid.width)
        let boxCells = rows.count * columns.count
        guard boxCells > 0 else {
            throw CompositionError.invalidSetting("the box \(box) covers no cell of the \(grid) grid")
        }
        let k = max(1, Int(Float(boxCells) * topKRatio))
        let maskValues = box.mask(height: grid.height, width: grid.width)
        var gaussianValues = [Float](repeating: 0, count: grid.count)
        let bump = AttentionMapFilters.boxGaussian(height: rows.count, width: columns.count)
        for (r, row) in rows.enumerated() {
            for (c, column) in columns.enumerated() { gaussianValues[row * grid.width + column] = bump[r * columns.count + c] }
        }
        let mask = try Tensor(shape: [1, grid.height, grid.width], values: maskValues)
        let gaussianMask = try Tensor(shape: [1, grid.count], values: gaussianValues)
        var columnTarget = [Float](repeating: 0, count: grid.width), rowTarget = [Float](repeating: 0, count: grid.height)
        for column in columns { columnTarget[column] = 1 }
        for row in rows { rowTarget[row] = 1 }

        var total: Tensor?
        func add(_ term: Tensor) throws { total = try total.map { try $0 + term } ?? term }
        var enhancement: Float = 0, fill: Float = 0, region: Float = 0
        for map in tokenMaps {
            let frames = map.shape[0]
            guard map.shape == [frames, grid.count] else {
                throw CompositionError.invalidSetting("a token map of shape \(map.shape) does not fit the \(grid) grid")
            }
            let smoothed = try AttentionMapFilters.smooth(map.reshaped([frames, 1, grid.height, grid.width]),
                                                          kernelSize: smoothingKernel, sigma: smoothingSigma)
                .reshaped([frames, grid.height, grid.width])
            // Concept enhancement: the k strongest cells of the map under the box's bump.
            let strongest = try Tensor.topKMean(smoothed.reshaped([frames, grid.count]) * gaussianMask, k: k)
            let enhancementTerm = try ((1 - strongest).relu() * enhancementWeight).sum()
            enhancement += enhancementTerm.item
            try add(enhancementTerm)
            // Fill: the map's projections on each axis should cover the box's.
            let inside = try smoothed * mask
            let columnProfile = try inside.max(axes: [1])
            let rowProfile = try inside.max(axes: [2])
            let columnGoal = try Tensor(shape: [frames, grid.width], values: Array((0 ..< frames).map { _ in columnTarget }.joined()))
            let rowGoal = try Tensor(shape: [frames, grid.height], values: Array((0 ..< frames).map { _ in rowTarget }.joined()))
            // l1Loss means over frames too; times `frames` adds the per-frame means.
            let fillTerm = try (Tensor.l1Loss(columnProfile, columnGoal) + Tensor.l1Loss(rowProfile, rowGoal)) * (fillWeight * Float(frames))
            fill += fillTerm.item
            try add(fillTerm)
        }
        if let selfMap, boxCells < grid.count {
            let frames = selfMap.shape[0]
            guard selfMap.shape == [frames, grid.count, grid.count] else {
                throw CompositionError.invalidSetting("a self-attention map of shape \(selfMap.shape) does not fit the \(grid) grid")
            }
            // Rows inside the box, columns outside: attention leaking from the concept to the rest.
            var leak = [Float](repeating: 0, count: grid.count * grid.count)
            for query in 0 ..< grid.count where maskValues[query] != 0 {
                for key in 0 ..< grid.count where maskValues[key] == 0 { leak[query * grid.count + key] = 1 }
            }
            let leakMask = try Tensor(shape: [1, grid.count * grid.count], values: leak)
            // Probabilities are ≥ 0, so the masked-out zeros never outrank a selected entry's value.
            let strongest = try Tensor.topKMean(selfMap.reshaped([frames, grid.count * grid.count]) * leakMask, k: k)
            let regionTerm = try (strongest.relu() * regionWeight).sum()
            region += regionTerm.item
            try add(regionTerm)
        }
        return Value(total: total ?? Tensor(scalar: 0), enhancement: enhancement, fill: fill, region: region)
    }
}
