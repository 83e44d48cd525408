import XCTest
@testable import Tensor

final class EmbeddingTests: XCTestCase {
    func testEmbeddingLookupAndErrors() throws {
        let weight = try Tensor(shape: [3, 2], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try Tensor.embedding(indices: [2, 0, 2], weight: weight).values, [5, 6, 1, 2, 5, 6])
        XCTAssertThrowsError(try Tensor.embedding(indices: [0, 3], weight: weight)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("index 3") && message.contains("3 rows"), message)
        }
        XCTAssertThrowsError(try Tensor.embedding(indices: [-1], weight: weight))
        XCTAssertThrowsError(try Tensor.embedding(indices: [0], weight: Tensor(zeros: [3])))

        // Repeated indices accumulate in the backward.
        let table = GradCheck.tensor([5, 3], seed: 30)
        try GradCheck.check([table]) { try Tensor.embedding(indices: [4, 1, 4, 0], weight: $0[0]) }
        table.grad = nil
        try Tensor.embedding(indices: [1, 1], weight: table).sum().backward()
        XCTAssertEqual(table.grad?.values, [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// Values worked out by hand from diffusers' formula: dimension 4, shift 1, t = 1 gives
    /// frequencies exp(0) = 1 and exp(−ln 10000 · 1 / (2 − 1)) = 1e-4.
    func testTimestepEmbeddingHandValues() throws {
        let plain = try Tensor.timestepEmbedding(timesteps: [1], dimension: 4, flipSinToCos: false, downscaleFreqShift: 1)
        let expected: [Float] = [0.841_470_98, 1e-4, 0.540_302_3, 1]
        for (a, b) in zip(plain.values, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let flipped = try Tensor.timestepEmbedding(timesteps: [1], dimension: 4, flipSinToCos: true, downscaleFreqShift: 1)
        for (a, b) in zip(flipped.values, [expected[2], expected[3], expected[0], expected[1]]) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        XCTAssertThrowsError(try Tensor.timestepEmbedding(timesteps: [1], dimension: 2, flipSinToCos: false, downscaleFreqShift: 1))
        XCTAssertThrowsError(try Tensor.timestepEmbedding(timesteps: [1], dimension: 0, flipSinToCos: false, downscaleFreqShift: 0))
    }

    func testTimestepEmbeddingMatchesFormula() throws {
        let timesteps: [Float] = [0, 1, 37.5, 999]
        for (dimension, flip, shift, scale, period) in [(8, true, Float(0), Float(1), Float(10_000)),
                                                       (7, false, 1, 2, 10_000), (320, true, 0, 1, 10_000),
                                                       (6, false, 0.5, 1, 100)] {
            let embedding = try Tensor.timestepEmbedding(timesteps: timesteps, dimension: dimension, flipSinToCos: flip,
                                                         downscaleFreqShift: shift, scale: scale, maxPeriod: period)
            XCTAssertEqual(embedding.shape, [timesteps.count, dimension])
            let half = dimension / 2
            for (row, t) in timesteps.enumerated() {
                var reference = [Double](repeating: 0, count: dimension)
                for i in 0..<half {
                    let frequency = Foundation.exp(-Foundation.log(Double(period)) * Double(i) / (Double(half) - Double(shift)))
                    let argument = Double(scale) * Double(t) * frequency
                    reference[(flip ? half : 0) + i] = Foundation.sin(argument)
                    reference[(flip ? 0 : half) + i] = Foundation.cos(argument)
                }
                for column in 0..<dimension {
                    // Float32 arguments near 1000 carry ~1e-4 of rounding, as in torch.
                    XCTAssertEqual(Double(embedding.data[row * dimension + column]), reference[column], accuracy: 3e-4,
                                   "dimension \(dimension) row \(row) column \(column)")
                }
                if dimension % 2 == 1 { XCTAssertEqual(embedding.data[row * dimension + dimension - 1], 0) }
            }
        }
    }
}
