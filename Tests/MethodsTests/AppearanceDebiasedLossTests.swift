import Methods
import Tensor
import XCTest

/// MotionDirector's temporal loss against a by-hand computation in Double.
final class AppearanceDebiasedLossTests: XCTestCase {
    /// [batch 1, channels 2, frames 3, 1×2] values.
    let prediction = try! Tensor(shape: [1, 2, 3, 1, 2], values: [0.5, -1, 2, 0.25, -0.75, 1.5, 1, 0, -2, 0.5, 3, -1])
    let target = try! Tensor(shape: [1, 2, 3, 1, 2], values: [0.25, 1, -1, 0.5, 0.75, 2, -0.5, 0.25, 1, 1.5, -2, 0])

    /// φ by hand: sqrt(β² + 1)·e[c, f, x] − β·e[c, anchor, x].
    func debiasedByHand(_ e: [Float], beta: Double, anchor: Int) -> [Double] {
        var result: [Double] = []
        for channel in 0..<2 {
            for frame in 0..<3 {
                for x in 0..<2 {
                    let value = Double(e[(channel * 3 + frame) * 2 + x]), anchored = Double(e[(channel * 3 + anchor) * 2 + x])
                    result.append((beta * beta + 1).squareRoot() * value - beta * anchored)
                }
            }
        }
        return result
    }

    func mse(_ a: [Double], _ b: [Double]) -> Double {
        zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(a.count)
    }

    func testLossMatchesAHandComputation() throws {
        for (beta, anchor) in [(1.0, 0), (1.0, 2), (0.5, 1), (2.0, 1)] {
            let plain = mse(prediction.values.map(Double.init), target.values.map(Double.init))
            let debiased = mse(debiasedByHand(prediction.values, beta: beta, anchor: anchor),
                               debiasedByHand(target.values, beta: beta, anchor: anchor))
            let loss = try AppearanceDebiasedLoss.temporalLoss(prediction: prediction, target: target, beta: Float(beta), anchor: anchor)
            XCTAssertEqual(Double(loss.item), plain + debiased, accuracy: 1e-5 * (plain + debiased), "beta \(beta) anchor \(anchor)")
            let term = try AppearanceDebiasedLoss.debiasedTerm(prediction: prediction, target: target, beta: Float(beta), anchor: anchor)
            XCTAssertEqual(Double(term.item), debiased, accuracy: 1e-5 * debiased)
            let phi = try AppearanceDebiasedLoss.debias(prediction, beta: Float(beta), anchor: anchor)
            for (actual, expected) in zip(phi.values, debiasedByHand(prediction.values, beta: beta, anchor: anchor)) {
                XCTAssertEqual(Double(actual), expected, accuracy: 1e-5)
            }
        }
    }

    func testBetaZeroIsPlainMSE() throws {
        let term = try AppearanceDebiasedLoss.debiasedTerm(prediction: prediction, target: target, beta: 0, anchor: 1)
        let plain = try Tensor.mseLoss(prediction, target)
        XCTAssertEqual(term.item, plain.item)
        XCTAssertEqual(try AppearanceDebiasedLoss.temporalLoss(prediction: prediction, target: target, beta: 0, anchor: 2).item,
                       2 * plain.item, accuracy: 1e-6)
    }

    /// What every frame shares is discounted: a field f added to every frame of the prediction moves
    /// φ by (sqrt(β² + 1) − β)·f (0.41·f at β = 1), while it moves the prediction itself by f.
    func testTheDebiasedTermDiscountsWhatEveryFrameShares() throws {
        let field = try Tensor(shape: [1, 2, 1, 1, 2], values: [0.5, -0.5, 1, 0.25])
        let shifted = try prediction + field
        let plainShift = try Tensor.mseLoss(shifted, target).item - Tensor.mseLoss(prediction, target).item
        let debiased = try AppearanceDebiasedLoss.debias(shifted, beta: 1, anchor: 0)
        let original = try AppearanceDebiasedLoss.debias(prediction, beta: 1, anchor: 0)
        let moved = try debiased - original
        let expected = try (field * (Float(2).squareRoot() - 1)).broadcast(to: [1, 2, 3, 1, 2])
        for (actual, wanted) in zip(moved.values, expected.values) { XCTAssertEqual(actual, wanted, accuracy: 1e-6) }
        XCTAssertNotEqual(plainShift, 0)
    }

    func testGradientMatchesFiniteDifferences() throws {
        let x = prediction.copy()
        x.requiresGrad = true
        try AppearanceDebiasedLoss.temporalLoss(prediction: x, target: target, beta: 1.5, anchor: 1).backward()
        let analytic = try XCTUnwrap(x.grad).values
        let step: Float = 1e-2
        for index in 0..<x.count {
            func loss(_ delta: Float) throws -> Double {
                let probe = prediction.copy()
                probe[flat: index] += delta
                return Double(try AppearanceDebiasedLoss.temporalLoss(prediction: probe, target: target, beta: 1.5, anchor: 1).item)
            }
            let numeric = (try loss(step) - loss(-step)) / Double(2 * step)
            XCTAssertEqual(Double(analytic[index]), numeric, accuracy: 1e-3, "element \(index)")
        }
    }

    func testBadAnchorIsNamed() {
        XCTAssertThrowsError(try AppearanceDebiasedLoss.debias(prediction, beta: 1, anchor: 3)) { error in
            XCTAssertTrue("\(error)".contains("anchor 3"), "\(error)")
        }
    }
}
