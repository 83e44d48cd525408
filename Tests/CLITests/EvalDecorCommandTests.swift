import Checkpoints
import Evaluation
import Foundation
import XCTest

/// `customize eval decor` end to end on the tiny pipeline fixture: reference, style LoRA, three rows.
final class EvalDecorCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-eval-decor-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func testEvalDecorTrainsAStyleLoRAOnceAndReportsThreeRows() throws {
        for kind in ["shape", "style"] {
            let trained = try CLITests.run(["eval", "train-probe", "--kind", kind, "--out", folder + "/probes/\(kind).safetensors",
                                            "--images", "300", "--steps", "300", "--threads", "1"])
            XCTAssertEqual(trained.status, 0, trained.stderr)
        }
        let arguments = ["eval", "decor", "--model", RenderTests.model, "--probe", folder + "/probes/shape.safetensors",
                         "--style-probe", folder + "/probes/style.safetensors", "--prompts", "3", "--steps", "2",
                         "--train-steps", "2", "--reference-images", "3", "--threads", "1", "--out", folder + "/eval"]
        let run = try CLITests.run(arguments + ["--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("train-lora"), "the style LoRA is trained: \(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((report["rows"] as! [[String: Any]]).map { $0["name"] as! String }, ["style_lora", "style_lora_decor", "base"])
        XCTAssertEqual((report["bars"] as! [[String: Any]]).count, 2)
        let truth = report["true_drawings"] as! [String: Any]
        XCTAssertEqual(truth["images"] as? Int, 3)
        XCTAssertGreaterThan(truth["style"] as! Double, 0.5, "the style probe reads the world's sketches")
        let samples = report["samples"] as! [[String: Any]]
        // The core world's words by default (--full: the full world's).
        XCTAssertEqual(samples.first?["prompt"] as? String, "a medium orange circle on a black background in sketch style")
        for name in ["00000.png", "00000.txt", "00002.txt"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/eval/reference/" + name), name)
        }
        XCTAssertEqual(try String(contentsOfFile: folder + "/eval/reference/00000.txt", encoding: .utf8).contains("red heart"), true)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/eval/style.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/eval/eval-decor.png"))

        // --full: the full world's look and words, here with the trained style LoRA given.
        let full = try CLITests.run(["eval", "decor", "--model", RenderTests.model, "--probe", folder + "/probes/shape.safetensors",
                                     "--style-probe", folder + "/probes/style.safetensors", "--prompts", "1", "--steps", "1",
                                     "--reference-images", "1", "--threads", "1", "--style-lora", folder + "/eval/style.safetensors",
                                     "--full", "--out", folder + "/eval-full", "--json"])
        XCTAssertEqual(full.status, 0, full.stderr)
        let fullReport = try JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((fullReport["samples"] as! [[String: Any]]).first?["prompt"] as? String,
                       "a medium green circle on a blue background in sketch style")

        // A second run reuses the trained run and prints the table.
        let again = try CLITests.run(arguments)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("style LoRA + DECOR") && again.stdout.contains("world's drawings"), again.stdout)

        // Another reference in the same folder is refused, naming the file.
        let other = try CLITests.run(arguments + ["--reference", "blue star"])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("holds another reference (00000.txt"), other.stderr)
    }

    /// The table says when the style LoRA leaks no more than the base: no leak for DECOR to remove.
    func testANonLeakingStyleLoRAIsPointedOut() {
        XCTAssertNil(DecorEvalReport.noLeakNote(styleLoRA: 0.5, base: 0.25))
        let note = DecorEvalReport.noLeakNote(styleLoRA: 0.08, base: 0.25)
        XCTAssertTrue(note?.contains("no leak here for DECOR to remove") == true && note?.contains("0.08 vs 0.25") == true, note ?? "nil")
        XCTAssertNotNil(DecorEvalReport.noLeakNote(styleLoRA: 0.17, base: 0.17))
        XCTAssertNil(DecorEvalReport.noLeakNote(styleLoRA: nil, base: 0.17))
    }

    func testBadReferenceOrStyleIsNamed() throws {
        for (arguments, message) in [(["--reference", "blue blob"], #"--reference expects "<colour> <shape>""#),
                                     (["--style", "oil"], "--style expects one of neon, pixel, sketch"),
                                     (["--decor-strength", "2"], "--decor-strength must lie in [0, 1]"),
                                     (["--style-lora", folder + "/none.safetensors"], "--style-lora: no adapter file at")] {
            let run = try CLITests.run(["eval", "decor", "--model", RenderTests.model, "--out", folder + "/bad"] + arguments)
            XCTAssertEqual(run.status, 64, "\(arguments)")
            XCTAssertTrue(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }
}
