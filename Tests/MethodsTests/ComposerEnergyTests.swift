import Foundation
import Tensor
import XCTest
@testable import Methods

/// LoRA-Composer's energy terms and filters.
final class ComposerEnergyTests: XCTestCase {
    func testTheSmoothingKernelIsTheReferences() throws {
        let kernel = AttentionMapFilters.gaussianKernel(size: 3, sigma: 0.5)
        // Per axis exp(−((i − 1)/(2·0.5))²) = [e⁻¹, 1, e⁻¹], the product normalised.
        let axis: [Float] = [exp(-1), 1, exp(-1)]
        let total = axis.reduce(0, +) * axis.reduce(0, +)
        for row in 0 ..< 3 { for column in 0 ..< 3 { XCTAssertEqual(kernel[row * 3 + column], axis[row] * axis[column] / total, accuracy: 1e-7) } }
        // Reflect padding keeps a constant map constant.
        let flat = Tensor(repeating: 0.25, shape: [2, 1, 3, 4])
        XCTAssertTrue(try AttentionMapFilters.smooth(flat).values.allSatisfy { abs($0 - 0.25) < 1e-6 })
        // …and reflects without repeating the edge: [0, 1, 2] → [1, 0, 1, 2, 1].
        let row = try Tensor(shape: [1, 1, 1, 3], values: [0, 1, 2])
        XCTAssertEqual(try AttentionMapFilters.reflectPad(row, 1, axis: 3).values, [1, 0, 1, 2, 1])
        // The box bump: 1 at the centre of an odd box, exp(−1/2) at an edge's middle.
        let bump = AttentionMapFilters.boxGaussian(height: 3, width: 3)
        XCTAssertEqual(bump[4], 1, accuracy: 1e-6)
        XCTAssertEqual(bump[1], exp(-0.5), accuracy: 1e-6)
    }

    /// A one-frame token map on a 6×6 grid with `mass` spread evenly over `cells`.
    func map(cells: [Int], mass: Float = 0.9) throws -> Tensor {
        var values = [Float](repeating: 0.1 / 36, count: 36)
        for cell in cells { values[cell] += mass / Float(cells.count) }
        let tensor = try Tensor(shape: [1, 36], values: values)
        tensor.requiresGrad = true
        return tensor
    }

    func testAttentionInsideTheBoxHasLessEnergyThanOutsideAndTheGradientPullsItIn() throws {
        let grid = FeatureGrid(height: 6, width: 6)
        let box = ConceptBox(x0: 0, y0: 0, x1: 0.5, y1: 0.5)   // cells (0..<3, 0..<3)
        let energy = LoRAComposerEnergy()
        let insideCells = [0, 1, 2, 6, 7, 8, 12, 13, 14], outsideCells = [21, 22, 23, 27, 28, 29, 33, 34, 35]
        let inside = try energy.energy(tokenMaps: [map(cells: insideCells)], selfMap: nil, box: box, grid: grid)
        let outside = try energy.energy(tokenMaps: [map(cells: outsideCells)], selfMap: nil, box: box, grid: grid)
        XCTAssertLessThan(inside.total.item, outside.total.item)
        XCTAssertLessThan(inside.enhancement, outside.enhancement)
        XCTAssertLessThan(inside.fill, outside.fill)
        XCTAssertEqual(inside.region, 0)

        // Descending the gradient raises the map inside the box.
        let tokenMap = try map(cells: outsideCells)
        let value = try energy.energy(tokenMaps: [tokenMap], selfMap: nil, box: box, grid: grid)
        try value.total.backward()
        let gradient = try XCTUnwrap(tokenMap.grad).values
        XCTAssertTrue(gradient.allSatisfy(\.isFinite))
        XCTAssertLessThan(insideCells.map { gradient[$0] }.reduce(0, +), 0)

        // Region term: self-attention from the box to outside it costs energy; within the box it does not.
        func selfMap(leaking: Bool) throws -> Tensor {
            var values = [Float](repeating: 0, count: 36 * 36)
            for query in 0 ..< 36 { values[query * 36 + (leaking ? 35 : query)] = 1 }
            return try Tensor(shape: [1, 36, 36], values: values)
        }
        let leaking = try energy.energy(tokenMaps: [], selfMap: selfMap(leaking: true), box: box, grid: grid)
        let contained = try energy.energy(tokenMaps: [], selfMap: selfMap(leaking: false), box: box, grid: grid)
        // k = ⌊0.2·9⌋ = 1: the strongest leak is 1 → 10·1.
        XCTAssertEqual(leaking.region, 10, accuracy: 1e-5)
        XCTAssertEqual(contained.region, 0)
    }
}
