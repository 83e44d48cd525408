import Checkpoints
import Models
import Tensor
import XCTest

/// Training-mode behaviour: gradients reach the weights, dropout is active and reproducible.
final class UNet3DTrainingTests: XCTestCase {
    func makeModel() throws -> (UNet3DConditionModel, Tensor, Tensor) { try ModelFixtures.tinyUNet3D(batch: 1) }

    func testGradientsReachEveryKindOfLayer() throws {
        let (model, sample, text) = try makeModel()
        model.setRequiresGrad(true)
        let output = try model(sample: sample, timesteps: [250], encoderHiddenStates: text)
        try (output * output).sum().backward()
        for path in ["conv_in.weight", "time_embedding.linear_1.weight", "transformer_in.proj_in.weight",
                     "down_blocks.0.temp_convs.0.conv4.3.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                     "down_blocks.0.temp_attentions.0.transformer_blocks.0.ff.net.0.proj.weight",
                     "mid_block.resnets.1.time_emb_proj.weight", "up_blocks.1.resnets.0.conv_shortcut.weight",
                     "up_blocks.0.upsamplers.0.conv.weight", "conv_norm_out.weight", "conv_out.bias"] {
            let parameter = try XCTUnwrap(model.namedParameters().first { $0.path == path }?.tensor, path)
            let gradient = try XCTUnwrap(parameter.grad, "no gradient for \(path)")
            XCTAssertEqual(gradient.shape, parameter.shape, path)
            XCTAssertTrue(gradient.values.allSatisfy { $0.isFinite }, path)
            XCTAssertGreaterThan(gradient.values.map(abs).max() ?? 0, 0, "zero gradient for \(path)")
        }
    }

    func testDropoutIsActiveOnlyInTrainingAndReproducible() throws {
        let (model, sample, text) = try makeModel()
        let inference = try model(sample: sample, timesteps: [250], encoderHiddenStates: text).values
        XCTAssertEqual(try model(sample: sample, timesteps: [250], encoderHiddenStates: text).values, inference)
        var first = RandomGenerator(seed: 42)
        var second = RandomGenerator(seed: 42)
        let trainingA = try model(sample: sample, timesteps: [250], encoderHiddenStates: text, dropoutGenerator: &first).values
        let trainingB = try model(sample: sample, timesteps: [250], encoderHiddenStates: text, dropoutGenerator: &second).values
        XCTAssertEqual(trainingA, trainingB)
        XCTAssertNotEqual(trainingA, inference)
        XCTAssertEqual(first, second)
        XCTAssertNotEqual(first, RandomGenerator(seed: 42), "the generator must advance")
    }
}
