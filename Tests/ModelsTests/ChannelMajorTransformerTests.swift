import Models
import Tensor
import XCTest

/// Inference through Transformer2DModel and TransformerTemporalModel skips their permutes
/// (Tensor.projectChannelMajor): it must compute what the recorded path computes, and an adapter on
/// a projection must still apply.
final class ChannelMajorTransformerTests: XCTestCase {
    /// Adds a constant to a linear projection's output.
    final class ConstantDelta: LayerDelta {
        let adapterName = "constant"
        let isPerSample = true
        let outFeatures: Int
        init(outFeatures: Int) { self.outFeatures = outFeatures }
        func delta(_ x: Tensor) throws -> Tensor? { Tensor(repeating: 0.25, shape: Array(x.shape.dropLast()) + [outFeatures]) }
    }

    /// A conv's delta: the same constant on every output channel and pixel.
    final class ConstantConvDelta: LayerDelta {
        let adapterName = "constant"
        let isPerSample = true
        let outChannels: Int
        init(outChannels: Int) { self.outChannels = outChannels }
        func delta(_ x: Tensor) throws -> Tensor? { Tensor(repeating: 0.25, shape: [x.shape[0], outChannels, x.shape[2], x.shape[3]]) }
    }

    private func randomize(_ module: Module, seed: UInt64) {
        var g = RandomGenerator(seed: seed)
        for (_, p) in module.namedParameters() {
            let values = g.normal(p.shape, std: 0.3)
            p.data.update(from: values.data, count: p.count)
        }
    }

    private func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.data[i] - b.data[i])) }
        return worst
    }

    /// Recorded (gradient on) and inference outputs, and the inference output with a delta installed by `install`.
    private func outputs(_ run: () throws -> Tensor, install: () -> Void) throws -> (recorded: Tensor, inference: Tensor, withDelta: (recorded: Tensor, inference: Tensor)) {
        let recorded = try run()
        let inference = try Tensor.withoutGrad { try run() }
        install()
        return (recorded, inference, (try run(), try Tensor.withoutGrad { try run() }))
    }

    func testTemporalTransformerInferenceIsTheRecordedPath() throws {
        let model = TransformerTemporalModel(heads: 2, headDimension: 8, inChannels: 32, normGroups: 8, positionalEmbeddingLength: 8)
        randomize(model, seed: 11)
        var g = RandomGenerator(seed: 12)
        let x = g.normal([2 * 3, 32, 5, 3])
        let context = ForwardContext(frames: 3)
        let (recorded, inference, withDelta) = try outputs({ try model(x, context: context) }) {
            model.projOut.deltas = [ConstantDelta(outFeatures: 32)]
        }
        XCTAssertEqual(inference.shape, x.shape)
        XCTAssertLessThanOrEqual(maxDifference(recorded, inference), 1e-5)
        XCTAssertLessThanOrEqual(maxDifference(withDelta.recorded, withDelta.inference), 1e-5)
        XCTAssertEqual(maxDifference(withDelta.inference, inference), 0.25, accuracy: 1e-5, "the delta on proj_out applies in inference")
        // Inference took the channel-major ops: their composition gives its bytes, which the
        // permuting path's rounding does not.
        let direct = try Tensor.withoutGrad { () -> Tensor in
            let normed = try Tensor.groupNormAcrossFrames(x, frames: 3, groups: 8, weight: model.norm.weight, bias: model.norm.bias,
                                                          epsilon: model.norm.epsilon)
            var states = try Tensor.projectChannelMajor(normed, frames: 3, weight: model.projIn.weight, bias: model.projIn.bias,
                                                        order: .pixelMajor).reshaped([2 * 15, 3, 16])
            for block in model.transformerBlocks { states = try block(states, encoderHiddenStates: nil, context: context) }
            return try Tensor.projectToChannelMajor(states, frames: 3, weight: model.projOut.weight, bias: model.projOut.bias,
                                                    residual: x, order: .pixelMajor)
        }
        XCTAssertEqual(inference.values, direct.values)
        XCTAssertNotEqual(recorded.values, direct.values)
        // A delta on proj_in applies too (the block then takes the permuting path).
        model.projOut.deltas = []
        model.projIn.deltas = [ConstantDelta(outFeatures: 16)]
        let shiftedIn = try Tensor.withoutGrad { try model(x, context: context) }
        XCTAssertLessThanOrEqual(maxDifference(shiftedIn, try model(x, context: context)), 1e-5)
        XCTAssertGreaterThan(maxDifference(shiftedIn, inference), 1e-3, "the delta on proj_in applies in inference")
    }

    func testSpatialTransformerInferenceIsTheRecordedPath() throws {
        for linear in [true, false] {
            let model = Transformer2DModel(heads: 2, headDimension: 8, inChannels: 32, normGroups: 8,
                                           crossAttentionDimension: 12, useLinearProjection: linear)
            randomize(model, seed: 21)
            var g = RandomGenerator(seed: 22)
            let x = g.normal([2, 32, 5, 3]), text = g.normal([2, 4, 12])
            let context = ForwardContext(frames: 1, encoderHiddenStates: text)
            let (recorded, inference, withDelta) = try outputs({ try model(x, context: context) }) {
                if let projOut = model.projOut as? Linear { projOut.deltas = [ConstantDelta(outFeatures: 32)] }
                if let projOut = model.projOut as? Conv2d { projOut.deltas = [ConstantConvDelta(outChannels: 32)] }
            }
            XCTAssertLessThanOrEqual(maxDifference(recorded, inference), 1e-5, "linear projections: \(linear)")
            XCTAssertLessThanOrEqual(maxDifference(withDelta.recorded, withDelta.inference), 1e-5)
            XCTAssertEqual(maxDifference(withDelta.inference, inference), 0.25, accuracy: 1e-5, "the delta on proj_out applies in inference")
            // Inference took the channel-major ops (see the temporal test).
            func matrix(_ module: Module) throws -> (Tensor, Tensor?) {
                if let layer = module as? Linear { return (layer.weight, layer.bias) }
                let conv = module as! Conv2d
                return (try conv.weight.reshaped([conv.weight.shape[0], conv.weight.shape[1]]), conv.bias)
            }
            let (inWeight, inBias) = try matrix(model.projIn), (outWeight, outBias) = try matrix(model.projOut)
            let direct = try Tensor.withoutGrad { () -> Tensor in
                var tokens = try Tensor.projectChannelMajor(model.norm(x), frames: 1, weight: inWeight, bias: inBias,
                                                            order: .frameMajor).reshaped([2, 15, 16])
                for block in model.transformerBlocks { tokens = try block(tokens, encoderHiddenStates: text, context: context) }
                return try Tensor.projectToChannelMajor(tokens, frames: 1, weight: outWeight, bias: outBias, residual: x, order: .frameMajor)
            }
            XCTAssertEqual(inference.values, direct.values, "linear projections: \(linear)")
            XCTAssertNotEqual(recorded.values, direct.values)
            // A delta on proj_in applies too.
            if let projOut = model.projOut as? Linear { projOut.deltas = [] }
            if let projOut = model.projOut as? Conv2d { projOut.deltas = [] }
            if let projIn = model.projIn as? Linear { projIn.deltas = [ConstantDelta(outFeatures: 16)] }
            if let projIn = model.projIn as? Conv2d { projIn.deltas = [ConstantConvDelta(outChannels: 16)] }
            let shiftedIn = try Tensor.withoutGrad { try model(x, context: context) }
            XCTAssertLessThanOrEqual(maxDifference(shiftedIn, try model(x, context: context)), 1e-5)
            XCTAssertGreaterThan(maxDifference(shiftedIn, inference), 1e-3, "the delta on proj_in applies in inference")
        }
    }
}
