import Adapters
import Foundation
import Models
import Tensor

/// Break-for-Make's partly learnable projection (PLP) adapter: a LoRA on every spatial attention
/// projection (`attn1` and `attn2` `to_q`, `to_k`, `to_v`, `to_out.0`) whose factors are split in
/// halves. B (up, out × r) keeps its first ⌊out/2⌋ rows frozen and learns the rest (B₂); A (down,
/// r × in) keeps its first ⌊in/2⌋ columns frozen and learns the rest (A₂). Freezing is a gradient mask
/// (`Tensor.gradMask`), so frozen entries never change, bit for bit.
///
/// Initialisation (ICTMCG/Break-for-make, `LoRALinearLayer.initialize_weights_feature`): where in =
/// out, Q (1280 × r, the reference's fixed `max_features` basis, whatever the layer's width) with
/// orthonormal columns; S₁ = ⌊in/2⌋ rows drawn at random, S₂ = the ⌊in/2⌋ lowest-numbered rows not in
/// S₁; frozen A columns = Q[S₁]ᵀ, frozen B rows = Q[S₂], A₂ ~ N(0, 1/r²), B₂ = 0. Elsewhere A ~ N(0,
/// 1/r²) and B = 0. Because Q has 1280 rows, its rows are short (norm ≈ √(r/1280)) and the frozen
/// halves' product B₁A₁, which the adapter adds from the start, is small; a basis only `in` rows
/// tall (what ../shared/METHODS.md's "Q (in × r)" reads as) made it ~14× larger on this model's
/// 48–96-wide layers and cost the untrained adapter most of the base's quality. Every draw depends
/// only on (seed, module path), so a content run and a style run with the same seed and rank share
/// their frozen halves exactly. Ours: where r > 1280, Q gets orthonormal rows instead.
///
/// Ours: temporal attentions are left alone (images train one frame, as `train-lora` does).
public enum PLPAdapter {
    public static let targets: [ModulePattern] = ["attn1", "attn2"].flatMap { attention in
        ["to_q", "to_k", "to_v", "to_out.0"].map { ModulePattern("*.attentions.*.transformer_blocks.*.\(attention).\($0)") }
    }

    /// Frozen columns of A: the first ⌊in/2⌋.
    public static func frozenDownColumns(_ geometry: LoRAGeometry) -> Int { geometry.inputs / 2 }
    /// Frozen rows of B: the first ⌊out/2⌋.
    public static func frozenUpRows(_ geometry: LoRAGeometry) -> Int { geometry.outputs / 2 }

    /// The gradient mask of A `[r, in]`: 0 on the frozen columns, 1 elsewhere.
    public static func downMask(rank: Int, geometry: LoRAGeometry) -> Tensor {
        let inputs = geometry.inputs, frozen = frozenDownColumns(geometry)
        let mask = Tensor(repeating: 1, shape: [rank, inputs])
        for k in 0..<rank { for j in 0..<frozen { mask.data[k * inputs + j] = 0 } }
        return mask
    }

    /// The gradient mask of B `[out, r]`: 0 on the frozen rows, 1 elsewhere.
    public static func upMask(rank: Int, geometry: LoRAGeometry) -> Tensor {
        let mask = Tensor(repeating: 1, shape: [geometry.outputs, rank])
        for index in 0..<(frozenUpRows(geometry) * rank) { mask.data[index] = 0 }
        return mask
    }

    /// The initial (A, B) of one layer from its own generator.
    public static func initialFactors(geometry: LoRAGeometry, rank: Int, generator: inout RandomGenerator) -> (down: Tensor, up: Tensor) {
        let inputs = geometry.inputs, outputs = geometry.outputs
        let down = generator.normal([rank, inputs], std: 1 / Float(rank))
        let up = Tensor(zeros: [outputs, rank])
        guard inputs == outputs, inputs >= 2 else { return (down, up) }
        let basis = Swift.max(basisRows, inputs)
        let q = orthonormal(rows: basis, columns: rank, generator: &generator)
        let half = inputs / 2
        let (s1, s2) = frozenRowSets(basis: basis, half: half, generator: &generator)
        for (column, row) in s1.enumerated() {
            for k in 0..<rank { down.data[k * inputs + column] = Float(q[row][k]) }
        }
        for (target, row) in s2.enumerated() {
            for k in 0..<rank { up.data[target * rank + k] = Float(q[row][k]) }
        }
        return (down, up)
    }

    /// Rows of the reference's orthonormal basis (`max_features`).
    public static let basisRows = 1280

    /// S₁: `half` rows of `basis` drawn at random; S₂: the `half` lowest-numbered rows not in S₁.
    public static func frozenRowSets(basis: Int, half: Int, generator: inout RandomGenerator) -> (s1: [Int], s2: [Int]) {
        let s1 = Array(generator.shuffled(Array(0..<basis))[0..<half])
        let taken = Set(s1)
        return (s1, Array((0..<basis).filter { !taken.contains($0) }[0..<half]))
    }

    /// A rows × columns matrix with orthonormal columns (orthonormal rows when columns > rows): a
    /// Gaussian draw through modified Gram–Schmidt, twice for accuracy, in Double.
    public static func orthonormal(rows: Int, columns: Int, generator: inout RandomGenerator) -> [[Double]] {
        let draw = generator.normal([rows, columns]).values.map(Double.init)
        let transposed = columns > rows
        let vectorCount = transposed ? rows : columns, length = transposed ? columns : rows
        // vectors[v][i]: the v-th vector to orthonormalise.
        var vectors = (0..<vectorCount).map { v in
            (0..<length).map { i in transposed ? draw[v * columns + i] : draw[i * columns + v] }
        }
        for _ in 0..<2 {
            for v in 0..<vectorCount {
                for u in 0..<v {
                    let projection = zip(vectors[v], vectors[u]).reduce(0) { $0 + $1.0 * $1.1 }
                    for i in 0..<length { vectors[v][i] -= projection * vectors[u][i] }
                }
                let norm = vectors[v].reduce(0) { $0 + $1 * $1 }.squareRoot()
                for i in 0..<length { vectors[v][i] /= norm }
            }
        }
        return (0..<rows).map { i in (0..<columns).map { j in transposed ? vectors[i][j] : vectors[j][i] } }
    }

    /// Adds PLP adapter `name` of `rank` on every target of `set`, initialised from `seed`, trainable,
    /// with its gradient masks set. Returns its LoRAs.
    @discardableResult
    public static func inject(_ name: String, into set: AdapterSet, rank: Int, seed: UInt64) throws -> [LoRA] {
        guard rank >= 1 else { throw MethodError.badSetting(name: "rank", reason: "must be at least 1, got \(rank)") }
        let paths = try set.matchingPaths(targets)
        guard !paths.isEmpty else {
            throw MethodError.badSetting(name: "Break-for-Make adapter", reason: "the model has no spatial attention to adapt")
        }
        let geometries = Dictionary(set.adaptableLayers.map { ($0.path, $0.layer.geometry) }, uniquingKeysWith: { first, _ in first })
        let root = RandomGenerator(seed: seed).derived(0xB4_3A4E)
        let loras = try paths.map { path -> LoRA in
            let geometry = geometries[path]!
            var generator = root.derived(path.hashStable)
            let (down, up) = initialFactors(geometry: geometry, rank: rank, generator: &generator)
            return try LoRA(adapterName: name, modulePath: path, geometry: geometry, alpha: Float(rank), down: down, up: up)
        }
        try set.add(name, loras: loras, config: LoRAConfig(rank: rank, initialisation: .gaussian))
        try set.setTrainable(true, for: name)
        for lora in loras { installMasks(lora) }
        return loras
    }

    /// Sets the frozen halves' gradient masks on `lora`'s factors.
    public static func installMasks(_ lora: LoRA) {
        lora.down.gradMask = downMask(rank: lora.rank, geometry: lora.geometry)
        lora.up.gradMask = upMask(rank: lora.rank, geometry: lora.geometry)
    }
}
