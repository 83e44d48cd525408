import Adapters
import Models
import Tensor
import XCTest

/// One LoRA on one layer: forward against a by-hand computation, gradients against finite
/// differences, initialisation, dropout, scale and switching.
final class LoRALayerTests: XCTestCase {
    func makeLinear() -> Linear {
        let layer = Linear(5, 3)
        Support.fill(layer.weight, seed: 1)
        Support.fill(layer.bias!, seed: 2)
        return layer
    }

    func attach(_ layer: Module, alpha: Float, rank: Int, multiplier: Float = 1, seed: UInt64) throws -> LoRA {
        let adaptable = try XCTUnwrap(AdaptableLayer(layer))
        let geometry = adaptable.geometry
        let lora = try LoRA(adapterName: "a", modulePath: "layer", geometry: geometry, alpha: alpha,
                            down: Support.tensor(geometry.downShape(rank: rank), seed: seed),
                            up: Support.tensor(geometry.upShape(rank: rank), seed: seed + 1))
        lora.multiplier = multiplier
        switch adaptable {
        case let .linear(l): l.deltas.append(lora)
        case let .conv2d(l): l.deltas.append(lora)
        case let .conv3dTemporal(l): l.deltas.append(lora)
        }
        return lora
    }

    func testLinearForwardIsBasePlusScaledBAx() throws {
        let layer = makeLinear()
        let lora = try attach(layer, alpha: 6, rank: 2, multiplier: 0.5, seed: 3)
        XCTAssertEqual(lora.scale, 3)
        XCTAssertEqual(lora.effectiveScale, 1.5)
        let x = Support.tensor([2, 4, 5], seed: 7)
        let y = try layer(x)
        XCTAssertEqual(y.shape, [2, 4, 3])
        let delta = Support.product(up: lora.up, down: lora.down)
        var expected: [Float] = []
        for row in 0..<8 {
            for o in 0..<3 {
                var base = Double(layer.bias!.data[o]), extra = 0.0
                for i in 0..<5 {
                    base += Double(layer.weight.data[o * 5 + i]) * Double(x.data[row * 5 + i])
                    extra += delta[o * 5 + i] * Double(x.data[row * 5 + i])
                }
                expected.append(Float(base + 1.5 * extra))
            }
        }
        Support.assertClose(y.values, expected, tolerance: 1e-5, "linear + LoRA")
    }

    func testConv2dForwardMatchesDirectConvolutionWithStrideAndPadding() throws {
        let layer = Conv2d(3, 4, kernelSize: 3, stride: 2, padding: 1)
        Support.fill(layer.weight, seed: 11)
        Support.fill(layer.bias!, seed: 12)
        let lora = try attach(layer, alpha: 2, rank: 2, seed: 13)
        XCTAssertEqual(lora.down.shape, [2, 3, 3, 3])
        XCTAssertEqual(lora.up.shape, [4, 2, 1, 1])
        let x = Support.tensor([2, 3, 7, 6], seed: 14)
        let y = try layer(x)
        let weight = Support.addScaled(layer.weight, Support.product(up: lora.up, down: lora.down), scale: 1)
        let expected = Support.conv2d(x, weight: weight, outChannels: 4, kernel: 3, stride: 2, padding: 1, bias: layer.bias)
        XCTAssertEqual(y.shape, [2, 4, 4, 3])
        Support.assertClose(y.values, expected, tolerance: 1e-5, "conv2d + LoRA")
    }

    func testConv3dTemporalForwardMatchesDirectConvolution() throws {
        let layer = Conv3dTemporal(3, 2, kernelFrames: 3)
        Support.fill(layer.weight, seed: 21)
        Support.fill(layer.bias!, seed: 22)
        let lora = try attach(layer, alpha: 3, rank: 2, multiplier: 2, seed: 23)
        XCTAssertEqual(lora.down.shape, [2, 3, 3, 1, 1])
        XCTAssertEqual(lora.up.shape, [2, 2, 1, 1, 1])
        let x = Support.tensor([2, 3, 4, 2, 3], seed: 24)
        let y = try layer(x)
        let weight = Support.addScaled(layer.weight, Support.product(up: lora.up, down: lora.down), scale: 3)
        let expected = Support.conv3dTemporal(x, weight: weight, outChannels: 2, kernel: 3, bias: layer.bias)
        Support.assertClose(y.values, expected, tolerance: 1e-5, "conv3d + LoRA")
    }

    func testRSLoRAScaleIsAlphaOverRootRank() throws {
        let config = LoRAConfig(rank: 16, alpha: 8, useRSLoRA: true)
        XCTAssertEqual(config.scale, 2)
        XCTAssertEqual(LoRAConfig(rank: 16, alpha: 8).scale, 0.5)
        XCTAssertEqual(LoRAConfig(rank: 4).alpha, 4)
    }

    func testNewLoRALeavesOutputUnchangedAndInitialisesAsPEFT() throws {
        let layer = makeLinear()
        let x = Support.tensor([6, 5], seed: 31)
        let before = try layer(x).values
        var generator = RandomGenerator(seed: 9)
        let geometry = AdaptableLayer(layer)!.geometry
        // Wide layer for statistics: in = 400, rank 8.
        let wide = LoRAGeometry.linear(inFeatures: 400, outFeatures: 3)
        let kaiming = try LoRA(adapterName: "k", modulePath: "w", geometry: wide,
                               config: LoRAConfig(rank: 8, alpha: 8), generator: &generator)
        let bound: Float = 1 / Float(400).squareRoot()
        XCTAssertLessThanOrEqual(kaiming.down.values.map(abs).max()!, bound)
        XCTAssertGreaterThan(kaiming.down.values.map(abs).max()!, 0.9 * bound)
        let gaussian = try LoRA(adapterName: "g", modulePath: "w", geometry: wide,
                                config: LoRAConfig(rank: 8, alpha: 8, initialisation: .gaussian), generator: &generator)
        let values = gaussian.down.values
        let std = (values.map { $0 * $0 }.reduce(0, +) / Float(values.count)).squareRoot()
        XCTAssertEqual(std, 1 / 8, accuracy: 0.01, "PEFT's gaussian: std 1/r")
        XCTAssertTrue(gaussian.up.values.allSatisfy { $0 == 0 })

        let lora = try LoRA(adapterName: "n", modulePath: "layer", geometry: geometry,
                            config: LoRAConfig(rank: 2, alpha: 4), generator: &generator)
        layer.deltas.append(lora)
        XCTAssertEqual(try layer(x).values, before, "B = 0: the output is unchanged bit for bit")
    }

    func testDisabledOrZeroMultiplierAddsNothing() throws {
        let layer = makeLinear()
        let x = Support.tensor([4, 5], seed: 41)
        let base = try Tensor.linear(x, weight: layer.weight, bias: layer.bias).values
        let lora = try attach(layer, alpha: 2, rank: 2, seed: 42)
        XCTAssertNotEqual(try layer(x).values, base)
        lora.isEnabled = false
        XCTAssertEqual(try layer(x).values, base)
        lora.isEnabled = true
        lora.multiplier = 0
        XCTAssertEqual(try layer(x).values, base)
    }

    func testDropoutActsOnlyWhileTrainingAndIsReproducible() throws {
        let layer = makeLinear()
        let lora = try attach(layer, alpha: 2, rank: 2, seed: 51)
        lora.dropout = 0.5
        let x = Support.tensor([8, 5], seed: 52)
        let inference = try layer(x).values
        XCTAssertEqual(try layer(x).values, inference, "no generator: dropout off")
        lora.dropoutGenerator = RandomGenerator(seed: 3)
        let first = try layer(x).values
        let second = try layer(x).values
        XCTAssertNotEqual(first, inference)
        XCTAssertNotEqual(first, second, "the generator advances between calls")
        lora.dropoutGenerator = RandomGenerator(seed: 3)
        XCTAssertEqual(try layer(x).values, first, "same generator state, same masks")
        // Dropout acts on the LoRA input only: the base part is intact. With x's row zeroed by the mask, the
        // output is base; element-wise the delta is B·A·(m ⊙ x)/(1-p), checked by hand.
        var generator = RandomGenerator(seed: 3)
        let mask = generator.bernoulli(x.shape, probability: 0.5)
        let delta = Support.product(up: lora.up, down: lora.down)
        var expected: [Float] = []
        for row in 0..<8 {
            for o in 0..<3 {
                var value = Double(layer.bias!.data[o])
                for i in 0..<5 {
                    let xi = Double(x.data[row * 5 + i])
                    value += Double(layer.weight.data[o * 5 + i]) * xi
                    value += Double(lora.scale) * delta[o * 5 + i] * xi * Double(mask.data[row * 5 + i]) * 2
                }
                expected.append(Float(value))
            }
        }
        Support.assertClose(first, expected, tolerance: 1e-5, "dropout on the LoRA input")
    }

    /// Finite differences for A and B of a Conv2d LoRA and a Linear LoRA through a tiny model:
    /// conv(3→4, 3×3) + LoRA → SiLU → channels last → linear(4→2) + LoRA, loss = Σ y ⊙ W.
    func testGradientsOfBothFactorsMatchFiniteDifferences() throws {
        let conv = Conv2d(3, 4, kernelSize: 3, padding: 1)
        Support.fill(conv.weight, seed: 61, scale: 0.5)
        Support.fill(conv.bias!, seed: 62, scale: 0.1)
        let linear = Linear(4, 2)
        Support.fill(linear.weight, seed: 63, scale: 0.5)
        let convLoRA = try attach(conv, alpha: 4, rank: 2, seed: 64)
        let linearLoRA = try attach(linear, alpha: 1, rank: 3, seed: 66)
        let x = Support.tensor([2, 3, 4, 4], seed: 68)
        let weights = Support.tensor([2 * 16, 2], seed: 69)
        func loss() throws -> Tensor {
            let h = try conv(x).silu().permuted([0, 2, 3, 1]).reshaped([2 * 16, 4])
            return try (linear(h) * weights).sum()
        }
        let parameters = [convLoRA.down, convLoRA.up, linearLoRA.down, linearLoRA.up]
        for p in parameters { p.requiresGrad = true; p.grad = nil }
        try loss().backward()
        for (index, p) in parameters.enumerated() {
            let grad = try XCTUnwrap(p.grad, "parameter \(index)")
            for i in 0..<p.count {
                let saved = p.data[i]
                let epsilon: Float = 1e-2
                p.data[i] = saved + epsilon
                let plus = try Tensor.withoutGrad { try loss() }.item
                p.data[i] = saved - epsilon
                let minus = try Tensor.withoutGrad { try loss() }.item
                p.data[i] = saved
                let numeric = (plus - minus) / (2 * epsilon)
                XCTAssertEqual(grad.data[i], numeric, accuracy: 2e-2 * max(1, abs(numeric)), "parameter \(index) element \(i)")
            }
        }
        XCTAssertNil(conv.weight.grad, "the base weight is frozen")
    }

    func testTemporalConvGradientsMatchFiniteDifferences() throws {
        let layer = Conv3dTemporal(2, 3, kernelFrames: 3)
        Support.fill(layer.weight, seed: 71)
        let lora = try attach(layer, alpha: 2, rank: 2, seed: 72)
        let x = Support.tensor([1, 2, 4, 2, 2], seed: 74)
        let weights = Support.tensor([1, 3, 4, 2, 2], seed: 75)
        func loss() throws -> Tensor { try (layer(x).tanh() * weights).sum() }
        for p in [lora.down, lora.up] { p.requiresGrad = true; p.grad = nil }
        try loss().backward()
        for p in [lora.down, lora.up] {
            let grad = try XCTUnwrap(p.grad)
            for i in 0..<p.count {
                let saved = p.data[i]
                p.data[i] = saved + 1e-2
                let plus = try Tensor.withoutGrad { try loss() }.item
                p.data[i] = saved - 1e-2
                let minus = try Tensor.withoutGrad { try loss() }.item
                p.data[i] = saved
                let numeric = (plus - minus) / 2e-2
                XCTAssertEqual(grad.data[i], numeric, accuracy: 2e-2 * max(1, abs(numeric)))
            }
        }
    }

    func testFactorsOfTheWrongShapeAreRejected() {
        let geometry = LoRAGeometry.linear(inFeatures: 5, outFeatures: 3)
        XCTAssertThrowsError(try LoRA(adapterName: "a", modulePath: "p", geometry: geometry, alpha: 1,
                                      down: Tensor(zeros: [2, 5]), up: Tensor(zeros: [3, 4]))) { error in
            XCTAssertTrue("\(error)".contains("p"), "\(error)")
        }
        var generator = RandomGenerator(seed: 1)
        XCTAssertThrowsError(try LoRA(adapterName: "a", modulePath: "p", geometry: geometry,
                                      config: LoRAConfig(rank: 0), generator: &generator))
        XCTAssertThrowsError(try LoRA(adapterName: "a", modulePath: "p", geometry: geometry,
                                      config: LoRAConfig(rank: 2, dropout: 1), generator: &generator))
    }
}
