import Checkpoints
import Foundation
import Media
import XCTest

/// `customize eval train-probe` and `customize eval base` end to end on the tiny pipeline fixture.
final class EvalCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-eval-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func testTrainProbeThenEvalReportsModelAndProbeAccuracy() throws {
        let probe = folder + "/probes/shape.safetensors"
        let trained = try CLITests.run(["eval", "train-probe", "--out", probe, "--images", "300", "--steps", "300", "--threads", "1"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertTrue(trained.stdout.contains("held-out"), trained.stdout)
        let file = try SafeTensorsFile(path: probe)
        XCTAssertEqual(Set(file.names), ["hidden.weight", "hidden.bias", "output.weight", "output.bias"])
        XCTAssertNotNil(file.metadata["heldout_accuracy"])

        let arguments = ["eval", "base", "--model", RenderTests.model, "--probe", probe, "--prompts", "4", "--steps", "2", "--threads", "1"]
        let run = try CLITests.run(arguments + ["--json", "--out", folder + "/sheets"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let truth = report["true_renders"] as! [String: [String: Any]]
        let generated = report["generated"] as! [String: [String: Any]]
        let autoencoded = report["autoencoded_true_renders"] as! [String: [String: Any]]
        for attribute in ["colour", "shape", "size", "motion"] {
            XCTAssertGreaterThan(truth[attribute]!["total"] as! Int, 0, attribute)
            XCTAssertEqual(truth[attribute]!["total"] as! Int, generated[attribute]!["total"] as! Int, attribute)
            XCTAssertEqual(truth[attribute]!["total"] as! Int, autoencoded[attribute]!["total"] as! Int, attribute)
        }
        let samples = try XCTUnwrap(report["samples"] as? [[String: Any]])
        XCTAssertEqual(samples.count, 4)
        // The core world's held-out pairs by default (the shipped base's world), the full world's with --full.
        let corePairs = ["green circle", "red square", "pink square", "purple triangle", "orange star", "red heart", "pink heart",
                         "blue cross", "white cross"]
        for sample in samples {
            let prompt = try XCTUnwrap(sample["prompt"] as? String)
            XCTAssertTrue(corePairs.contains { prompt.contains(" \($0) ") }, prompt)
        }
        let contradiction = try CLITests.run(arguments + ["--core", "--full"])
        XCTAssertEqual(contradiction.status, 64)
        XCTAssertTrue(contradiction.stderr.contains("--full"), contradiction.stderr)
        let outcomes = try XCTUnwrap(samples.first?["outcomes"] as? [String: [[String: Any]]])
        XCTAssertEqual(Set(outcomes.keys), ["generated", "true_render", "autoencoded_true_render"])
        XCTAssertEqual(outcomes["true_render"]?.first?["found"] as? Bool, true)
        // The world's own renders are read right: colour and motion need no learning.
        XCTAssertEqual(truth["colour"]!["accuracy"] as? Double, 1)
        XCTAssertEqual(truth["motion"]!["accuracy"] as? Double, 1)
        XCTAssertEqual(report["passes_bars"] as? Bool, false, "a two-step fixture model cannot compose")
        let bars = try XCTUnwrap(report["bars"] as? [[String: Any]])
        XCTAssertEqual(bars.map { $0["name"] as? String }, ["colour", "shape", "motion_direction"])
        for bar in bars {
            let name = bar["name"] as! String, met = bar["met"] as! Bool
            if let value = bar["value"] as? Double {
                XCTAssertEqual(value, generated[name]!["accuracy"] as! Double, accuracy: 1e-12, name)
                XCTAssertEqual(met, value >= (name == "colour" ? 0.9 : 0.8), name)
            } else {
                XCTAssertFalse(met, "\(name) not measured counts as missed")
            }
        }
        // One row per prompt: a clip's 8 generated, 8 true and 8 autoencoded 64-pixel frames, 2 apart.
        let sheet = try PNGImage.readInfo(path: folder + "/sheets/eval-base.png")
        XCTAssertEqual([sheet.width, sheet.height], [24 * 64 + 23 * 2, 4 * (64 + 2)])

        let table = try CLITests.run(arguments + ["--require-bars"])
        XCTAssertEqual(table.status, 1)
        XCTAssertTrue(table.stdout.contains("probes on true renders") && table.stdout.contains("true renders autoencoded")
                      && table.stdout.contains("bar missed"), table.stdout)
    }

    func testMissingOrBrokenProbeIsNamed() throws {
        let missing = try CLITests.run(["eval", "base", "--model", RenderTests.model, "--probe", folder + "/none.safetensors", "--prompts", "1"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("none.safetensors") && missing.stderr.contains("train-probe"), missing.stderr)

        let broken = folder + "/broken.safetensors"
        try SafeTensors.write([SafeTensors.TensorToWrite(name: "hidden.weight", shape: [4, 3], values: [Float](repeating: 0, count: 12)),
                               SafeTensors.TensorToWrite(name: "hidden.bias", shape: [4], values: [0, 0, 0, 0]),
                               SafeTensors.TensorToWrite(name: "output.weight", shape: [10, 4], values: [Float](repeating: 0, count: 40)),
                               SafeTensors.TensorToWrite(name: "output.bias", shape: [10], values: [Float](repeating: 0, count: 10))],
                              to: broken)
        let run = try CLITests.run(["eval", "base", "--model", RenderTests.model, "--probe", broken, "--prompts", "1"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("broken.safetensors") && run.stderr.contains("hidden.weight"), run.stderr)
    }
}
