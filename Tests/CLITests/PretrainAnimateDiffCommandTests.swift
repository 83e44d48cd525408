import Foundation
import XCTest

/// `customize pretrain` with `"architecture": "animatediff"` (issue 24's two-stage pretraining).
final class PretrainAnimateDiffCommandTests: XCTestCase {
    /// PretrainCommandTests' tiny model in AnimateDiff's layout, on 64x64 world samples.
    static let tinyConfig = """
    {
      "architecture": "animatediff",
      "vae": {"block_out_channels": [8, 8, 8], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
              "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 1,
              "latent_channels": 4, "norm_num_groups": 4, "sample_size": 64},
      "image_unet": {"block_out_channels": [8, 16], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                     "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "layers_per_block": 1, "norm_num_groups": 4,
                     "cross_attention_dim": 16, "attention_head_dim": 2, "sample_size": 16},
      "motion_adapter": {"block_out_channels": [8, 16], "motion_layers_per_block": 1, "motion_num_attention_heads": 2,
                         "motion_norm_num_groups": 4, "motion_max_seq_length": 8},
      "text_encoder": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "max_position_embeddings": 32},
      "vae_training": {"batch_size": 2},
      "text_encoder_warmup": {"batch_size": 4, "trainer": {"max_train_steps": 1, "checkpointing_steps": 1}},
      "unet_training": {"image_batch_size": 2},
      "motion_training": {"clip_batch_size": 1, "clip_frames": 4, "trainable": "motion_modules+cross_attention"},
      "preview": {"every": 2, "steps": 2, "prompts": [{"prompt": "a large red circle moving right on a blue background", "frames": 2}]}
    }
    """

    func testAnAnimateDiffRunTrainsBothStagesResumesAndContinuesFromItsModel() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-ad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let config = base.appendingPathComponent("tiny.json").path
        try Data(Self.tinyConfig.utf8).write(to: URL(fileURLWithPath: config))
        let out = base.appendingPathComponent("run").path
        let run = try CLITests.run(["pretrain", "--out", out, "--vae-steps", "1", "--unet-steps", "2", "--motion-steps", "2",
                                    "--config", config, "--checkpoint-every", "1", "--threads", "2", "--save-model-at-checkpoints"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for file in ["unet/loss.csv", "unet/loss.png", "unet/checkpoint-000002/model.safetensors", "motion/loss.csv", "motion/loss.png",
                     "motion/checkpoint-000002/model.safetensors", "motion/checkpoint-000002/ema.safetensors",
                     "previews/unet-step-000002.png", "previews/motion-step-000002.png",
                     "model/model_index.json", "model/unet/config.json", "model/unet/diffusion_pytorch_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let index = try String(contentsOfFile: out + "/model/model_index.json", encoding: .utf8)
        XCTAssertTrue(index.contains("AnimateDiffPipeline"), index)
        XCTAssertTrue(index.contains("UNetMotionModel"), index)
        XCTAssertTrue(run.stderr.contains("pretrain text encoder + image U-Net"), run.stderr)
        XCTAssertTrue(run.stderr.contains("pretrain motion stage (motion_modules+cross_attention)"), run.stderr)
        XCTAssertTrue(run.stderr.contains("samples/s"), run.stderr)

        // The run remembers --save-model-at-checkpoints across --resume until told otherwise.
        let marker = out + "/save_model_at_checkpoints"
        XCTAssertTrue(FileManager.default.fileExists(atPath: marker))
        let resumed = try CLITests.run(["pretrain", "--out", out, "--resume", "--motion-steps", "3", "--preview-every", "0"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)
        XCTAssertFalse(resumed.stderr.contains("image U-Net"), resumed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: marker))
        let off = try CLITests.run(["pretrain", "--out", out, "--resume", "--motion-steps", "4", "--preview-every", "0",
                                    "--no-save-model-at-checkpoints"])
        XCTAssertEqual(off.status, 0, off.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))

        // A later leg from the AnimateDiff folder, with the built-in (UNet3D) config: --steps split
        // over the image and motion stages in the config's proportion.
        let more = base.appendingPathComponent("more").path
        let continued = try CLITests.run(["pretrain", "--out", more, "--init-from", out + "/model", "--steps", "4",
                                          "--warmup-steps", "1", "--preview-every", "0", "--threads", "2"])
        XCTAssertEqual(continued.status, 0, continued.stderr)
        XCTAssertFalse(continued.stderr.contains("pretrain autoencoder"), continued.stderr)
        for file in ["init/model_index.json", "unet/checkpoint-000003/model.safetensors", "motion/checkpoint-000001/model.safetensors",
                     "model/unet/diffusion_pytorch_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: more + "/" + file), file)
        }
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: more + "/pretrain_config.json"))) as! [String: Any]
        XCTAssertEqual(saved["architecture"] as? String, "animatediff")
    }

    func testUnknownKeysAndBadStagesAreRefusedBeforeAnyWork() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-ad-bad-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        for (text, key) in [(Self.tinyConfig.replacingOccurrences(of: #""clip_frames": 4"#, with: #""clip_frames": 4, "clip_fraction": 1"#),
                             "motion_training.clip_fraction"),
                            (Self.tinyConfig.replacingOccurrences(of: #""clip_frames": 4"#, with: #""clip_frames": 0"#), "motion_training.clip_frames"),
                            (Self.tinyConfig.replacingOccurrences(of: #""cross_attention_dim": 16"#, with: #""cross_attention_dim": 8"#),
                             "image_unet.cross_attention_dim")] {
            XCTAssertNotEqual(text, Self.tinyConfig)
            let config = base.appendingPathComponent("bad.json").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: config))
            let out = base.appendingPathComponent("run").path
            let result = try CLITests.run(["pretrain", "--out", out, "--config", config])
            XCTAssertEqual(result.status, 1, result.stderr)
            XCTAssertTrue(result.stderr.contains(key), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        let printed = try CLITests.run(["pretrain", "--print-config", "--steps", "100"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(printed.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(json["architecture"] as? String, "unet3d")
        XCTAssertEqual((json["motion_training"] as? [String: Any])?["trainable"] as? String, "motion_modules")
    }
}
