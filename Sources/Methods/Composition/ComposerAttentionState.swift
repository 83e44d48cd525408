import Adapters
import Models
import Tensor

/// What LoRA-Composer's attention processors share during a U-Net pass: the concepts' boxes and
/// LoRAs, the text states of their region prompts for the pass, and the maps recorded at the
/// analysis grid for the latent energy and the attention heat maps.
final class ComposerAttentionState {
    struct Concept {
        let name: String
        let box: ConceptBox
        /// The concept's U-Net LoRAs by module path (`…attn2.to_k`).
        let loras: [String: LoRA]
    }

    let concepts: [Concept]
    let latentHeight: Int
    let latentWidth: Int
    let analysisGrid: FeatureGrid
    /// Whether self-attention blocks attention between boxes (concept isolation).
    var isolates: Bool

    /// Per concept, its region prompt's text states for this pass, `[batch, L, D]` (the U-Net's
    /// batch before frames are folded in: two with guidance, the negative first).
    var regionStates: [Tensor] = []
    /// When true, maps at the analysis grid are recorded (with gradient history when grad mode is on).
    var recordsMaps = false
    /// Per concept, one `[N, H·W, L]` map per cross-attention layer at the analysis grid, averaged
    /// over heads: the attention of every query on the concept's region-prompt keys.
    var crossMaps: [[Tensor]] = []
    /// One `[N, H·W, H·W]` map per self-attention layer at the analysis grid, averaged over heads.
    var selfMaps: [Tensor] = []
    /// The `to_out.0` deltas that add each concept's output-projection LoRA inside its box, by layer path.
    var outputDeltas: [String: RegionOutputDelta] = [:]

    private var weightCache: [FeatureGrid: RegionWeights] = [:]
    private var maskCache: [FeatureGrid: Tensor?] = [:]

    init(concepts: [Concept], latentHeight: Int, latentWidth: Int, analysisGrid: FeatureGrid, isolates: Bool) {
        self.concepts = concepts
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
        self.analysisGrid = analysisGrid
        self.isolates = isolates
        resetRecords()
    }

    func resetRecords() {
        crossMaps = concepts.map { _ in [] }
        selfMaps = []
    }

    func grid(tokens: Int) -> FeatureGrid? {
        FeatureGrid.resolve(tokens: tokens, latentHeight: latentHeight, latentWidth: latentWidth)
    }

    /// How the outputs mix at each token of a grid: the base output where no box is, each concept's
    /// output inside its box, averaged where boxes overlap.
    struct RegionWeights {
        /// `[1, H·W, 1]`: 1 outside every box.
        let background: Tensor
        /// Per concept `[1, H·W, 1]`: 1 / (boxes covering the token) inside its box; nil when its box
        /// covers no cell of this grid.
        let concepts: [Tensor?]
    }

    func weights(for grid: FeatureGrid) throws -> RegionWeights {
        if let cached = weightCache[grid] { return cached }
        let masks = concepts.map { $0.box.mask(height: grid.height, width: grid.width) }
        var cover = [Float](repeating: 0, count: grid.count)
        for mask in masks { for index in 0 ..< grid.count { cover[index] += mask[index] } }
        let background = try AttentionMath.tokenWeight(cover.map { $0 == 0 ? 1 : 0 })
        let perConcept = try masks.map { mask -> Tensor? in
            guard mask.contains(1) else { return nil }
            return try AttentionMath.tokenWeight((0 ..< grid.count).map { mask[$0] == 0 ? 0 : 1 / cover[$0] })
        }
        let weights = RegionWeights(background: background, concepts: perConcept)
        weightCache[grid] = weights
        return weights
    }

    /// The additive self-attention mask `[H·W, H·W]` of concept isolation, built as the reference
    /// does: for each box and each other box, −1e6 on the scores from the first box's queries to the
    /// other box's keys (so overlapping boxes add up). Nil when fewer than two boxes cover a cell.
    func isolationMask(for grid: FeatureGrid) throws -> Tensor? {
        if let cached = maskCache[grid] { return cached }
        let masks = concepts.map { $0.box.mask(height: grid.height, width: grid.width) }.filter { $0.contains(1) }
        var result: Tensor?
        if masks.count >= 2 {
            let tokens = grid.count
            let mask = Tensor(zeros: [tokens, tokens])
            let m = mask.data
            for (index, queries) in masks.enumerated() {
                for (otherIndex, keys) in masks.enumerated() where otherIndex != index {
                    for query in 0 ..< tokens where queries[query] != 0 {
                        for key in 0 ..< tokens where keys[key] != 0 { m[query * tokens + key] += -1e6 }
                    }
                }
            }
            result = mask
        }
        maskCache[grid] = result
        return result
    }
}
