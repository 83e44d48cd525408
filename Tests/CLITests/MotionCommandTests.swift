import Checkpoints
import Foundation
import Media
import XCTest

/// `world --motion`, `train-motion`, `render --motion/--spatial/--noise-prior`, `animate`, `train-lora`
/// and `bench motion` end to end on the tiny pipeline folder (16×16 pixels).
final class MotionCommandTests: XCTestCase {
    static let model = RenderTests.model
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-motion-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    @discardableResult
    private func run(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(arguments)
        XCTAssertEqual(result.status, status, "\(arguments.joined(separator: " "))\n\(result.stderr)", file: file, line: line)
        return result
    }

    private func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    private func latents(_ name: String) throws -> [Float] {
        let file = try SafeTensorsFile(path: path(name))
        return try file.floats("latents")
    }

    /// Two world clips of the reserved zigzag motion, a 3-frame clip and a broken file.
    private func makeClips() throws -> String {
        let clips = path("clips")
        let world = try run(["world", "--motion", "zigzag", "--clips", "2", "--out", clips])
        XCTAssertTrue(world.stdout.contains("zigzag"), world.stdout)
        let caption = try String(contentsOfFile: clips + "/00000.txt", encoding: .utf8)
        XCTAssertTrue(caption.contains("zigzagging"), caption)
        XCTAssertTrue(FileManager.default.fileExists(atPath: clips + "/00001.mp4"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: clips + "/captions.jsonl"))
        let frame = try RGBImage(width: 32, height: 32, fill: (200, 30, 30))
        try VideoWriter.write([frame, frame, frame], to: clips + "/short.mp4")
        try Data("a short clip".utf8).write(to: URL(fileURLWithPath: clips + "/short.txt"))
        try Data("not a video".utf8).write(to: URL(fileURLWithPath: clips + "/broken.mp4"))
        try Data("a broken clip".utf8).write(to: URL(fileURLWithPath: clips + "/broken.txt"))
        return clips
    }

    func testTrainMotionRenderAndAnimate() throws {
        let clips = try makeClips()
        let config = path("motion.yaml")
        try Data("""
        # MotionDirector keys (and one of the reference's GPU keys, and a typo)
        lora_rank: 2
        learning_rate: 1e-2
        adam_weight_decay: 1e-2
        checkpointing_steps: 1
        validation_steps: 2
        mixed_precision: "fp16"
        lora_rnak: 4
        validation_data:
          prompt:
            - "a red star on a gray background"
          num_inference_steps: 2
          guidance_scale: 3
        """.utf8).write(to: URL(fileURLWithPath: config))
        let out = path("run")
        let training = try run(["train-motion", clips, "--config", config, "--out", out, "--steps", "2", "--model", Self.model, "--threads", "1"])
        XCTAssertTrue(training.stderr.contains("skipped 'broken.mp4'"), training.stderr)
        XCTAssertTrue(training.stderr.contains("skipped 'short.mp4': has 3 frames"), training.stderr)
        XCTAssertTrue(training.stderr.contains("not used here: mixed_precision"), training.stderr)
        XCTAssertTrue(training.stderr.contains("unknown keys ignored: lora_rnak"), training.stderr)
        for file in ["run/temporal.safetensors", "run/spatial-00000.safetensors", "run/spatial-00001.safetensors", "run/loss.csv",
                     "run/loss.png", "run/previews/step-000002.png", "run/previews/step-000002-1.mp4", "run/checkpoint-000002/model.safetensors",
                     "run/latents.safetensors", "run/motion_run.json"] {
            XCTAssertTrue(exists(file), file)
        }
        let temporal = try SafeTensorsFile(path: out + "/temporal.safetensors")
        XCTAssertEqual(temporal.metadata["method"], "motiondirector-temporal")
        XCTAssertEqual(temporal.metadata["rank"], "2")
        XCTAssertTrue(temporal.names.allSatisfy { $0.hasPrefix("unet.") }, "\(temporal.names.prefix(3))")
        XCTAssertTrue(temporal.names.contains("unet.transformer_in.transformer_blocks.0.attn1.to_q.lora_A.weight"))

        // Again without --resume: refused; with it: continues.
        let again = try run(["train-motion", clips, "--out", out, "--steps", "2", "--model", Self.model], status: 1)
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
        let resumed = try run(["train-motion", clips, "--out", out, "--resume", "--steps", "3", "--preview-every", "0",
                               "--model", Self.model, "--threads", "1"])
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)

        // Rendering with the motion: scale 0 is the base model exactly, scale 1 is not.
        let common = ["a red star on a gray background", "--frames", "2", "--steps", "2", "--model", Self.model, "--threads", "1"]
        try run(["render"] + common + ["--out", path("base.mp4"), "--save-latents", path("base.safetensors")])
        try run(["render"] + common + ["--motion", out + "/temporal.safetensors:0", "--out", path("zero.mp4"),
                                       "--save-latents", path("zero.safetensors")])
        try run(["render"] + common + ["--motion", out + "/temporal.safetensors", "--spatial", out + "/spatial-00000.safetensors:0.5",
                                       "--out", path("moved.mp4"), "--save-latents", path("moved.safetensors")])
        XCTAssertEqual(try latents("zero.safetensors"), try latents("base.safetensors"))
        XCTAssertNotEqual(try latents("moved.safetensors"), try latents("base.safetensors"))
        let info = try PNGImage.readInfo(path: path("moved_frames/frame_0001.png"))
        XCTAssertEqual(info.text["adapters"], "motion \(out)/temporal.safetensors:1.0, spatial \(out)/spatial-00000.safetensors:0.5")

        // The noise prior starts from the clip's inversion.
        try run(["render"] + common + ["--noise-prior", "0.5", "--prior-clip", clips + "/00000.mp4", "--out", path("prior.mp4"),
                                       "--save-latents", path("prior.safetensors")])
        XCTAssertNotEqual(try latents("prior.safetensors"), try latents("base.safetensors"))
        XCTAssertTrue(try PNGImage.readInfo(path: path("prior_frames/frame_0001.png")).text["latents"]?.contains("noise prior 0.5") ?? false)
        let lonely = try run(["render"] + common + ["--noise-prior", "0.5", "--out", path("x.mp4")], status: 64)
        XCTAssertTrue(lonely.stderr.contains("--prior-clip"), lonely.stderr)
        let short = try run(["render"] + common + ["--noise-prior", "0.5", "--prior-clip", clips + "/short.mp4", "--frames", "4",
                                                   "--out", path("y.mp4")], status: 1)
        XCTAssertTrue(short.stderr.contains("short.mp4' has 3 frames"), short.stderr)

        // Image animation: a spatial LoRA for the image first, then the render with the motion.
        let image = path("star.png")
        try PNGImage.write(try RGBImage(width: 24, height: 20, fill: (220, 40, 40)), to: image)
        let animated = try run(["animate", image, "a red star zigzagging", "--motion", out + "/temporal.safetensors",
                                "--train-steps", "2", "--rank", "2", "--steps", "2", "--frames", "3", "--out", path("anim.mp4"),
                                "--model", Self.model, "--threads", "1"])
        XCTAssertTrue(animated.stdout.contains("anim.mp4"), animated.stdout)
        XCTAssertTrue(exists("anim_appearance/spatial-shared.safetensors"))
        XCTAssertFalse(exists("anim_appearance/temporal.safetensors"))
        XCTAssertEqual(try VideoReader(path: path("anim.mp4")).readFrames().count, 3)
        let animationInfo = try PNGImage.readInfo(path: path("anim_frames/frame_0001.png"))
        XCTAssertEqual(animationInfo.text["adapters"],
                       "motion \(out)/temporal.safetensors:1.0, spatial \(path("anim_appearance"))/spatial-shared.safetensors:1.0")
    }

    func testBadInputsAreNamed() throws {
        let empty = path("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let none = try run(["train-motion", empty, "--out", path("r1"), "--model", Self.model], status: 1)
        XCTAssertTrue(none.stderr.contains("holds no clips"), none.stderr)

        let broken = path("broken")
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try Data("junk".utf8).write(to: URL(fileURLWithPath: broken + "/a.mp4"))
        try Data("junk".utf8).write(to: URL(fileURLWithPath: broken + "/b.webm"))
        let unreadable = try run(["train-motion", broken, "--prompt", "a ball", "--out", path("r2"), "--model", Self.model], status: 1)
        XCTAssertTrue(unreadable.stderr.contains("no usable clip"), unreadable.stderr)
        XCTAssertTrue(unreadable.stderr.contains("a.mp4:") && unreadable.stderr.contains("b.webm:"), unreadable.stderr)
        XCTAssertFalse(exists("r2"), "a refused run leaves no folder")

        // Clips shorter than the frames a run samples are all skipped: an error naming each, and no run folder.
        let short = path("short")
        try FileManager.default.createDirectory(atPath: short, withIntermediateDirectories: true)
        let frame = try RGBImage(width: 32, height: 32, fill: (30, 200, 30))
        try VideoWriter.write([frame, frame, frame], to: short + "/a.mp4")
        try VideoWriter.write([frame, frame], to: short + "/b.mp4")
        let tooShort = try run(["train-motion", short, "--prompt", "a ball", "--out", path("r5"), "--model", Self.model], status: 1)
        XCTAssertTrue(tooShort.stderr.contains("no usable clip"), tooShort.stderr)
        XCTAssertTrue(tooShort.stderr.contains("a.mp4") && tooShort.stderr.contains("has 3 frames")
                      && tooShort.stderr.contains("b.mp4") && tooShort.stderr.contains("has 2 frames"), tooShort.stderr)
        XCTAssertFalse(exists("r5"), "a refused run leaves no folder")

        let uncaptioned = try run(["train-motion", broken, "--out", path("r3"), "--model", Self.model], status: 1)
        XCTAssertTrue(uncaptioned.stderr.contains("no caption for 'a.mp4', 'b.webm'"), uncaptioned.stderr)

        let badConfig = path("bad.yaml")
        try Data("lora_rank: [1, 2]\n".utf8).write(to: URL(fileURLWithPath: badConfig))
        let typed = try run(["train-motion", broken, "--prompt", "x", "--config", badConfig, "--out", path("r4"), "--model", Self.model], status: 1)
        XCTAssertTrue(typed.stderr.contains("lora_rank"), typed.stderr)

        // A LoRA made for another model: every mismatched key is named.
        let foreign = path("foreign.safetensors")
        try SafeTensors.write([
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight", shape: [2, 99], values: [Float](repeating: 0, count: 198)),
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight", shape: [8, 2], values: [Float](repeating: 0, count: 16)),
            .init(name: "unet.down_blocks.7.temp_attentions.0.proj_in.lora_A.weight", shape: [2, 8], values: [Float](repeating: 0, count: 16)),
            .init(name: "unet.down_blocks.7.temp_attentions.0.proj_in.lora_B.weight", shape: [8, 2], values: [Float](repeating: 0, count: 16)),
        ], to: foreign)
        let mismatch = try run(["render", "a cat", "--frames", "2", "--steps", "1", "--motion", foreign, "--out", path("f.mp4"),
                                "--model", Self.model], status: 1)
        XCTAssertTrue(mismatch.stderr.contains("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q: shapes do not fit"), mismatch.stderr)
        XCTAssertTrue(mismatch.stderr.contains("down_blocks.7.temp_attentions.0.proj_in: the unet has no module at this path"), mismatch.stderr)

        let missing = try run(["render", "a cat", "--motion", path("nothing.safetensors"), "--model", Self.model], status: 1)
        XCTAssertTrue(missing.stderr.contains("--motion"), missing.stderr)
        let wrongMotion = try run(["world", "--motion", "wobble", "--clips", "1", "--out", path("w")], status: 64)
        XCTAssertTrue(wrongMotion.stderr.contains("zigzag"), wrongMotion.stderr)
    }

    func testTrainLoRAFromImages() throws {
        let images = path("cat")
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        try PNGImage.write(try RGBImage(width: 40, height: 30, fill: (250, 200, 20)), to: images + "/one.png")
        try PNGImage.write(try RGBImage(width: 30, height: 30, fill: (240, 180, 30)), to: images + "/two.png")
        try Data("a photo of <cat> cat".utf8).write(to: URL(fileURLWithPath: images + "/two.txt"))
        try Data("junk".utf8).write(to: URL(fileURLWithPath: images + "/three.png"))
        let out = path("cat.safetensors")
        let result = try run(["train-lora", images, "--token", "<cat>", "--class", "cat", "--rank", "2", "--steps", "2",
                              "--preview-every", "2", "--checkpoint-every", "1", "--out", out, "--model", Self.model, "--threads", "1"])
        XCTAssertTrue(result.stderr.contains("skipped 'three.png'"), result.stderr)
        XCTAssertTrue(result.stderr.contains("\"a <cat> cat\""), result.stderr)
        for file in ["cat.safetensors", "cat-run/loss.csv", "cat-run/loss.png", "cat-run/previews/step-000002.png",
                     "cat-run/checkpoint-000002/model.safetensors", "cat-run/subject_run.json"] {
            XCTAssertTrue(exists(file), file)
        }
        let lora = try SafeTensorsFile(path: out)
        XCTAssertEqual(lora.metadata["method"], "subject-lora")
        XCTAssertTrue(lora.names.contains { $0.contains("attn2.to_k.lora_A.weight") })
        XCTAssertFalse(lora.names.contains { $0.contains("temp_attentions") || $0.hasPrefix("unet.transformer_in") })
        try run(["render", "a <cat> cat", "--frames", "1", "--steps", "1", "--lora", out, "--out", path("cat.png"), "--model", Self.model])
        let resumed = try run(["train-lora", images, "--token", "<cat>", "--steps", "3", "--resume", "--out", out, "--model", Self.model])
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)

        let wrongOut = try run(["train-lora", images, "--token", "<cat>", "--out", path("cat.bin"), "--model", Self.model], status: 64)
        XCTAssertTrue(wrongOut.stderr.contains(".safetensors"), wrongOut.stderr)
        let empty = path("none")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let noImages = try run(["train-lora", empty, "--token", "<x>", "--out", path("x.safetensors"), "--model", Self.model], status: 1)
        XCTAssertTrue(noImages.stderr.contains("holds no images"), noImages.stderr)
    }

    func testBenchMotionTimesBothPaths() throws {
        let result = try run(["bench", "motion", "--model", Self.model, "--json", "--repeats", "1", "--rank", "2", "--frames", "3", "--threads", "1"])
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        for key in ["spatial_step_ms", "temporal_step_ms", "training_step_ms"] {
            XCTAssertGreaterThan(report[key] as? Double ?? 0, 0, key)
        }
        XCTAssertEqual(report["trained_weights"] as? Bool, true)
        XCTAssertEqual(report["frames"] as? Int, 3)
    }
}
