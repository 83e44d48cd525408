import Checkpoints
import Foundation
import Models
import Tensor
import XCTest

/// UNet2DConditionModel, MotionAdapter and UNetMotionModel against diffusers on the tiny
/// random-weight fixtures of Tests/Fixtures/fixtures_animatediff.py: forward for several clip
/// lengths (5 and 6 frames, lengths the fixtures use nowhere else), odd sizes, gradients of every
/// parameter, and the split/join diffusers' `from_unet2d` / `save_motion_modules` make.
final class AnimateDiffParityTests: XCTestCase {
    func imageUNet(_ folder: String) throws -> UNet2DConditionModel {
        let configPath = ModelFixtures.path(folder, "config.json")
        let model = try UNet2DConditionModel(config: UNet2DConditionConfig.load(path: configPath), file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: ModelFixtures.path(folder, "diffusion_pytorch_model.safetensors")))
        return model
    }

    func motionUNet(_ folder: String) throws -> UNetMotionModel {
        let configPath = ModelFixtures.path(folder, "unet/config.json")
        let model = try UNetMotionModel(config: UNetMotionConfig.load(path: configPath), file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: ModelFixtures.path(folder, "unet/diffusion_pytorch_model.safetensors")))
        return model
    }

    func adapter(_ folder: String) throws -> MotionAdapter {
        let configPath = ModelFixtures.path(folder, "motion_adapter/config.json")
        let model = try MotionAdapter(config: MotionAdapterConfig.load(path: configPath), file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: ModelFixtures.path(folder, "motion_adapter/diffusion_pytorch_model.safetensors")))
        return model
    }

    func checkMotion(_ model: UNetMotionModel, _ folder: String, _ suffix: String) throws {
        let io = try SafeTensorsFile(path: ModelFixtures.path(folder, "io.safetensors"))
        let output = try model(sample: ModelFixtures.tensor(io, "sample_\(suffix)"), timesteps: io.floats("timesteps_\(suffix)"),
                               encoderHiddenStates: ModelFixtures.tensor(io, "encoder_hidden_states_\(suffix)"), motion: true)
        ModelFixtures.assertClose(output, try ModelFixtures.tensor(io, "output_\(suffix)"), "\(folder) output (\(suffix))")
    }

    // MARK: UNet2DConditionModel

    func checkImage(_ suffix: String) throws {
        let model = try imageUNet("unet2d")
        let io = try SafeTensorsFile(path: ModelFixtures.path("unet2d", "io.safetensors"))
        let output = try model(image: ModelFixtures.tensor(io, "sample_\(suffix)"), timesteps: io.floats("timesteps_\(suffix)"),
                               encoderHiddenStates: ModelFixtures.tensor(io, "encoder_hidden_states_\(suffix)"))
        ModelFixtures.assertClose(output, try ModelFixtures.tensor(io, "output_\(suffix)"), "UNet2D output (\(suffix))")
    }

    func testImageUNetMatchesDiffusers() throws { try checkImage("b2") }

    /// 7×5 latents: the upsampler resizes to the skip's size, as diffusers does.
    func testImageUNetOddSizeMatchesDiffusers() throws { try checkImage("odd") }

    func testImageUNetGradientsMatchDiffusers() throws {
        let model = try imageUNet("unet2d")
        model.setRequiresGrad(true)
        let file = try SafeTensorsFile(path: ModelFixtures.path("unet2d", "gradients.safetensors"))
        let sample = try ModelFixtures.tensor(file, "sample"), text = try ModelFixtures.tensor(file, "encoder_hidden_states")
        sample.requiresGrad = true
        text.requiresGrad = true
        let output = try model(image: sample, timesteps: file.floats("timesteps"), encoderHiddenStates: text)
        try ModelFixtures.assertGradientsMatch(model, output: output, inputs: [("sample", sample), ("encoder_hidden_states", text)],
                                               file: file)
    }

    func testImageUNetHeadsFollowDiffusersFallback() throws {
        let model = try imageUNet("unet2d")
        let file = try SafeTensorsFile(path: ModelFixtures.path("unet2d", "diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(Set(model.stateDict().map(\.0)), Set(file.names))
        // attention_head_dim 2 with num_attention_heads null: 2 heads of 16 / 2 channels.
        let attention = try XCTUnwrap(model.module(at: "down_blocks.0.attentions.0.transformer_blocks.0.attn2") as? Attention)
        XCTAssertEqual(attention.heads, 2)
        XCTAssertEqual(attention.dimHead, 8)
        XCTAssertEqual(attention.path, "down_blocks.0.attentions.0.transformer_blocks.0.attn2")
    }

    // MARK: UNetMotionModel

    func testMotionUNetThreeFramesMatchDiffusers() throws { try checkMotion(motionUNet("animatediff"), "animatediff", "f3") }

    func testMotionUNetFiveFramesMatchDiffusers() throws { try checkMotion(motionUNet("animatediff"), "animatediff", "f5") }

    func testMotionUNetOneFrameMatchesDiffusers() throws { try checkMotion(motionUNet("animatediff"), "animatediff", "f1") }

    func testMotionUNetOddSizeMatchesDiffusers() throws { try checkMotion(motionUNet("animatediff"), "animatediff", "odd") }

    /// Without gradient recording the spatial and motion transformers read and write the
    /// convolutions' layout directly (Tensor.projectChannelMajor): the same fixtures hold.
    func testMotionUNetInferenceMatchesDiffusers() throws {
        try Tensor.withoutGrad {
            try checkMotion(motionUNet("animatediff"), "animatediff", "f3")
            try checkMotion(motionUNet("animatediff"), "animatediff", "odd")
            try checkImage("b2")
        }
    }

    /// Two motion layers per block, no motion mid block (UNetMidBlock2DCrossAttn), 4 motion heads.
    func testTwoMotionLayersPerBlockMatchDiffusers() throws {
        let model = try motionUNet("animatediff_two_layers")
        XCTAssertNil(model.midBlock.motionModules)
        XCTAssertEqual(model.downBlocks[0].motionModules?.count, 2)
        XCTAssertEqual(model.upBlocks[0].motionModules?.count, 3)
        try checkMotion(model, "animatediff_two_layers", "f3")
        try checkMotion(model, "animatediff_two_layers", "f6")
    }

    func testMotionUNetGradientsMatchDiffusers() throws {
        for folder in ["animatediff", "animatediff_two_layers"] {
            let model = try motionUNet(folder)
            model.setRequiresGrad(true)
            let file = try SafeTensorsFile(path: ModelFixtures.path(folder, "gradients.safetensors"))
            let sample = try ModelFixtures.tensor(file, "sample"), text = try ModelFixtures.tensor(file, "encoder_hidden_states")
            sample.requiresGrad = true
            text.requiresGrad = true
            let output = try model(sample: sample, timesteps: file.floats("timesteps"), encoderHiddenStates: text, motion: true)
            try ModelFixtures.assertGradientsMatch(model, output: output,
                                                   inputs: [("sample", sample), ("encoder_hidden_states", text)], file: file)
        }
    }

    /// Every key of diffusers' file, the `pos_embed.pe` buffers included, and nothing else; the
    /// buffers are not parameters, and our computed table equals diffusers'.
    func testMotionUNetKeysAndPositionTablesAreDiffusers() throws {
        let file = try SafeTensorsFile(path: ModelFixtures.path("animatediff", "unet/diffusion_pytorch_model.safetensors"))
        let model = try motionUNet("animatediff")
        XCTAssertEqual(Set(model.stateDict().map(\.0)), Set(file.names))
        XCTAssertEqual(model.namedBuffers().count, 7)
        XCTAssertFalse(model.namedParameters().contains { $0.path.hasSuffix("pos_embed.pe") })
        let fresh = try UNetMotionModel(config: model.config)
        for (path, table) in fresh.namedBuffers() {
            let reference = try file.floats(path)
            let error = zip(table.values, reference).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThan(error, 1e-5, path)
        }
        let temporal = try XCTUnwrap(model.module(at: "down_blocks.1.motion_modules.0.transformer_blocks.0.attn2") as? Attention)
        XCTAssertFalse(temporal.isCrossAttention, "motion modules' attn2 is a second self-attention")
        XCTAssertEqual(temporal.heads, 2)
        XCTAssertEqual(temporal.dimHead, 16)
    }

    func testFramesBeyondTheMotionModulesRangeAreRefused() throws {
        let model = try motionUNet("animatediff")  // motion_max_seq_length 8
        let sample = Tensor(zeros: [1, 4, 9, 8, 8]), text = Tensor(zeros: [1, 5, 16])
        XCTAssertThrowsError(try model(sample: sample, timesteps: [1], encoderHiddenStates: text)) { error in
            XCTAssertTrue("\(error)".contains("motion_max_seq_length"), "\(error)")
        }
        // The image layers alone take any number of frames.
        XCTAssertEqual(try model(sample: sample, timesteps: [1], encoderHiddenStates: text, motion: false).shape, [1, 4, 9, 8, 8])
    }

    // MARK: from_unet2d and the split

    /// diffusers' `from_unet2d(unet2d, adapter)` is the fixture's UNetMotionModel: built here from
    /// the image U-Net and the adapter, it has the same weights and output.
    func testImageUNetPlusAdapterIsTheMotionUNet() throws {
        for (folder, image) in [("animatediff", "unet2d"), ("animatediff_two_layers", "animatediff_two_layers/image_unet")] {
            let joined = try UNetMotionModel(image: imageUNet(image), adapter: adapter(folder))
            let reference = try motionUNet(folder)
            XCTAssertEqual(joined.config.layout, reference.config.layout, folder)
            let expected = Dictionary(uniqueKeysWithValues: reference.stateDict().map { ($0.0, $0.1.values) })
            for (key, tensor) in joined.stateDict() { XCTAssertEqual(tensor.values, expected[key], key) }
            XCTAssertEqual(joined.stateDict().count, expected.count)
            try checkMotion(joined, folder, "f3")
        }
    }

    /// `save_motion_modules` and the image half: the split gives diffusers' adapter tensors and an
    /// image U-Net that matches diffusers' UNet2DConditionModel.
    func testMotionUNetSplitsIntoImageUNetAndAdapter() throws {
        let model = try motionUNet("animatediff")
        let split = try model.motionAdapter()
        let adapterFile = try SafeTensorsFile(path: ModelFixtures.path("animatediff", "motion_adapter/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(Set(split.stateDict().map(\.0)), Set(adapterFile.names))
        for (key, tensor) in split.stateDict() { XCTAssertEqual(tensor.values, try adapterFile.floats(key), key) }
        let loaded = try adapter("animatediff")
        XCTAssertEqual(split.config.motionLayout, loaded.config.motionLayout)

        let image = try model.imageUNet()
        let io = try SafeTensorsFile(path: ModelFixtures.path("unet2d", "io.safetensors"))
        let output = try image(image: ModelFixtures.tensor(io, "sample_b2"), timesteps: io.floats("timesteps_b2"),
                               encoderHiddenStates: ModelFixtures.tensor(io, "encoder_hidden_states_b2"))
        ModelFixtures.assertClose(output, try ModelFixtures.tensor(io, "output_b2"), "image half")
    }

    /// An adapter for other channels or another layer count is refused, naming its key.
    func testAdapterThatDoesNotFitIsRefused() throws {
        let image = try imageUNet("unet2d")
        var config = try adapter("animatediff").config
        config.blockOutChannels = [16, 64]
        XCTAssertThrowsError(try UNetMotionModel(image: image, adapter: MotionAdapter(config: config), adapterFile: "a/config.json")) {
            XCTAssertTrue("\($0)".contains("a/config.json") && "\($0)".contains("block_out_channels"), "\($0)")
        }
        config = try adapter("animatediff").config
        config.motionLayersPerBlock = .single(2)
        XCTAssertThrowsError(try UNetMotionModel(image: image, adapter: MotionAdapter(config: config))) {
            XCTAssertTrue("\($0)".contains("motion_layers_per_block"), "\($0)")
        }
        config = try adapter("animatediff").config
        config.blockOutChannels = [16, 32, 32]
        config.motionLayersPerBlock = .single(1)
        XCTAssertThrowsError(try UNetMotionModel(image: image, adapter: MotionAdapter(config: config))) {
            XCTAssertTrue("\($0)".contains("3 blocks, but the U-Net has 2"), "\($0)")
        }
    }

    func testConfigsWithUnsupportedFeaturesNameTheKey() throws {
        let cases: [(String, String)] = [
            (#"{"_class_name": "UNet2DConditionModel", "class_embed_type": "timestep"}"#, "class_embed_type"),
            (#"{"_class_name": "UNet2DConditionModel", "mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}"#, "mid_block_type"),
            (#"{"_class_name": "UNet2DConditionModel", "down_block_types": ["CrossAttnDownBlock3D"], "block_out_channels": [32]}"#, "down_block_types"),
        ]
        for (json, key) in cases {
            let config = try JSONDecoder().decode(UNet2DConditionConfig.self, from: Data(json.utf8))
            XCTAssertThrowsError(try config.validate(file: "unet/config.json")) { XCTAssertTrue("\($0)".contains("\"\(key)\""), "\($0)") }
        }
        let motion = try JSONDecoder().decode(UNetMotionConfig.self, from: Data(#"{"time_cond_proj_dim": 4}"#.utf8))
        XCTAssertThrowsError(try motion.validate()) { XCTAssertTrue("\($0)".contains("time_cond_proj_dim"), "\($0)") }
        let adapter = try JSONDecoder().decode(MotionAdapterConfig.self, from: Data(#"{"conv_in_channels": 8}"#.utf8))
        XCTAssertThrowsError(try adapter.validate()) { XCTAssertTrue("\($0)".contains("conv_in_channels"), "\($0)") }
    }
}
