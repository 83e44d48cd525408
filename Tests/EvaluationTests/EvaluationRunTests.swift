import Checkpoints
import Evaluation
import Foundation
import Media
import XCTest

/// The evaluations called as a library, without the command line, on the tiny pipeline fixture.
final class EvaluationRunTests: TemporaryFolderTestCase {
    /// The message of the `EvaluationError` that `body` throws ("" when it throws none).
    private func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return ""
        } catch let error as EvaluationError {
            return error.message
        } catch {
            return "not an EvaluationError: \(error)"
        }
    }

    func testBaseEvaluationReadsTheModelAndTheTrueRendersAndWritesTheSheet() throws {
        var evaluation = BaseEvaluation(model: EvaluationFixtures.model)
        evaluation.probe = try EvaluationFixtures.shapeProbe(in: folder)
        (evaluation.prompts, evaluation.steps, evaluation.out) = (2, 1, path("sheets"))
        let report = try evaluation.run()

        XCTAssertEqual(report.samples.map(\.seed), [0, 1])
        XCTAssertEqual(Set(report.samples[0].outcomes.keys), ["generated", "true_render", "autoencoded_true_render"])
        // Every attribute the true renders are scored on, the model's renders are scored on too.
        XCTAssertGreaterThan(report.trueRenders.colour.total, 0)
        XCTAssertEqual(report.generated.colour.total, report.trueRenders.colour.total)
        XCTAssertEqual(report.autoencodedTrueRenders.shape.total, report.trueRenders.shape.total)
        // Colour needs no learning: the world's own renders are read right.
        XCTAssertEqual(report.trueRenders.colour.accuracy, 1)
        XCTAssertEqual(report.bars.map(\.name), ["colour", "shape", "motion_direction"])
        XCTAssertFalse(report.passesBars, "a one-step fixture model cannot compose")
        for bar in report.bars where bar.value == nil { XCTAssertFalse(bar.met, "\(bar.name) not measured counts as missed") }

        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        XCTAssertEqual(json["passes_bars"] as? Bool, false)
        XCTAssertEqual((json["bars"] as? [Any])?.count, 3)
        XCTAssertNotNil(json["autoencoded_true_renders"])
        XCTAssertTrue(report.table.contains("probes on true renders") && report.table.contains("bar missed"), report.table)

        // One row per prompt (an image, then an 8-frame clip): the model's, the true and the
        // autoencoded true frames at the renderer's 64 pixels, 2 apart.
        let sheet = try PNGImage.readInfo(path: path("sheets/eval-base.png"))
        XCTAssertEqual([sheet.width, sheet.height], [24 * 64 + 23 * 2, 2 * (64 + 2)])
    }

    func testCaptionEvaluationMeasuresEachTimestepAndNamesTheModelForOneOutOfRange() throws {
        var evaluation = CaptionEvaluation(model: EvaluationFixtures.model)
        (evaluation.images, evaluation.clips, evaluation.timesteps) = (2, 0, [300])
        let report = try evaluation.run()
        XCTAssertEqual(report.rows.map(\.timestep), [300])
        XCTAssertEqual([report.images, report.clips], [2, 0])
        XCTAssertGreaterThan(report.rows[0].loss, 0)
        XCTAssertNil(report.rows[0].clipLoss)
        XCTAssertEqual(Set(report.rows[0].rise.keys), ["shape", "colour", "size", "background", "empty"])
        XCTAssertTrue(report.table.contains("wrong shape") && !report.table.contains("motion"), report.table)

        // The fixture's scheduler has 1000 training timesteps: 1000 is outside them.
        evaluation.timesteps = [300, 1000]
        let outside = message { _ = try evaluation.run() }
        XCTAssertEqual(outside, "\(EvaluationFixtures.model): --timesteps: 1000 is outside the scheduler's 0…999")
    }

    func testSettingsOutOfRangeAreRefusedNamingTheOptionBeforeAnythingIsWritten() throws {
        let model = EvaluationFixtures.model
        var base = BaseEvaluation(model: model)
        (base.prompts, base.out) = (0, path("base"))
        XCTAssertEqual(message { _ = try base.run() }, "--prompts must be at least 1, got 0")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("base")))

        var compose = ComposeEvaluation(model: model, out: path("compose"))
        compose.loras = ["cat"]
        XCTAssertEqual(message { _ = try compose.run() }, "give at least two --lora concepts to compose")
        compose.loras = ["cat", "dog:strong"]
        XCTAssertTrue(message { try compose.validate() }.hasPrefix("--lora dog:strong: the scale \"strong\""))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("compose")))
        XCTAssertEqual(message { _ = try ComposeEvaluation.parseMethods("composer,oil") },
                       "--methods: \"oil\" is not a method (composer, clora, merge)")
        XCTAssertEqual(try ComposeEvaluation.parseMethods("merge, composer,merge"), [.merge, .composer])

        XCTAssertEqual(message { _ = try CaptionEvaluation.parseTimesteps("4,,8") },
                       "--timesteps must be comma-separated whole numbers, got \"4,,8\"")
        XCTAssertEqual(try CaptionEvaluation.parseTimesteps("100, 700"), [100, 700])

        var decor = DecorEvaluation(model: model, out: path("decor"))
        decor.reference = "blue blob"
        XCTAssertTrue(message { try decor.validate() }.hasPrefix("--reference expects \"<colour> <shape>\""))
        (decor.reference, decor.decorStrength) = ("red heart", 2)
        XCTAssertEqual(message { _ = try decor.run() }, "--decor-strength must lie in [0, 1], got 2.0")
        (decor.decorStrength, decor.styleLora) = (1, path("none.safetensors"))
        XCTAssertTrue(message { try decor.validate() }.hasPrefix("--style-lora: no adapter file at"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("decor")))

        var b4m = B4MEvaluation(contentImages: path("cat"), styleImages: path("sketch"), model: model, out: path("b4m"))
        b4m.b4mLearningRate = 0
        XCTAssertEqual(message { _ = try b4m.run() }, "--b4m-lr must be a positive number, got 0.0")

        var motion = MotionEvaluation(clips: path("clips"), model: model)
        motion.motionPhrase = "  "
        XCTAssertEqual(message { try motion.validate() }, "--motion-phrase must not be empty")
        XCTAssertEqual(motion.outputFolder, "motions/eval-clips")

        var onestep = OnestepEvaluation(onestep: path("onestep.safetensors"), model: model, out: path("onestep"))
        onestep.teacherSteps = 0
        XCTAssertEqual(message { _ = try onestep.run() }, "--teacher-steps must be at least 1, got 0")

        var probe = ProbeTrainingRun(kind: .style, out: path("probes/style.safetensors"))
        probe.images = 10
        XCTAssertEqual(message { _ = try probe.run() }, "--images must be at least 100, got 10")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("probes")))
    }

    func testAMissingOrBrokenProbeIsNamed() throws {
        var base = BaseEvaluation(model: EvaluationFixtures.model)
        base.probe = path("none.safetensors")
        let missing = message { _ = try base.run() }
        XCTAssertTrue(missing.contains(path("none.safetensors")) && missing.contains("customize eval train-probe --kind shape"), missing)

        let broken = path("broken.safetensors")
        try SafeTensors.write([SafeTensors.TensorToWrite(name: "hidden.weight", shape: [4, 3], values: [Float](repeating: 0, count: 12))],
                              to: broken)
        XCTAssertEqual(message { _ = try ProbeFile.concept(broken) },
                       "\(broken): tensor \"hidden.bias\" is missing (expected the keys hidden.weight, hidden.bias, output.weight, output.bias)")
        XCTAssertEqual(ProbeKind.style.defaultPath(model: "runs/base"), "runs/base/probes/style-classifier.safetensors")
    }
}
