import Checkpoints
import Models
import Tensor
import XCTest

/// UNet3DConditionModel against diffusers on the tiny random-weight fixture, for 3 frames and 1.
final class UNet3DParityTests: XCTestCase {
    func loadFixtureModel() throws -> UNet3DConditionModel {
        let configPath = ModelFixtures.path("unet3d", "config.json")
        let config = try UNet3DConfig.load(path: configPath)
        let model = try UNet3DConditionModel(config: config, file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: ModelFixtures.path("unet3d", "diffusion_pytorch_model.safetensors")))
        return model
    }

    func check(_ suffix: String) throws {
        let model = try loadFixtureModel()
        let io = try SafeTensorsFile(path: ModelFixtures.path("unet3d", "io.safetensors"))
        let output = try model(sample: ModelFixtures.tensor(io, "sample_\(suffix)"),
                               timesteps: io.floats("timesteps_\(suffix)"),
                               encoderHiddenStates: ModelFixtures.tensor(io, "encoder_hidden_states_\(suffix)"))
        ModelFixtures.assertClose(output, try ModelFixtures.tensor(io, "output_\(suffix)"), "UNet3D output (\(suffix))")
    }

    func testThreeFramesMatchDiffusers() throws { try check("f3") }

    /// Without gradient recording the transformers read and write the convolutions' layout
    /// directly (Tensor.projectChannelMajor): the same fixtures hold.
    func testInferenceMatchesDiffusers() throws {
        try Tensor.withoutGrad {
            try check("f3")
            try check("odd")
        }
    }

    func testOneFrameMatchesDiffusers() throws { try check("f1") }

    /// 7×5 latents: not multiples of 2, so the upsampler resizes to the skip's size, as diffusers does.
    func testOddSizeMatchesDiffusers() throws { try check("odd") }

    /// Backward parity: the gradients of sum(output · cotangent) with respect to the sample, the text
    /// states and every parameter, against torch autograd through diffusers (3 frames, so the
    /// temporal convolutions and attention are in the graph).
    func testGradientsMatchDiffusers() throws {
        let model = try loadFixtureModel()
        model.setRequiresGrad(true)
        let file = try SafeTensorsFile(path: ModelFixtures.path("unet3d", "gradients.safetensors"))
        let sample = try ModelFixtures.tensor(file, "sample"), text = try ModelFixtures.tensor(file, "encoder_hidden_states")
        sample.requiresGrad = true
        text.requiresGrad = true
        let output = try model(sample: sample, timesteps: file.floats("timesteps"), encoderHiddenStates: text)
        try ModelFixtures.assertGradientsMatch(model, output: output, inputs: [("sample", sample), ("encoder_hidden_states", text)],
                                               file: file)
    }

    func testParameterPathsAreDiffusersKeys() throws {
        let model = try loadFixtureModel()
        let file = try SafeTensorsFile(path: ModelFixtures.path("unet3d", "diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(Set(model.stateDict().map(\.0)), Set(file.names))
        let attention = try XCTUnwrap(model.module(at: "down_blocks.0.attentions.0.transformer_blocks.0.attn2") as? Attention)
        XCTAssertEqual(attention.path, "down_blocks.0.attentions.0.transformer_blocks.0.attn2")
        XCTAssertTrue(attention.isCrossAttention)
        // diffusers' quirk: attention_head_dim 8 over 16 channels gives 2 heads of 8 channels.
        XCTAssertEqual(attention.heads, 2)
        XCTAssertEqual(attention.dimHead, 8)
        let temporal = try XCTUnwrap(model.module(at: "transformer_in.transformer_blocks.0.attn1") as? Attention)
        XCTAssertEqual(temporal.heads, 8)
        XCTAssertEqual(temporal.dimHead, 8)
    }

    /// A processor installed on one layer path sees that layer's call and changes the output.
    func testProcessorInstalledByPathIsUsed() throws {
        final class Recorder: AttentionProcessor {
            var calls: [(String, Bool, Int)] = []
            func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
                calls.append((call.path, call.isCrossAttention, call.frames))
                return query  // deliberately not attention: the output must change
            }
        }
        let model = try loadFixtureModel()
        let io = try SafeTensorsFile(path: ModelFixtures.path("unet3d", "io.safetensors"))
        let recorder = Recorder()
        let path = "up_blocks.1.attentions.0.transformer_blocks.0.attn2"
        XCTAssertEqual(model.setAttentionProcessor(recorder) { $0 == path }, [path])
        // Transformers: transformer_in, down 0 (spatial + temporal), mid (spatial + temporal), up 1 (2 layers × 2);
        // two attentions each: 18, as many as the file's to_q weights.
        XCTAssertEqual(model.attentionLayers().count, 18)
        let output = try model(sample: ModelFixtures.tensor(io, "sample_f3"), timesteps: io.floats("timesteps_f3"),
                               encoderHiddenStates: ModelFixtures.tensor(io, "encoder_hidden_states_f3"))
        XCTAssertEqual(recorder.calls.count, 1)
        XCTAssertEqual(recorder.calls.first?.0, path)
        XCTAssertEqual(recorder.calls.first?.1, true)
        XCTAssertEqual(recorder.calls.first?.2, 3)
        let reference = try ModelFixtures.tensor(io, "output_f3")
        let difference = zip(output.values, reference.values).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(difference, 1e-3)
    }
}
