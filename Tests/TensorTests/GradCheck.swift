import XCTest
@testable import Tensor

/// Finite-difference gradient checking shared by every op's test.
///
/// The checked loss is L = Σ f(inputs) ⊙ W with a fixed random W, so every output element
/// contributes with a different weight. Analytic gradients from `backward()` are compared with
/// central differences (L evaluated in Double to keep Float32 rounding out of the difference).
enum GradCheck {
    /// Deterministic pseudo-random values in [-1, 1) (tests only; the engine has its own generator).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    static func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
        let t = try! Tensor(shape: shape, values: values(shape.reduce(1, *), seed: seed).map { $0 * scale + offset })
        t.requiresGrad = true
        return t
    }

    /// Checks d(Σ f ⊙ W)/d(input) for every input with `requiresGrad`.
    /// `tolerance` bounds |analytic − numeric| ≤ tolerance · max(1, |numeric|).
    static func check(_ inputs: [Tensor], epsilon: Float = 1e-2, tolerance: Float = 2e-2,
                      file: StaticString = #filePath, line: UInt = #line,
                      _ f: ([Tensor]) throws -> Tensor) throws {
        for input in inputs { input.grad = nil }
        let output = try f(inputs)
        let weights = try Tensor(shape: output.shape, values: values(output.count, seed: 99))
        let loss = try (output * weights).sum()
        try loss.backward()

        func numericLoss() throws -> Double {
            let y = try Tensor.withoutGrad { try f(inputs) }
            var total = 0.0
            for i in 0..<y.count { total += Double(y.data[i]) * Double(weights.data[i]) }
            return total
        }
        for (index, input) in inputs.enumerated() where input.requiresGrad {
            guard let grad = input.grad else {
                XCTFail("input \(index): no gradient", file: file, line: line); continue
            }
            var worst: Float = 0
            for i in 0..<input.count {
                let saved = input.data[i]
                input.data[i] = saved + epsilon
                let plus = try numericLoss()
                input.data[i] = saved - epsilon
                let minus = try numericLoss()
                input.data[i] = saved
                let numeric = Float((plus - minus) / Double(2 * epsilon))
                let error = Swift.abs(grad.data[i] - numeric) / Swift.max(1, Swift.abs(numeric))
                worst = Swift.max(worst, error)
                if error > tolerance {
                    XCTFail("input \(index) element \(i): analytic \(grad.data[i]) vs numeric \(numeric)",
                            file: file, line: line)
                    return
                }
            }
        }
    }
}
