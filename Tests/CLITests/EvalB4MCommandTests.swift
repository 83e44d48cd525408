import Foundation
import XCTest

/// `customize eval b4m` end to end on the tiny pipeline fixture with the shipped concept and style sets.
final class EvalB4MCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-eval-b4m-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private static let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("samples").path

    func testEvalB4MTrainsFiveAdaptersOnceAndReadsTheWorldsDrawings() throws {
        for kind in ["concept", "style"] {
            let trained = try CLITests.run(["eval", "train-probe", "--kind", kind, "--out", folder + "/probes/\(kind).safetensors",
                                            "--images", "400", "--steps", "600", "--threads", "1"])
            XCTAssertEqual(trained.status, 0, trained.stderr)
        }
        let arguments = ["eval", "b4m", "--model", RenderTests.model, "--probe", folder + "/probes/concept.safetensors",
                         "--style-probe", folder + "/probes/style.safetensors",
                         "--content-images", Self.samples + "/concepts/dog", "--style-images", Self.samples + "/styles/neon",
                         "--train-steps", "2", "--prompts", "2", "--steps", "2", "--threads", "1", "--out", folder + "/eval"]
        let run = try CLITests.run(arguments + ["--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        for label in ["train-content", "train-style", "make", "train-lora"] {
            XCTAssertTrue(run.stderr.contains(label), "\(label) runs: \(run.stderr)")
        }
        // The auxiliary sets default to the other sample folders.
        XCTAssertTrue(run.stderr.contains("16 auxiliary"), run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(report["concept"] as? String, "dog")
        XCTAssertEqual(report["style"] as? String, "neon")
        XCTAssertEqual((report["rows"] as! [[String: Any]]).map { $0["name"] as! String }, ["made", "content_adapter", "style_adapter", "content_lora", "style_lora", "merged_loras", "base"])
        XCTAssertEqual((report["bars"] as! [[String: Any]]).count, 4)
        XCTAssertEqual(report["passes_bars"] as? Bool, false, "a two-step fixture model cannot draw a dog")
        let truth = report["true_drawings"] as! [String: Any]
        XCTAssertGreaterThanOrEqual(truth["both"] as! Double, 0.5, "the probes read the world's own neon dogs")
        let samples = report["samples"] as! [[String: Any]]
        XCTAssertEqual(samples.first?["prompt"] as? String, "a medium dog on a green background in neon style")
        for file in ["content.safetensors", "style.safetensors", "made.safetensors", "content-lora.safetensors", "style-lora.safetensors", "eval-b4m.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/eval/" + file), file)
        }

        // A second run continues the finished runs instead of training again.
        let again = try CLITests.run(arguments)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("resuming at step 2 of 2"), again.stderr)
        XCTAssertTrue(again.stdout.contains("Break-for-Make") && again.stdout.contains("world's drawings"), again.stdout)

        // --b4m-lr reaches the three Break-for-Make runs and not the baseline's LoRAs.
        let otherRate = arguments.map { $0 == folder + "/eval" ? folder + "/eval-lr" : $0 } + ["--b4m-lr", "0.0003"]
        let rated = try CLITests.run(otherRate)
        XCTAssertEqual(rated.status, 0, rated.stderr)
        func firstRate(_ run: String) throws -> String {
            let lines = try String(contentsOfFile: folder + "/eval-lr/\(run)/loss.csv", encoding: .utf8).split(separator: "\n")
            return String(lines[1].split(separator: ",")[2])
        }
        // Each run logs its own half's rate (the partner half's is a tenth of it).
        for run in ["content-run", "style-run", "made-run"] { XCTAssertEqual(try XCTUnwrap(Float(try firstRate(run))), 3e-4, accuracy: 1e-9, run) }
        XCTAssertEqual(try XCTUnwrap(Float(try firstRate("content-lora-run"))), 1e-3, accuracy: 1e-9, "train-lora's default")
        // A second run with --b4m-lr continues the runs (at their own rate) instead of refusing --lr with --resume.
        let ratedAgain = try CLITests.run(otherRate)
        XCTAssertEqual(ratedAgain.status, 0, ratedAgain.stderr)
        XCTAssertTrue(ratedAgain.stderr.contains("resuming at step 2 of 2"), ratedAgain.stderr)
        let bad = try CLITests.run(["eval", "b4m", "--b4m-lr", "0", "--out", folder + "/bad-rate"])
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(bad.stderr.contains("--b4m-lr"), bad.stderr)
    }

    func testFoldersThatNameNoConceptOrStyleAreRefused() throws {
        let run = try CLITests.run(["eval", "b4m", "--model", RenderTests.model, "--content-images", Self.samples + "/styles/neon",
                                    "--style-images", Self.samples + "/styles/neon", "--out", folder + "/bad"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("--content-images") && run.stderr.contains("no caption names a concept"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad"))
    }
}
