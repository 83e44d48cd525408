import XCTest
@testable import Tensor

final class ActivationLossTests: XCTestCase {
    private let grid: [Float] = stride(from: -6, through: 6, by: 0.173).map { Float($0) }

    private func assertMatches(_ op: (Tensor) throws -> Tensor, _ reference: (Double) -> Double,
                               tolerance: Double = 2e-6, line: UInt = #line) throws {
        let x = try Tensor(shape: [grid.count], values: grid)
        let y = try op(x).values
        for (input, output) in zip(grid, y) {
            let expected = reference(Double(input))
            XCTAssertEqual(Double(output), expected, accuracy: tolerance * Swift.max(1, Swift.abs(expected)),
                           "at \(input)", line: line)
        }
    }

    func testActivationKnownValues() throws {
        func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }
        try assertMatches({ $0.silu() }) { $0 * sigmoid($0) }
        try assertMatches({ $0.gelu() }) { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
        try assertMatches({ $0.gelu(approximate: .tanh) }) {
            0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
        }
        try assertMatches({ $0.quickGELU() }) { $0 * sigmoid(1.702 * $0) }
        try assertMatches({ $0.sigmoid() }, sigmoid)
        try assertMatches({ $0.tanh() }, Foundation.tanh)
        try assertMatches({ $0.relu() }) { Swift.max($0, 0) }
        // Familiar reference points: GELU(1) = 0.8413447, GELU_tanh(1) = 0.8411920.
        XCTAssertEqual(Tensor(scalar: 1).gelu().item, 0.841_344_7, accuracy: 1e-6)
        XCTAssertEqual(Tensor(scalar: 1).gelu(approximate: .tanh).item, 0.841_192_0, accuracy: 1e-6)
    }

    func testActivationGradients() throws {
        let x = GradCheck.tensor([3, 7], seed: 21, scale: 3)
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].silu() }
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].gelu() }
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].gelu(approximate: .tanh) }
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].quickGELU() }
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].sigmoid() }
        try GradCheck.check([x], epsilon: 1e-3) { $0[0].tanh() }
        // Away from the kink, so the finite difference does not straddle 0.
        let y = try Tensor(shape: [8], values: [-2, -1.1, -0.4, -0.05, 0.07, 0.3, 1.2, 2.5])
        y.requiresGrad = true
        try GradCheck.check([y]) { $0[0].relu() }
    }

    func testGEGLUHalvesAndGradient() throws {
        // [hidden0, hidden1, gate0, gate1]: the first half is hidden, the second the gate (diffusers).
        let x = try Tensor(shape: [1, 4], values: [2, -3, 0.5, -1])
        func gelu(_ v: Double) -> Double { 0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot())) }
        let y = try x.geglu()
        XCTAssertEqual(y.shape, [1, 2])
        XCTAssertEqual(Double(y.values[0]), 2 * gelu(0.5), accuracy: 1e-6)
        XCTAssertEqual(Double(y.values[1]), -3 * gelu(-1), accuracy: 1e-6)
        XCTAssertThrowsError(try Tensor(zeros: [2, 3]).geglu()) { XCTAssertTrue("\($0)".contains("geglu")) }

        let wide = GradCheck.tensor([2, 3, 22], seed: 22, scale: 2)
        try GradCheck.check([wide], epsilon: 1e-3) { try $0[0].geglu() }
        try GradCheck.check([wide], epsilon: 1e-3) { try $0[0].geglu(approximate: .tanh) }
        // Same as the composition of its parts.
        let parts = try wide.chunked(2, axis: -1)
        let composed = try parts[0] * parts[1].gelu()
        let fused = try wide.geglu()
        for (a, b) in zip(composed.values, fused.values) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testDropout() throws {
        let x = Tensor(repeating: 1, shape: [10_000])
        var generator = RandomGenerator(seed: 8)
        let unchanged = try x.dropout(p: 0.5, generator: &generator, training: false)
        XCTAssertTrue(unchanged === x)
        XCTAssertEqual(generator.offset, 0)

        let y = try x.dropout(p: 0.3, generator: &generator, training: true).values
        XCTAssertEqual(generator.offset, 2500)
        XCTAssertTrue(y.allSatisfy { $0 == 0 || Swift.abs($0 - 1 / 0.7) < 1e-6 })
        XCTAssertEqual(Double(y.filter { $0 == 0 }.count) / 10_000, 0.3, accuracy: 0.02)
        XCTAssertThrowsError(try x.dropout(p: 1.5, generator: &generator, training: true))
        XCTAssertTrue(try x.dropout(p: 1, generator: &generator, training: true).values.allSatisfy { $0 == 0 })

        // The gradient is the same mask: checked with the generator rewound for every evaluation.
        let input = GradCheck.tensor([4, 6], seed: 23)
        let start = RandomGenerator(seed: 9)
        try GradCheck.check([input]) { inputs in
            var rewound = start
            return try inputs[0].dropout(p: 0.4, generator: &rewound, training: true)
        }
    }

    func testMSEAndL1() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        let b = try Tensor(shape: [2, 2], values: [0, 2, 5, 3])
        XCTAssertEqual(try Tensor.mseLoss(a, b).item, (1 + 0 + 4 + 1) / 4)
        XCTAssertEqual(try Tensor.l1Loss(a, b).item, (1 + 0 + 2 + 1) / 4)
        XCTAssertThrowsError(try Tensor.mseLoss(a, Tensor(zeros: [4]))) { XCTAssertTrue("\($0)".contains("mseLoss")) }

        let x = GradCheck.tensor([3, 5], seed: 24), y = GradCheck.tensor([3, 5], seed: 25)
        try GradCheck.check([x, y]) { try Tensor.mseLoss($0[0], $0[1]) }
        // Differences kept away from 0 so the finite difference does not cross the kink.
        let shifted = try Tensor(shape: x.shape, values: x.values.enumerated().map { $0.element + ($0.offset % 2 == 0 ? 0.3 : -0.3) })
        shifted.requiresGrad = true
        let base = x.detached()
        try GradCheck.check([shifted]) { try Tensor.l1Loss($0[0], base) }

        // A large loss is the same on any thread count.
        var generator = RandomGenerator(seed: 10)
        let big1 = generator.normal([300_001]), big2 = generator.normal([300_001])
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let single = try Tensor.mseLoss(big1, big2).item
        Parallel.threadCount = 2
        XCTAssertEqual(try Tensor.mseLoss(big1, big2).item, single)
        XCTAssertEqual(Double(single), 2, accuracy: 0.02)
    }

    func testCosineSimilarity() throws {
        let a = try Tensor(shape: [2, 2], values: [1, 0, 3, 4])
        let b = try Tensor(shape: [2, 2], values: [1, 1, -3, -4])
        let s = try Tensor.cosineSimilarity(a, b).values
        XCTAssertEqual(s[0], Float(1 / 2.0.squareRoot()), accuracy: 1e-6)
        XCTAssertEqual(s[1], -1, accuracy: 1e-6)
        // Axis 0 and broadcasting of a single vector against rows.
        let columns = try Tensor.cosineSimilarity(a, b, axis: 0).values
        XCTAssertEqual(columns[0], Float((1 - 9) / (10.0.squareRoot() * 10.0.squareRoot())), accuracy: 1e-6)
        let row = try Tensor(shape: [1, 2], values: [0, 2])
        XCTAssertEqual(try Tensor.cosineSimilarity(a, row, axis: -1).values, [0, 0.8])
        // A zero vector: its norm clamps to epsilon and the similarity is 0, not NaN.
        XCTAssertEqual(try Tensor.cosineSimilarity(Tensor(zeros: [1, 3]), Tensor(repeating: 1, shape: [1, 3])).values, [0])
        XCTAssertThrowsError(try Tensor.cosineSimilarity(a, b, axis: 2))

        let x = GradCheck.tensor([2, 3, 4], seed: 26), y = GradCheck.tensor([2, 3, 4], seed: 27)
        try GradCheck.check([x, y], epsilon: 1e-3) { try Tensor.cosineSimilarity($0[0], $0[1]) }
        try GradCheck.check([x, y], epsilon: 1e-3) { try Tensor.cosineSimilarity($0[0], $0[1], axis: -1) }
        let single = GradCheck.tensor([4], seed: 28)
        try GradCheck.check([x, single], epsilon: 1e-3) { try Tensor.cosineSimilarity($0[0], $0[1], axis: 2) }
    }

    func testTopKMean() throws {
        let x = try Tensor(shape: [2, 4], values: [1, 5, 3, 5, -1, -2, -3, 0])
        XCTAssertEqual(try Tensor.topKMean(x, k: 2).values, [5, -0.5])
        XCTAssertEqual(try Tensor.topKMean(x, k: 3).values, [13.0 / 3, -1])
        XCTAssertThrowsError(try Tensor.topKMean(x, k: 5)) { XCTAssertTrue("\($0)".contains("k 5")) }

        // Ties go to the lower index; the gradient reaches only the chosen entries.
        let tied = try Tensor(shape: [1, 3], values: [2, 2, 2])
        tied.requiresGrad = true
        try Tensor.topKMean(tied, k: 2).sum().backward()
        XCTAssertEqual(tied.grad?.values, [0.5, 0.5, 0])

        // Well-separated values so a finite-difference step never reorders a row.
        let spaced = try Tensor(shape: [3, 5], values: (0..<15).map { Float(($0 * 7) % 15) * 0.1 - 0.7 })
        spaced.requiresGrad = true
        try GradCheck.check([spaced]) { try Tensor.topKMean($0[0], k: 2) }
    }

    func testFiniteness() throws {
        let good = try Tensor(shape: [20], values: (0..<20).map(Float.init))
        XCTAssertTrue(good.isFinite)
        let bad = good.copy()
        bad[flat: 17] = .nan
        bad.name = "unet.conv_in.weight"
        XCTAssertFalse(bad.isFinite)
        let infinite = good.copy()
        infinite[flat: 3] = -.infinity
        XCTAssertFalse(infinite.isFinite)
        XCTAssertNoThrow(try Tensor.assertFinite([good], what: "gradient"))
        XCTAssertThrowsError(try Tensor.assertFinite([good, bad], what: "gradient")) { error in
            XCTAssertTrue("\(error)".contains("gradient of unet.conv_in.weight"), "\(error)")
        }
    }
}
