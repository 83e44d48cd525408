import Foundation
import Tensor
import XCTest
@testable import Methods

/// CLoRA's contrastive loss and masked fusion.
final class CLoRALossAndFusionTests: XCTestCase {
    /// pytorch_metric_learning's NTXentLoss written out with scalars: cosine similarities, the mean
    /// over ordered positive pairs of −log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_negatives e^{s_an/τ})).
    static func handNTXent(_ rows: [[Double]], labels: [Int], temperature: Double) -> Double {
        func cosine(_ a: [Double], _ b: [Double]) -> Double {
            let dot = zip(a, b).map { $0 * $1 }.reduce(0, +)
            let norm = { (x: [Double]) in max(x.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12) }
            return dot / (norm(a) * norm(b))
        }
        var total = 0.0, pairs = 0
        for a in rows.indices {
            for p in rows.indices where p != a && labels[p] == labels[a] {
                let positive = exp(cosine(rows[a], rows[p]) / temperature)
                let negatives = rows.indices.filter { labels[$0] != labels[a] }.map { exp(cosine(rows[a], rows[$0]) / temperature) }
                total += -log(positive / (positive + negatives.reduce(0, +)))
                pairs += 1
            }
        }
        return total / Double(pairs)
    }

    func testNTXentMatchesAHandComputation() throws {
        let rows: [[Float]] = [[1, 0, 0.2], [0.9, 0.1, 0], [0, 1, 0.3], [0.1, 0.8, 0.6], [0.5, 0.5, 0.5]]
        let labels = [0, 0, 1, 1, 1]
        let loss = try XCTUnwrap(NTXentLoss.loss(Tensor(shape: [5, 3], values: rows.flatMap { $0 }), labels: labels, temperature: 0.5))
        let expected = Self.handNTXent(rows.map { $0.map(Double.init) }, labels: labels, temperature: 0.5)
        XCTAssertEqual(Double(loss.item), expected, accuracy: 1e-5)
        // Another temperature, and scale does not matter (cosine similarity).
        let scaled = try XCTUnwrap(NTXentLoss.loss(Tensor(shape: [5, 3], values: rows.flatMap { $0.map { $0 * 7 } }), labels: labels,
                                                   temperature: 0.1))
        XCTAssertEqual(Double(scaled.item), Self.handNTXent(rows.map { $0.map(Double.init) }, labels: labels, temperature: 0.1), accuracy: 1e-4)
        // Nothing to contrast: one label, or no pair with one label.
        XCTAssertNil(try NTXentLoss.loss(Tensor(shape: [2, 3], values: [1, 0, 0, 0, 1, 0]), labels: [0, 0]))
        XCTAssertNil(try NTXentLoss.loss(Tensor(shape: [2, 3], values: [1, 0, 0, 0, 1, 0]), labels: [0, 1]))
        XCTAssertThrowsError(try NTXentLoss.loss(Tensor(shape: [2, 3], values: [1, 0, 0, 0, 1, 0]), labels: [0]))
    }

    /// Random positive maps of two prompts, `[1, 6, 4]` each, that take part in gradients.
    func maps(seed: UInt64) -> [Tensor] {
        var generator = RandomGenerator(seed: seed)
        return (0 ..< 2).map { _ in
            let map = generator.uniform([1, 6, 4], low: 0.05, high: 1)
            map.requiresGrad = true
            return map
        }
    }

    func testContrastiveLossMatchesHandNormalisationAndItsGradientPassesFiniteDifferences() throws {
        // Concept 0: token 1 in both prompts; concept 1: token 2 in the base prompt, tokens 2 and 3 in the second.
        let groups = [[[1], [1]], [[2], [2, 3]]]
        let inputs = maps(seed: 7)
        let loss = try XCTUnwrap(CLoRA.contrastiveLoss(maps: inputs, groups: groups, temperature: 0.5))

        // By hand: min-max normalised columns, labelled by concept.
        var rows: [[Double]] = [], labels: [Int] = []
        for (label, perPrompt) in groups.enumerated() {
            for (prompt, positions) in perPrompt.enumerated() {
                for position in positions {
                    let column = (0 ..< 6).map { Double(inputs[prompt].values[$0 * 4 + position]) }
                    let low = column.min()!, high = column.max()!
                    rows.append(column.map { ($0 - low) / (high - low) })
                    labels.append(label)
                }
            }
        }
        XCTAssertEqual(Double(loss.item), Self.handNTXent(rows, labels: labels, temperature: 0.5), accuracy: 1e-5)

        try loss.backward()
        let step: Float = 2e-3
        var checked = 0
        for (prompt, map) in inputs.enumerated() {
            let gradient = try XCTUnwrap(map.grad).values
            for index in 0 ..< map.count {
                let original = map[flat: index]
                func value(_ shifted: Float) throws -> Float {
                    map[flat: index] = shifted
                    defer { map[flat: index] = original }
                    return try Tensor.withoutGrad { try CLoRA.contrastiveLoss(maps: inputs, groups: groups, temperature: 0.5)!.item }
                }
                let numeric = (try value(original + step) - value(original - step)) / (2 * step)
                XCTAssertEqual(gradient[index], numeric, accuracy: 2e-3 + 0.05 * abs(numeric), "prompt \(prompt) entry \(index)")
                if abs(numeric) > 1e-3 { checked += 1 }
            }
        }
        XCTAssertGreaterThan(checked, 6, "the loss depends on the concept tokens' entries")
        // Tokens no group names get no gradient.
        for map in inputs {
            let gradient = map.grad!.values
            for cell in 0 ..< 6 { XCTAssertEqual(gradient[cell * 4], 0) }
        }
    }

    func testMaskedFusionWithOneAllOnesMaskIsThatPromptsPrediction() throws {
        var generator = RandomGenerator(seed: 8)
        let predictions = (0 ..< 3).map { _ in generator.normal([1, 4, 2, 3, 3]) }
        let ones = Tensor(repeating: 1, shape: [2, 3, 3]), zeros = Tensor(zeros: [2, 3, 3])
        for chosen in 0 ..< 3 {
            let masks = (0 ..< 3).map { $0 == chosen ? ones : zeros }
            XCTAssertEqual(try MaskedFusion.fuse(predictions, masks: masks).values, predictions[chosen].values)
        }
        // Two masks over one position: their predictions' mean there.
        let half = try Tensor(shape: [2, 3, 3], values: (0 ..< 18).map { $0 % 2 == 0 ? 1 : 0 })
        let fused = try MaskedFusion.fuse(predictions, masks: [ones, half, zeros]).values
        let (a, b) = (predictions[0].values, predictions[1].values)
        for index in fused.indices {
            let position = index % 18
            XCTAssertEqual(fused[index], position % 2 == 0 ? (a[index] + b[index]) / 2 : a[index], accuracy: 1e-6)
        }
        XCTAssertThrowsError(try MaskedFusion.fuse(predictions, masks: [zeros, zeros, zeros]))
    }

    func testMasksComeFromThresholdedMapsAndTheBasePromptTakesTheRest() throws {
        let grid = FeatureGrid(height: 2, width: 2)
        // Three prompts, one frame, two tokens; token 1 of prompt 1 peaks at cell 0, of prompt 2 at cell 3.
        func map(_ token1: [Float]) throws -> Tensor {
            try Tensor(shape: [1, 4, 2], values: token1.flatMap { [0.5, $0] })
        }
        let maps = [try map([0.9, 0.9, 0.9, 0.9]), try map([1.0, 0.2, 0.3, 0.1]), try map([0.1, 0.36, 0.2, 0.8])]
        let masks = try MaskedFusion.masks(maps: maps, maskTokens: [[], [1], [1]], threshold: 0.35, grid: grid,
                                           latentHeight: 4, latentWidth: 4)
        XCTAssertEqual(masks.map(\.shape), [[1, 4, 4], [1, 4, 4], [1, 4, 4]])
        // Prompt 1: cells above 0.35 → cell 0. Prompt 2: above 0.28 → cells 1 and 3. Base: cell 2.
        func cells(_ mask: Tensor) -> [Float] { [mask[flat: 0], mask[flat: 2], mask[flat: 8], mask[flat: 10]] }
        XCTAssertEqual(cells(masks[1]), [1, 0, 0, 0])
        XCTAssertEqual(cells(masks[2]), [0, 1, 0, 1])
        XCTAssertEqual(cells(masks[0]), [0, 0, 1, 0])
        // Nearest-neighbour upsampling: each cell is a 2×2 block.
        XCTAssertEqual(masks[1].values.prefix(8), [1, 1, 0, 0, 1, 1, 0, 0])
    }
}
