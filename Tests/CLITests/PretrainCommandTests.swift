import Foundation
import XCTest

final class PretrainCommandTests: XCTestCase {
    /// A model small enough to train a few steps on 64x64 world samples in seconds.
    static let tinyConfig = """
    {
      "vae": {"block_out_channels": [8, 8, 8], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
              "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 1,
              "latent_channels": 4, "norm_num_groups": 4, "sample_size": 64},
      "unet": {"block_out_channels": [8, 16], "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"],
               "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"], "layers_per_block": 1, "norm_num_groups": 4,
               "cross_attention_dim": 16, "attention_head_dim": 4, "sample_size": 16},
      "text_encoder": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "max_position_embeddings": 32},
      "vae_training": {"batch_size": 2},
      "text_encoder_warmup": {"batch_size": 4, "trainer": {"max_train_steps": 2, "checkpointing_steps": 1}},
      "unet_training": {"image_batch_size": 2, "clip_batch_size": 1, "clip_frames": 8},
      "preview": {"every": 2, "steps": 2, "prompts": [{"prompt": "a large red circle on a blue background", "frames": 1}]}
    }
    """

    /// The first logged loss of `stage` ("vae" or "unet") when the tiny config's `section` (its
    /// text as in `tinyConfig`) gains `extra` keys, for object weights 0 and 8.
    func firstLosses(stage: String, section: String, extra: String) throws -> (plain: Double, weighted: Double) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-ow-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        func firstLoss(objectWeight: Double) throws -> Double {
            let name = "w\(Int(objectWeight))"
            let config = base.appendingPathComponent(name + ".json").path
            let text = Self.tinyConfig.replacingOccurrences(of: section, with: section.dropLast() + extra + ", \"object_weight\": \(objectWeight)}")
            XCTAssertNotEqual(text, Self.tinyConfig)
            try Data(text.utf8).write(to: URL(fileURLWithPath: config))
            let out = base.appendingPathComponent(name).path
            let run = try CLITests.run(["pretrain", "--out", out, "--vae-steps", "1", "--unet-steps", stage == "vae" ? "0" : "1",
                                        "--config", config, "--preview-every", "0", "--threads", "1"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let rows = try String(contentsOfFile: "\(out)/\(stage)/loss.csv", encoding: .utf8).split(separator: "\n")
            return try XCTUnwrap(Double(rows[1].split(separator: ",")[1]))
        }
        return (try firstLoss(objectWeight: 0), try firstLoss(objectWeight: 8))
    }

    /// The world's object masks reach the autoencoder's loss: with vae_training.object_weight the
    /// first step's loss differs from the plain one (uniform or empty masks would leave it equal).
    func testObjectWeightChangesTheAutoencoderLossOnWorldImages() throws {
        let (plain, weighted) = try firstLosses(stage: "vae", section: #""vae_training": {"batch_size": 2}"#, extra: "")
        XCTAssertGreaterThan(abs(plain - weighted), 1e-4 * plain, "plain \(plain), weighted \(weighted)")
    }

    /// The world's clip masks (every frame, camera pans included) reach the U-Net's loss: with
    /// unet_training.object_weight the first clip step's loss differs from the plain one.
    func testObjectWeightChangesTheDenoiserLossOnWorldClips() throws {
        let (plain, weighted) = try firstLosses(stage: "unet",
                                                section: #""unet_training": {"image_batch_size": 2, "clip_batch_size": 1, "clip_frames": 8}"#,
                                                extra: #", "clip_fraction": 1"#)
        XCTAssertGreaterThan(abs(plain - weighted), 1e-4 * plain, "plain \(plain), weighted \(weighted)")
    }

    func testPretrainRunsBothStagesEndToEndAndRefusesToOverwrite() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: base) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let config = base.appendingPathComponent("tiny.json").path
        try Data(Self.tinyConfig.utf8).write(to: URL(fileURLWithPath: config))
        let out = base.appendingPathComponent("run").path
        let arguments = ["pretrain", "--out", out, "--vae-steps", "2", "--unet-steps", "2", "--config", config,
                         "--checkpoint-every", "1", "--threads", "2"]
        let run = try CLITests.run(arguments)
        XCTAssertEqual(run.status, 0, run.stderr)
        for file in ["pretrain_config.json", "tokenizer/vocab.json", "vae/loss.csv", "vae/loss.png", "text_encoder_warmup/loss.csv", "unet/loss.csv", "unet/loss.png",
                     "unet/checkpoint-000002/model.safetensors", "unet/checkpoint-000002/optimizer.safetensors",
                     "unet/checkpoint-000002/ema.safetensors", "unet/checkpoint-000002/trainer_state.json",
                     "previews/vae-step-000002.png", "previews/unet-step-000002.png", "model/model_index.json", "model/unet/diffusion_pytorch_model.safetensors",
                     "model/tokenizer/vocab.json", "model/scheduler/scheduler_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/unet/checkpoint-000000"))
        XCTAssertTrue(run.stderr.contains("pretrain"), run.stderr)

        let again = try CLITests.run(arguments)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)

        let resumed = try CLITests.run(["pretrain", "--out", out, "--resume", "--unet-steps", "3", "--preview-every", "0"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)

        let nothing = try CLITests.run(["pretrain", "--out", base.appendingPathComponent("none").path, "--resume"])
        XCTAssertEqual(nothing.status, 1)
        XCTAssertTrue(nothing.stderr.contains("no pretraining run"), nothing.stderr)

        // More training from the finished model: no autoencoder stage, --steps all to the U-Net.
        let more = base.appendingPathComponent("more").path
        let continued = try CLITests.run(["pretrain", "--out", more, "--init-from", out + "/model", "--steps", "2",
                                          "--warmup-steps", "1", "--preview-every", "0", "--threads", "2"])
        XCTAssertEqual(continued.status, 0, continued.stderr)
        XCTAssertFalse(continued.stderr.contains("pretrain autoencoder"), continued.stderr)
        for file in ["init/model_index.json", "tokenizer/vocab.json", "text_encoder_warmup/checkpoint-000001/model.safetensors",
                     "unet/checkpoint-000002/model.safetensors", "model/unet/diffusion_pytorch_model.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: more + "/" + file), file)
        }
        let refused = try CLITests.run(["pretrain", "--out", more, "--resume", "--init-from", out + "/model"])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--init-from"), refused.stderr)
        let noModel = try CLITests.run(["pretrain", "--out", base.appendingPathComponent("bad").path, "--init-from", out + "/vae"])
        XCTAssertEqual(noModel.status, 1)
        XCTAssertTrue(noModel.stderr.contains(out + "/vae"), noModel.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: base.appendingPathComponent("bad").path))
    }

    func testStepOptionsSplitAndOverrideTheConfig() throws {
        let split = try CLITests.run(["pretrain", "--print-config", "--steps", "170", "--checkpoint-every", "7"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(split.stdout.utf8)) as! [String: Any]
        func trainer(_ stage: String) -> [String: Any] { (json[stage] as! [String: Any])["trainer"] as! [String: Any] }
        // The built-in config trains the autoencoder for 5000 of 17000 steps.
        XCTAssertEqual(trainer("vae_training")["max_train_steps"] as? Int, 50)
        XCTAssertEqual(trainer("unet_training")["max_train_steps"] as? Int, 120)
        XCTAssertEqual(trainer("unet_training")["checkpointing_steps"] as? Int, 7)

        let both = try CLITests.run(["pretrain", "--out", "/tmp/never", "--steps", "10", "--vae-steps", "2"])
        XCTAssertEqual(both.status, 64)
        XCTAssertTrue(both.stderr.contains("either --steps"), both.stderr)
    }
}
