import Checkpoints
import Foundation
import Media
import World
import XCTest

/// `train-onestep` and `render --steps 1 --onestep`, end to end with the tiny pipeline.
final class OnestepCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-onestep-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    @discardableResult
    private func run(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(arguments + ["--model", RenderTests.model, "--threads", "1"])
        XCTAssertEqual(result.status, status, "\(arguments.joined(separator: " "))\n\(result.stderr)", file: file, line: line)
        return result
    }

    func testTrainThenRenderInOneStepAndResume() throws {
        try Data("a red star\n# a comment\na blue ball\n".utf8).write(to: URL(fileURLWithPath: path("prompts.txt")))
        let out = path("onestep.safetensors")
        try run(["train-onestep", "--prompts", path("prompts.txt"), "--pairs", "2", "--teacher-steps", "2", "--rank", "2",
                 "--steps", "2", "--checkpoint-every", "1", "--out", out])
        let file = try SafeTensorsFile(path: out)
        XCTAssertEqual(file.metadata["method"], "hipa-onestep")
        XCTAssertTrue(file.names.contains { $0.contains("resnets.0.conv1.lora_A.weight") })
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("onestep-run/pairs.safetensors")))
        let resumed = try run(["train-onestep", "--steps", "3", "--resume", "--out", out])
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)

        try run(["render", "a red star", "--frames", "1", "--steps", "1", "--onestep", out, "--out", path("one.png")])
        let info = try PNGImage.readInfo(path: path("one.png"))
        XCTAssertEqual(info.text["scheduler"], "onestep")
        XCTAssertEqual(info.text["adapters"], "onestep \(out):1.0")
        let wrongSteps = try run(["render", "a red star", "--steps", "2", "--onestep", out, "--out", path("two.png")], status: 64)
        XCTAssertTrue(wrongSteps.stderr.contains("--steps 1"), wrongSteps.stderr)

        let probe = path("probe.safetensors")
        let trained = try CLITests.run(["eval", "train-probe", "--out", probe, "--images", "100", "--steps", "5", "--threads", "1"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let evalFolder = path("onestep-eval")
        let report = try run(["eval", "onestep", "--onestep", out, "--probe", probe, "--prompts", "2", "--teacher-steps", "2",
                              "--out", evalFolder, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as! [String: Any]
        let rows = object["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["teacher", "one_step", "one_step_hipa"])
        XCTAssertEqual((object["samples"] as? [[String: Any]])?.map { $0["prompt"] as? String },
                       (0..<2).map { WorldSampler(seed: 0, distribution: .core).image(.heldout, index: $0).caption },
                       "the core world's held-out prompts by default")
        XCTAssertEqual((object["bars"] as? [[String: Any]])?.map { $0["name"] as? String }, ["adherence_kept", "detail_kept", "speedup"])
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: evalFolder + "/report.json"))) as! [String: Any]
        XCTAssertEqual(saved["speedup"] as? Double, object["speedup"] as? Double)
        XCTAssertGreaterThan(try PNGImage.readInfo(path: evalFolder + "/eval-onestep.png").height, 0)
        XCTAssertEqual(rows[0]["distance"] as? Double, 0)
        XCTAssertEqual(rows[0]["hf_ratio"] as? Double, 1)
        XCTAssertGreaterThan(rows[1]["distance"] as? Double ?? 0, 0)
        XCTAssertNotNil(object["speedup"] as? Double)
        XCTAssertNotNil(object["passes_bars"] as? Bool)
        let full = try run(["eval", "onestep", "--onestep", out, "--probe", probe, "--prompts", "1", "--teacher-steps", "1",
                            "--full", "--out", path("onestep-eval-full"), "--json"])
        let fullObject = try JSONSerialization.jsonObject(with: Data(full.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((fullObject["samples"] as? [[String: Any]])?.first?["prompt"] as? String,
                       WorldSampler(seed: 0).image(.heldout, index: 0).caption, "--full: the full world's held-out prompts")
    }

    /// Without --prompts the teacher pairs are captioned from the core world's training split (the
    /// shipped base's), or with --full from the full world's; --full cannot change on --resume.
    func testDefaultPromptsAreTheCoreWorldsAndFullTakesTheFullWorlds() throws {
        func prompts(_ extra: [String], out: String) throws -> [String] {
            try run(["train-onestep", "--pairs", "3", "--teacher-steps", "1", "--rank", "1", "--steps", "1", "--out", path(out)] + extra)
            let file = try SafeTensorsFile(path: path((out as NSString).deletingPathExtension + "-run/pairs.safetensors"))
            return try JSONDecoder().decode([String].self, from: Data(file.metadata["prompts"]!.utf8))
        }
        let core = try prompts([], out: "core.safetensors")
        XCTAssertEqual(core, (0..<3).map { WorldSampler(seed: 0, distribution: .core).image(.train, index: $0).caption })
        let full = try prompts(["--full"], out: "full.safetensors")
        XCTAssertEqual(full, (0..<3).map { WorldSampler(seed: 0).image(.train, index: $0).caption })
        XCTAssertNotEqual(core, full)
        let refused = try run(["train-onestep", "--resume", "--full", "--steps", "2", "--out", path("core.safetensors")], status: 64)
        XCTAssertTrue(refused.stderr.contains("--resume continues with the run's own settings"), refused.stderr)
        try Data("a red star\n".utf8).write(to: URL(fileURLWithPath: path("prompts.txt")))
        let both = try run(["train-onestep", "--full", "--prompts", path("prompts.txt"), "--out", path("both.safetensors")], status: 64)
        XCTAssertTrue(both.stderr.contains("--full chooses the world the default prompts come from"), both.stderr)
    }
}
