import XCTest
@testable import Tensor

/// `Tensor.samplewise`: a batch's pass run sample by sample, side by side, as one gradient node.
final class SamplewisePassTests: XCTestCase {
    /// A small pass with two parameters, one of them used twice, and a third that only odd samples
    /// reach: rows `[1, 4]` of `x` and `[1, 3]` of `c` → `[2, 3]`.
    struct Pass {
        let weight = GradCheck.tensor([3, 4], seed: 1, scale: 0.5)
        let bias = GradCheck.tensor([3], seed: 2, scale: 0.5)
        let odd = GradCheck.tensor([3], seed: 3, scale: 0.5)

        func sample(_ index: Int, _ x: Tensor, _ c: Tensor) throws -> Tensor {
            let h = try (Tensor.linear(x, weight: weight, bias: bias) * c).tanh()
            let again = try Tensor.linear(h.matmul(weight), weight: weight)
            let out = index % 2 == 1 ? try again + odd : again
            return try Tensor.concat([out, h], axis: 0)
        }

        func batch(_ x: Tensor, _ c: Tensor) throws -> Tensor {
            try Tensor.samplewise(batch: x.shape[0], inputs: [x, c]) { index, rows in try sample(index, rows[0], rows[1]) }
        }

        var parameters: [Tensor] { [weight, bias, odd] }
    }

    func testFiniteDifferences() throws {
        let pass = Pass()
        let x = GradCheck.tensor([3, 4], seed: 4), c = GradCheck.tensor([3, 3], seed: 5)
        try GradCheck.check([x, c] + pass.parameters, epsilon: 1e-3, tolerance: 1e-2) { inputs in
            try Tensor.samplewise(batch: 3, inputs: [inputs[0], inputs[1]]) { index, rows in try pass.sample(index, rows[0], rows[1]) }
        }
    }

    /// Each parameter's gradient is the samples' gradients added in sample order, each sample's
    /// computed as its own backward pass would: the same bytes on one thread and on two, and as
    /// backward passes of the samples one after another accumulate them.
    func testGradientsAreTheSamplesAddedInOrderOnAnyThreadCount() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let pass = Pass()
        pass.weight.gradMask = try Tensor(shape: [3, 4], values: (0..<12).map { $0 % 5 == 0 ? 0 : 1 })
        var generator = RandomGenerator(seed: 8)
        let x = generator.normal([3, 4]), c = generator.normal([3, 3])
        x.requiresGrad = true

        func gradients(threads: Int) throws -> [[Float]] {
            Parallel.threadCount = threads
            for tensor in pass.parameters + [x] { tensor.grad = nil }
            try pass.batch(x, c).pow(2).sum().backward()
            return try (pass.parameters + [x]).map { try XCTUnwrap($0.grad).values }
        }
        let two = try gradients(threads: 2), one = try gradients(threads: 1), three = try gradients(threads: 3)
        XCTAssertEqual(two, one)
        XCTAssertEqual(three, one)

        for tensor in pass.parameters + [x] { tensor.grad = nil }
        for index in 0..<3 {
            let row = try x.slice(rows: index..<index + 1)
            try pass.sample(index, row, c.slice(rows: index..<index + 1)).pow(2).sum().backward()
        }
        XCTAssertEqual(try (pass.parameters + [x]).map { try XCTUnwrap($0.grad).values }, one,
                       "as the samples' own backward passes, one after another")
        XCTAssertEqual(pass.weight.grad!.values.enumerated().filter { $0.offset % 5 == 0 }.map(\.element), [0, 0, 0],
                       "the mask applies to the sum")
    }

    /// Without gradient recording it is the samples' outputs joined; an input that needs no gradient
    /// gets none, and a batch whose outputs do not join is refused.
    func testOutputsAndRefusals() throws {
        let pass = Pass()
        var generator = RandomGenerator(seed: 9)
        let x = generator.normal([2, 4]), c = generator.normal([2, 3])
        let joined = try Tensor.withoutGrad { try pass.batch(x, c) }
        let alone = try Tensor.withoutGrad {
            try (0..<2).flatMap { try pass.sample($0, x.slice(rows: $0..<$0 + 1), c.slice(rows: $0..<$0 + 1)).values }
        }
        XCTAssertEqual(joined.shape, [4, 3])
        XCTAssertEqual(joined.values, alone)

        for tensor in pass.parameters { tensor.grad = nil }
        try pass.batch(x, c).sum().backward()
        XCTAssertNil(x.grad)
        XCTAssertNotNil(pass.odd.grad)

        XCTAssertThrowsError(try Tensor.samplewise(batch: 2, inputs: [x, generator.normal([3, 3])]) { _, rows in rows[0] }) { error in
            XCTAssertTrue("\(error)".contains("[3, 3]"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.samplewise(batch: 2, inputs: [x]) { index, rows in
            index == 0 ? rows[0] : try rows[0].reshaped([2, 2])
        }) { error in
            XCTAssertTrue("\(error)".contains("do not join"), "\(error)")
        }
        // A tensor with gradient history from before the pass would have every sample's backward
        // pass run its nodes: refused, naming it.
        let doubled = pass.bias * 2
        XCTAssertThrowsError(try Tensor.samplewise(batch: 2, inputs: [x]) { _, rows in try rows[0].sum(axes: [1]) + doubled.sum() }) { error in
            XCTAssertTrue("\(error)".contains("before it"), "\(error)")
        }
    }
}
