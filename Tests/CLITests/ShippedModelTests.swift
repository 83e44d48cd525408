import Checkpoints
import Foundation
import Media
import XCTest

/// The shipped base model, samples/base, end to end: what README's quick start runs.
final class ShippedModelTests: XCTestCase {
    /// The repository's samples/base (this file is Tests/CLITests/ShippedModelTests.swift).
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples/base").path
    static let demoPrompts = URL(fileURLWithPath: model).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("prompts/demo.txt").path

    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-shipped-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    /// A diffusers folder with F16 weights, 40 MB at most with its probes and README.
    func testTheShippedModelIsACompactF16DiffusersFolderWithItsProbes() throws {
        let files = ["model_index.json", "README.md", "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
                     "unet/config.json", "vae/config.json", "text_encoder/config.json",
                     "probes/shape-classifier.safetensors", "probes/concept-classifier.safetensors", "probes/style-classifier.safetensors"]
        for file in files {
            XCTAssertTrue(FileManager.default.fileExists(atPath: Self.model + "/" + file), file)
        }
        // diffusers' AnimateDiffPipeline: a UNetMotionModel with its MotionAdapter beside it.
        let index = try String(contentsOfFile: Self.model + "/model_index.json", encoding: .utf8)
        XCTAssertTrue(index.contains("\"AnimateDiffPipeline\"") && index.contains("\"UNetMotionModel\"") && index.contains("\"MotionAdapter\""), index)
        for weights in ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                        "motion_adapter/diffusion_pytorch_model.safetensors"] {
            let file = try SafeTensorsFile(path: Self.model + "/" + weights)
            XCTAssertEqual(Set(file.entries.values.map(\.dtype)), [.f16], weights)
        }
        var total = 0
        let enumerator = try XCTUnwrap(FileManager.default.enumerator(atPath: Self.model))
        for case let name as String in enumerator {
            total += (try FileManager.default.attributesOfItem(atPath: Self.model + "/" + name)[.size] as? Int) ?? 0
        }
        XCTAssertLessThanOrEqual(total, 40_000_000)
    }

    /// The shipped model renders the same bytes for the same seed, and draws the background the
    /// prompt names (the frame's border, where the world never puts an object, is mostly that colour).
    func testTheShippedModelRendersDeterministicallyAndFollowsTheBackgroundWord() throws {
        func render(_ prompt: String, _ out: String) throws -> RGBImage {
            let run = try CLITests.run(["render", prompt, "--model", Self.model, "--frames", "1", "--steps", "10", "--seed", "3",
                                        "--threads", "2", "--out", path(out)])
            XCTAssertEqual(run.status, 0, run.stderr)
            return try PNGImage.read(path: path(out)).image
        }
        let blue = try render("a large red circle on a blue background", "blue.png")
        _ = try render("a large red circle on a blue background", "again.png")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path("blue.png"))),
                       try Data(contentsOf: URL(fileURLWithPath: path("again.png"))))
        XCTAssertEqual([blue.width, blue.height], [64, 64])
        let yellow = try render("a large red circle on a yellow background", "yellow.png")
        func border(_ image: RGBImage) -> (r: Double, g: Double, b: Double) {
            var sums = (0.0, 0.0, 0.0), count = 0.0
            for y in 0 ..< image.height {
                for x in 0 ..< image.width where min(x, y, image.width - 1 - x, image.height - 1 - y) < 3 {
                    let index = (y * image.width + x) * 3
                    sums.0 += Double(image.pixels[index]); sums.1 += Double(image.pixels[index + 1]); sums.2 += Double(image.pixels[index + 2])
                    count += 1
                }
            }
            return (sums.0 / count, sums.1 / count, sums.2 / count)
        }
        let (onBlue, onYellow) = (border(blue), border(yellow))
        XCTAssertGreaterThan(onBlue.b, max(onBlue.r, onBlue.g) + 40, "\(onBlue)")
        XCTAssertGreaterThan(min(onYellow.r, onYellow.g), onYellow.b + 40, "\(onYellow)")
    }

    /// The shipped model moves an object the way the prompt says: from the same seed, "moving right"
    /// carries a red circle rightwards over the clip and "moving left" leftwards.
    func testTheShippedModelMovesTheObjectTheWayThePromptSays() throws {
        func travel(_ direction: String) throws -> Double {
            let out = path("\(direction).mp4")
            let run = try CLITests.run(["render", "a large red circle moving \(direction) quickly on a black background", "--model", Self.model,
                                        "--frames", "8", "--steps", "10", "--seed", "2", "--threads", "2", "--out", out])
            XCTAssertEqual(run.status, 0, run.stderr)
            func centreX(_ frame: Int) throws -> Double {
                let image = try PNGImage.read(path: path("\(direction)_frames/frame_000\(frame).png")).image
                var sum = 0.0, count = 0.0
                for y in 0 ..< image.height {
                    for x in 0 ..< image.width {
                        let i = (y * image.width + x) * 3
                        if image.pixels[i] > 150 && image.pixels[i + 1] < 100 && image.pixels[i + 2] < 100 { sum += Double(x); count += 1 }
                    }
                }
                XCTAssertGreaterThan(count, 50, "frame \(frame) of \(direction) shows the red circle")
                return sum / max(count, 1)
            }
            return try centreX(8) - centreX(1)
        }
        let right = try travel("right"), left = try travel("left")
        XCTAssertGreaterThan(right, 8, "moving right: \(right) pixels")
        XCTAssertLessThan(left, -8, "moving left: \(left) pixels")
    }

    /// README's main job: every line of prompts/demo.txt renders with the shipped model.
    func testTheDemoPromptsRender() throws {
        let run = try CLITests.run(["render", "--prompts", Self.demoPrompts, "--model", Self.model, "--steps", "4", "--threads", "2",
                                    "--out", path("demo")])
        XCTAssertEqual(run.status, 0, run.stderr)
        let written = try FileManager.default.contentsOfDirectory(atPath: path("demo"))
        // Three pictures and four clips (each with its frames and sheet), by out= name or line number, and the index.
        let outputs = written.filter { !$0.hasSuffix("_sheet.png") && !$0.hasSuffix("_frames") && !$0.hasPrefix("index.") }
        XCTAssertEqual(outputs.filter { $0.hasSuffix(".png") }.count, 3, "\(written.sorted())")
        XCTAssertEqual(outputs.filter { $0.hasSuffix(".mp4") }.count, 4, "\(written.sorted())")
        XCTAssertTrue(written.contains("red-circle.png") && written.contains("green-triangle.mp4") && written.contains("index.json"),
                      "\(written.sorted())")
    }

    /// The shipped adapters (scripts/ship-adapters.sh) are F16 PEFT files made for the shipped base,
    /// found by bare name on the LoRA search path (loras/, then samples/loras) by `render` as by
    /// `compose`, and the motion adapter renders a clip.
    func testTheShippedAdaptersAreFoundByNameAndRender() throws {
        let samples = URL(fileURLWithPath: Self.model).deletingLastPathComponent().path
        let adapters = ["loras/cat.safetensors", "loras/dog.safetensors", "loras/robot.safetensors", "motions/zigzag/temporal.safetensors"]
        for adapter in adapters {
            let file = try SafeTensorsFile(path: samples + "/" + adapter)
            XCTAssertEqual(Set(file.entries.values.map(\.dtype)), [.f16], adapter)
            XCTAssertTrue(file.entries.keys.allSatisfy { $0.hasPrefix("unet.") && ($0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora_B.weight")) },
                          adapter)
            XCTAssertNotNil(file.metadata["base_model"], adapter)
        }
        // A bare name resolves to samples/loras when loras/ does not hold it (the test runs from the checkout).
        let cat = try CLITests.run(["render", "a large cat on a white background", "--model", Self.model, "--lora", "cat:0.9",
                                    "--lora-dir", path("no-such-folder"), "--frames", "1", "--steps", "4", "--threads", "2",
                                    "--out", path("cat.png")])
        XCTAssertEqual(cat.status, 0, cat.stderr)
        XCTAssertEqual(try PNGImage.read(path: path("cat.png")).image.width, 64)
        let pair = try CLITests.run(["compose", "a cat on the left and a dog on the right on a green background", "--model", Self.model,
                                     "--lora", "cat", "--lora", "dog", "--lora-dir", path("no-such-folder"), "--steps", "4",
                                     "--threads", "2", "--out", path("pair.png")])
        XCTAssertEqual(pair.status, 0, pair.stderr)
        let zigzag = try CLITests.run(["render", "a large yellow star zigzagging on a gray background", "--model", Self.model,
                                       "--motion", samples + "/motions/zigzag/temporal.safetensors", "--frames", "8", "--steps", "4",
                                       "--threads", "2", "--out", path("zigzag.mp4")])
        XCTAssertEqual(zigzag.status, 0, zigzag.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("zigzag.mp4")))
    }
}
