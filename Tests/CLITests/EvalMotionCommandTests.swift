import Checkpoints
import Foundation
import XCTest

/// `customize eval motion` and `train-motion --plain` end to end on the tiny pipeline fixture
/// (16×16 pixels) with world zigzag clips and a small shape classifier.
final class EvalMotionCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-eval-motion-cli-\(UUID().uuidString)"
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

    /// Two world clips of the zigzag motion.
    private func makeClips() throws -> String {
        let clips = path("clips")
        try run(["world", "--motion", "zigzag", "--clips", "2", "--out", clips])
        return clips
    }

    /// A shape classifier with fixed small weights: the test checks the plumbing, not its accuracy.
    private func makeProbe() throws -> String {
        let probe = path("shape.safetensors")
        let features = 16 * 16 + 2, hidden = 4, shapes = 10
        func values(_ count: Int, _ seed: Float) -> [Float] { (0..<count).map { sin(Float($0) * 0.7 + seed) * 0.1 } }
        try SafeTensors.write([
            SafeTensors.TensorToWrite(name: "hidden.weight", shape: [hidden, features], values: values(hidden * features, 1)),
            SafeTensors.TensorToWrite(name: "hidden.bias", shape: [hidden], values: values(hidden, 2)),
            SafeTensors.TensorToWrite(name: "output.weight", shape: [shapes, hidden], values: values(shapes * hidden, 3)),
            SafeTensors.TensorToWrite(name: "output.bias", shape: [shapes], values: values(shapes, 4)),
        ], to: probe)
        return probe
    }

    private func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testEvalMotionTrainsCachesAndReportsThreeRows() throws {
        let clips = try makeClips(), probe = try makeProbe(), out = path("eval")
        let common = ["eval", "motion", "--clips", clips, "--model", RenderTests.model, "--probe", probe, "--prompts", "2",
                      "--steps", "2", "--threads", "1"]
        let first = try run(common + ["--train-steps", "2", "--rank", "2", "--out", out, "--json"])
        XCTAssertTrue(first.stderr.contains("encoding clips"), first.stderr)
        let report = try object(first.stdout)
        let rows = try XCTUnwrap(report["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["name"] as? String }, ["motiondirector", "plain_lora", "base"])
        for row in rows {
            for key in ["motion_fidelity", "leakage", "adherence", "seconds_per_clip"] {
                let value = try XCTUnwrap(row[key] as? Double, "\(row["name"]!) \(key)")
                XCTAssertTrue(key == "motion_fidelity" ? (-1...1).contains(value) : value >= 0, "\(key) \(value)")
            }
            XCTAssertEqual(row["prompts"] as? Int, 2)
        }
        XCTAssertEqual(rows[0]["adapter"] as? String, out + "/motiondirector/temporal.safetensors")
        XCTAssertEqual(rows[1]["adapter"] as? String, out + "/plain/plain.safetensors")
        XCTAssertEqual((report["reference_displacements"] as? [Double])?.count, 14, "7 steps in x, then 7 in y")
        XCTAssertEqual(report["train_steps"] as? Int, 2)
        XCTAssertEqual(report["motion_phrase"] as? String, try captionPhrase(clips))
        let bars = try XCTUnwrap(report["bars"] as? [[String: Any]])
        XCTAssertEqual(bars.map { $0["name"] as? String }, ["motion_fidelity", "above_plain", "above_base", "leakage"])
        XCTAssertEqual(report["passes_bars"] as? Bool, bars.allSatisfy { $0["met"] as? Bool == true })
        // The prompts' looks are none of the clips'.
        let clipColours = try (0..<2).map { index -> String in
            let caption = try String(contentsOfFile: clips + String(format: "/%05d.txt", index), encoding: .utf8)
            return caption.split(separator: " ")[2].description
        }
        let samples = try XCTUnwrap(report["samples"] as? [[String: Any]])
        XCTAssertEqual(samples.count, 2)
        for sample in samples {
            let prompt = try XCTUnwrap(sample["prompt"] as? [String: Any])
            XCTAssertFalse(clipColours.contains(prompt["colour"] as! String), "\(prompt)")
            let outcomes = try XCTUnwrap(sample["outcomes"] as? [String: Any])
            XCTAssertEqual(Set(outcomes.keys), ["motiondirector", "plain_lora", "base"])
        }
        XCTAssertEqual(samples.map { $0["seed"] as? Int }, [0, 1])
        for file in ["motiondirector/temporal.safetensors", "motiondirector/motion_run.json", "plain/plain.safetensors",
                     "plain/plain_run.json", "report.json", "eval-motion.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let plain = try SafeTensorsFile(path: out + "/plain/plain.safetensors")
        XCTAssertEqual(plain.metadata["method"], "plain-motion-lora")
        XCTAssertEqual(plain.metadata["rank"], "2")

        // A rerun trains nothing and renders the same; --require-bars exits 1 exactly when a bar is missed.
        let passes = report["passes_bars"] as? Bool == true
        let again = try run(common + ["--train-steps", "2", "--rank", "2", "--out", out, "--require-bars"], status: passes ? 0 : 1)
        XCTAssertFalse(again.stderr.contains("encoding clips"), again.stderr)
        XCTAssertTrue(again.stderr.contains("MotionDirector: using the trained run") && again.stderr.contains("plain LoRA: using the trained run"),
                      again.stderr)
        for label in ["MotionDirector", "plain LoRA", "base", "motion fidelity", "the probes on the training clips", "bar "] {
            XCTAssertTrue(again.stdout.contains(label), "\(label)\n\(again.stdout)")
        }

        // Adapters given: nothing is trained, and the same adapters and seeds give the same figures.
        let given = try run(common + ["--motion-adapters", out + "/motiondirector", "--plain-adapter", out + "/plain/plain.safetensors",
                                      "--out", path("given"), "--json"])
        XCTAssertFalse(given.stderr.contains("encoding clips"), given.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("given/motiondirector")))
        let givenRows = try XCTUnwrap(try object(given.stdout)["rows"] as? [[String: Any]])
        for (row, givenRow) in zip(rows, givenRows) {
            for key in ["motion_fidelity", "leakage", "adherence", "found"] {
                XCTAssertEqual("\(row[key]!)", "\(givenRow[key]!)", "\(row["name"]!) \(key)")
            }
        }

        // Adapters trained on other clips are refused, naming the difference.
        let one = path("one-clip")
        try FileManager.default.createDirectory(atPath: one, withIntermediateDirectories: true)
        for file in ["00000.mp4", "00000.txt"] { try FileManager.default.copyItem(atPath: clips + "/" + file, toPath: one + "/" + file) }
        let mismatched = try run(["eval", "motion", "--clips", one] + common.dropFirst(4)
                                 + ["--motion-adapters", out + "/motiondirector", "--plain-adapter", out + "/plain/plain.safetensors",
                                    "--out", path("mismatched")], status: 1)
        XCTAssertTrue(mismatched.stderr.contains("was trained on other clips") && mismatched.stderr.contains("trained on 2 clips"),
                      mismatched.stderr)

        // Other settings on the cached runs are refused with what to do.
        let changed = try run(common + ["--train-steps", "2", "--rank", "3", "--out", out], status: 1)
        XCTAssertTrue(changed.stderr.contains("holds a run with other settings (rank 2") && changed.stderr.contains("choose another --out"),
                      changed.stderr)
    }

    /// The most common motion phrase of the clips' captions (what eval motion must pick).
    private func captionPhrase(_ clips: String) throws -> String {
        let phrases = try (0..<2).map { index -> String in
            let caption = try String(contentsOfFile: clips + String(format: "/%05d.txt", index), encoding: .utf8)
            let words = caption.split(separator: " ").map(String.init)
            let start = try XCTUnwrap(words.firstIndex { $0.hasSuffix("ing") })
            return words[start..<words.firstIndex(of: "on")!].joined(separator: " ")
        }
        return phrases[0]
    }

    func testTrainMotionPlainTrainsResumesAndRefusesSplitOptions() throws {
        let clips = try makeClips(), out = path("plain")
        let trained = try run(["train-motion", clips, "--plain", "--steps", "2", "--rank", "2", "--checkpoint-every", "1",
                               "--preview-every", "0", "--out", out, "--model", RenderTests.model, "--threads", "1"])
        XCTAssertTrue(trained.stdout.contains(out + "/plain.safetensors"), trained.stdout)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/temporal.safetensors"))
        let file = try SafeTensorsFile(path: out + "/plain.safetensors")
        XCTAssertEqual(file.metadata["method"], "plain-motion-lora")
        XCTAssertTrue(file.names.contains { $0.contains("temp_attentions") } && file.names.contains { $0.contains(".attentions.") })
        let resumed = try run(["train-motion", clips, "--plain", "--resume", "--steps", "3", "--out", out, "--model", RenderTests.model,
                               "--threads", "1"])
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)
        let again = try run(["train-motion", clips, "--plain", "--steps", "2", "--out", out, "--model", RenderTests.model], status: 1)
        XCTAssertTrue(again.stderr.contains("already holds a plain LoRA run"), again.stderr)
        let split = try run(["train-motion", clips, "--plain", "--beta", "1", "--out", path("x"), "--model", RenderTests.model], status: 64)
        XCTAssertTrue(split.stderr.contains("leave out --beta"), split.stderr)
        // The MotionDirector run of the same folder cannot resume a plain one.
        let wrongKind = try run(["train-motion", clips, "--resume", "--out", out, "--model", RenderTests.model], status: 1)
        XCTAssertTrue(wrongKind.stderr.contains("no MotionDirector run to resume"), wrongKind.stderr)
    }

    func testBadInputIsNamed() throws {
        let probe = try makeProbe()
        let empty = path("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let none = try run(["eval", "motion", "--clips", empty, "--model", RenderTests.model, "--probe", probe, "--out", path("o1")], status: 1)
        XCTAssertTrue(none.stderr.contains("holds no clips"), none.stderr)

        let clips = try makeClips()
        let missing = try run(["eval", "motion", "--clips", clips, "--model", RenderTests.model, "--probe", path("none.safetensors"),
                               "--out", path("o2")], status: 1)
        XCTAssertTrue(missing.stderr.contains("none.safetensors") && missing.stderr.contains("train-probe"), missing.stderr)

        let noPlain = try run(["eval", "motion", "--clips", clips, "--model", RenderTests.model, "--probe", probe,
                               "--plain-adapter", path("absent.safetensors"), "--out", path("o3")], status: 1)
        XCTAssertTrue(noPlain.stderr.contains("--plain-adapter: no adapter file at") && noPlain.stderr.contains("absent.safetensors"),
                      noPlain.stderr)
        let noMotion = try run(["eval", "motion", "--clips", clips, "--model", RenderTests.model, "--probe", probe,
                                "--motion-adapters", path("nothing"), "--out", path("o4")], status: 1)
        XCTAssertTrue(noMotion.stderr.contains("--motion-adapters: no adapter file at"), noMotion.stderr)

        let zero = try run(["eval", "motion", "--clips", clips, "--prompts", "0"], status: 64)
        XCTAssertTrue(zero.stderr.contains("--prompts must be at least 1"), zero.stderr)
    }
}
