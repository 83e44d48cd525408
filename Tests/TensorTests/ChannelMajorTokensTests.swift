import XCTest
@testable import Tensor

/// The channel-major token kernels against the permuting computation they replace, and their gradients.
final class ChannelMajorTokensTests: XCTestCase {
    private func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a.data[i] - b.data[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): max difference \(worst)", file: file, line: line)
    }

    /// Clips of 3 frames, 2 clips, 8 channels in 4 groups, 5×3 pixels (odd sizes: runs that are no
    /// multiple of the vector width).
    func testGroupNormAcrossFramesIsGroupNormOfThePermutedClip() throws {
        var g = RandomGenerator(seed: 3)
        let (clips, frames, channels, h, w) = (2, 3, 8, 5, 3)
        let x = g.normal([clips * frames, channels, h, w], mean: 0.5, std: 2)
        let weight = g.normal([channels]), bias = g.normal([channels])
        let fused = try Tensor.groupNormAcrossFrames(x, frames: frames, groups: 4, weight: weight, bias: bias, epsilon: 1e-6)
        let permuted = try x.reshaped([clips, frames, channels, h, w]).permuted([0, 2, 1, 3, 4])
        let reference = try Tensor.groupNorm(permuted, groups: 4, weight: weight, bias: bias, epsilon: 1e-6)
            .permuted([0, 2, 1, 3, 4]).reshaped(x.shape)
        assertClose(fused, reference, tolerance: 2e-6, "group norm across frames")
        XCTAssertThrowsError(try Tensor.groupNormAcrossFrames(x, frames: 4, groups: 4, weight: weight, bias: bias, epsilon: 1e-6))
        XCTAssertThrowsError(try Tensor.groupNormAcrossFrames(x, frames: 3, groups: 3, weight: weight, bias: bias, epsilon: 1e-6))
    }

    func testProjectionsReadAndWriteTheChannelMajorLayout() throws {
        var g = RandomGenerator(seed: 5)
        let (clips, frames, channels, h, w, inner) = (2, 3, 6, 4, 5, 10)
        let pixels = h * w
        let x = g.normal([clips * frames, channels, h, w])
        let weightIn = g.normal([inner, channels]), biasIn = g.normal([inner])
        let weightOut = g.normal([channels, inner]), biasOut = g.normal([channels])
        let clipsView = try x.reshaped([clips, frames, channels, pixels])
        for (order, axes) in [(Tensor.TokenOrder.pixelMajor, [0, 3, 1, 2]), (.frameMajor, [0, 1, 3, 2])] {
            let tokens = try clipsView.permuted(axes)
            for bias in [biasIn, nil] {
                let fused = try Tensor.projectChannelMajor(x, frames: frames, weight: weightIn, bias: bias, order: order)
                let reference = try Tensor.linear(tokens, weight: weightIn, bias: bias)
                assertClose(fused, reference, tolerance: 1e-5, "tokens \(order), bias \(bias != nil)")
            }
            // And back: the tokens' projection in the images' layout, plus the residual.
            let states = g.normal(order == .pixelMajor ? [clips, pixels, frames, inner] : [clips, frames, pixels, inner])
            let residual = g.normal(x.shape)
            let inverse = order == .pixelMajor ? [0, 2, 3, 1] : [0, 1, 3, 2]
            for bias in [biasOut, nil] {
                let fused = try Tensor.projectToChannelMajor(states, frames: frames, weight: weightOut, bias: bias,
                                                            residual: residual, order: order)
                let projected = try Tensor.linear(states, weight: weightOut, bias: bias).permuted(inverse).reshaped(x.shape)
                assertClose(fused, try projected + residual, tolerance: 1e-5, "images \(order), bias \(bias != nil)")
            }
        }
        XCTAssertThrowsError(try Tensor.projectChannelMajor(x, frames: frames, weight: weightOut, bias: nil, order: .frameMajor))
        XCTAssertThrowsError(try Tensor.projectToChannelMajor(g.normal([clips, pixels, frames, channels]), frames: frames,
                                                              weight: weightOut, bias: nil, residual: x, order: .pixelMajor))
    }

    func testGradientsByFiniteDifferences() throws {
        let (frames, channels, inner) = (2, 4, 6)
        let x = GradCheck.tensor([2 * frames, channels, 3, 2], seed: 1)
        let w = GradCheck.tensor([channels], seed: 2, scale: 0.5, offset: 1), b = GradCheck.tensor([channels], seed: 3)
        try GradCheck.check([x, w, b]) { try Tensor.groupNormAcrossFrames($0[0], frames: frames, groups: 2, weight: $0[1], bias: $0[2], epsilon: 1e-5) }
        let weightIn = GradCheck.tensor([inner, channels], seed: 4), biasIn = GradCheck.tensor([inner], seed: 5)
        let weightOut = GradCheck.tensor([channels, inner], seed: 6), biasOut = GradCheck.tensor([channels], seed: 7)
        let residual = GradCheck.tensor(x.shape, seed: 8)
        for order in [Tensor.TokenOrder.pixelMajor, .frameMajor] {
            try GradCheck.check([x, weightIn, biasIn]) {
                try Tensor.projectChannelMajor($0[0], frames: frames, weight: $0[1], bias: $0[2], order: order)
            }
            let tokens = GradCheck.tensor(order == .pixelMajor ? [2, 6, frames, inner] : [2, frames, 6, inner], seed: 9)
            try GradCheck.check([tokens, weightOut, biasOut, residual]) {
                try Tensor.projectToChannelMajor($0[0], frames: frames, weight: $0[1], bias: $0[2], residual: $0[3], order: order)
            }
            try GradCheck.check([tokens, weightOut, residual]) {
                try Tensor.projectToChannelMajor($0[0], frames: frames, weight: $0[1], bias: nil, residual: $0[2], order: order)
            }
        }
    }
}
