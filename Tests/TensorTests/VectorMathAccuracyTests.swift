import Foundation
import XCTest
@testable import Tensor

/// Accuracy of the FMA/Estrin vector exp and the functions built on it, in units in the last place
/// of the float result against double-precision references, over the whole useful range.
final class VectorMathAccuracyTests: XCTestCase {
    /// Largest error in float ulps of `f` over `xs` against `reference` (results below `floor` skipped).
    private func worstULP(_ xs: [Float], floor: Double = 1e-30, _ f: (VectorMath.Vector) -> VectorMath.Vector,
                          _ reference: (Double) -> Double) -> (Double, Float) {
        var worst = 0.0, at: Float = 0
        var i = 0
        while i + 8 <= xs.count {
            var v = VectorMath.Vector()
            for lane in 0..<8 { v[lane] = xs[i + lane] }
            let y = f(v)
            for lane in 0..<8 {
                let expected = reference(Double(xs[i + lane]))
                guard abs(expected) >= floor else { continue }
                let error = abs(Double(y[lane]) - expected) / Double(Float(expected).ulp)
                if error > worst { worst = error; at = xs[i + lane] }
            }
            i += 8
        }
        return (worst, at)
    }

    private func grid(_ low: Float, _ high: Float, _ count: Int) -> [Float] {
        (0..<count).map { low + (high - low) * Float($0) / Float(count - 1) }
    }

    func testExpWithinTwoULP() {
        let (worst, at) = worstULP(grid(-87, 88, 200_000), { VectorMath.exp($0) }, { Foundation.exp($0) })
        XCTAssertLessThanOrEqual(worst, 2, "exp: \(worst) ulp at \(at)")
    }

    func testSigmoidAndSiLUWithinFewULP() {
        let xs = grid(-80, 80, 200_000)
        let (sigmoid, sigmoidAt) = worstULP(xs, { VectorMath.sigmoid($0) }, { 1 / (1 + Foundation.exp(-$0)) })
        XCTAssertLessThanOrEqual(sigmoid, 3.5, "sigmoid: \(sigmoid) ulp at \(sigmoidAt)")
        let (silu, siluAt) = worstULP(xs, { VectorMath.silu($0) }, { $0 / (1 + Foundation.exp(-$0)) })
        XCTAssertLessThanOrEqual(silu, 3.5, "silu: \(silu) ulp at \(siluAt)")
        // Saturation: no NaN or infinity at the clamps.
        let extremes = VectorMath.silu(VectorMath.Vector(-1000, -100, -88, 0, 88, 100, 1000, .infinity))
        for lane in 0..<7 { XCTAssertTrue(extremes[lane].isFinite, "silu lane \(lane) = \(extremes[lane])") }
        XCTAssertEqual(extremes[6], 1000)
    }

    func testTanhAndNormalErfAbsoluteError() {
        for x in grid(-10, 10, 20_001) {
            let v = VectorMath.Vector(repeating: x)
            XCTAssertEqual(Double(VectorMath.tanh(v)[0]), Foundation.tanh(Double(x)), accuracy: 3e-7, "tanh(\(x))")
        }
        // erf(x/√2) over a grid fine enough to see its rounding (2 million points), and past the clamp.
        var worst = 0.0, at: Float = 0
        for x in grid(-12, 12, 2_000_001) {
            let error = abs(Double(VectorMath.normalErf(VectorMath.Vector(repeating: x))[0]) - Foundation.erf(Double(x) / 2.0.squareRoot()))
            if error > worst { worst = error; at = x }
        }
        XCTAssertLessThanOrEqual(worst, 3.5e-7, "normalErf: \(worst) at \(at)")
        XCTAssertEqual(VectorMath.normalErf(VectorMath.Vector(repeating: .infinity))[0], 1)
        XCTAssertEqual(VectorMath.normalErf(VectorMath.Vector(repeating: -.infinity))[0], -1)
    }

    /// GELU x Φ(x) (the exact form's kernel) within 2.2e-7 · max(1, |x|): about two float ulps for x ≥ 0,
    /// an absolute bound below 0, where GELU is small.
    func testGELUAbsoluteErrorScalesWithItsArgument() {
        var worst = 0.0, at: Float = 0
        for x in grid(-12, 12, 2_000_001) {
            let exact = 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
            let error = abs(Double(Tensor.geluErf(VectorMath.Vector(repeating: x))[0]) - exact) / max(1, abs(Double(x)))
            if error > worst { worst = error; at = x }
        }
        XCTAssertLessThanOrEqual(worst, 2.2e-7, "gelu: \(worst) · max(1, |x|) at \(at)")
    }
}
