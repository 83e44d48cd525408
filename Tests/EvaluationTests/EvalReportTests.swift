import Foundation
import World
import XCTest
@testable import Evaluation

/// The reports' figures and bars, computed from outcomes given by hand.
final class EvalReportTests: XCTestCase {
    private func object(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testComposeReportCountsPlacedConfusedAndVanishedPerMethod() throws {
        func sample(_ method: String, _ readLeft: String, _ readRight: String, truth: (String, String) = ("cat", "dog"),
                    left: Concept = .cat, right: Concept = .dog) -> ComposeEvalReport.Sample {
            ComposeEvalReport.Sample(method: method, prompt: "a cat on the left and a dog on the right", seed: 0, left: left, right: right,
                                     readLeft: readLeft, readRight: readRight, truthLeft: truth.0, truthRight: truth.1, seconds: 2)
        }
        let samples = [
            sample("composer", "cat", "dog"), sample("composer", "dog", "cat", truth: ("dog", "cat"), left: .dog, right: .cat),
            sample("merge", "dog", "cat"), sample("merge", "cat", "nothing"),
        ]
        let report = ComposeEvalReport(model: "m", loras: ["cat=cat.safetensors", "dog=dog.safetensors"], seeds: 2, steps: 2, guidance: 9,
                                       methods: ["composer", "merge"], concepts: [.cat, .dog], samples: samples, seconds: 1)
        XCTAssertEqual(report.rows.map(\.method), ["composer", "merge"])
        let composer = report.rows[0], merge = report.rows[1]
        XCTAssertEqual([composer.placed, composer.present, composer.vanished, composer.confused], [1, 1, 0, 0])
        // Merge: one picture swapped (both there, neither in its half), one with the dog gone.
        XCTAssertEqual([merge.placed, merge.present, merge.vanished, merge.confused], [0, 0.5, 0.5, 0.5])
        XCTAssertEqual(merge.perConcept, ["cat": 0.5, "dog": 0])
        XCTAssertEqual(composer.secondsPerImage, 2)
        XCTAssertEqual(report.probeAccuracy, 1, "the world's drawings of the composer's scenes were read as asked")

        XCTAssertEqual(report.bars.map(\.name), ["composer_placed", "composer_above_merge"], "no clora row, no clora bars")
        XCTAssertEqual(report.bars.map(\.value), [1, 1])
        XCTAssertTrue(report.passesBars)
        let json = try object(report.json())
        XCTAssertEqual(json["passes_bars"] as? Bool, true)
        XCTAssertEqual(json["probe_accuracy_on_true_drawings"] as? Double, 1)
        let first = try XCTUnwrap((json["samples"] as? [[String: Any]])?.first)
        XCTAssertEqual(first["placed"] as? Bool, true)
        XCTAssertEqual(first["read_left"] as? String, "cat")
    }

    func testMotionBarsNeedFidelityMarginsOverThePlainLoRAAndTheBaseAndLittleLeakage() {
        func row(_ name: String, fidelities: [Float], leaked: [Bool]) -> MotionEvalReport.Row {
            MotionEvalReport.Row(name: name, label: name, adapter: nil, outcomes: zip(fidelities, leaked).map { fidelity, leaked in
                MotionEvalReport.Outcome(found: true, colour: nil, shape: nil, fidelity: fidelity, leaked: leaked, adherent: !leaked, seconds: 1)
            })
        }
        let director = row("motiondirector", fidelities: [1, 0.75], leaked: [false, false])
        let plain = row("plain_lora", fidelities: [0.75, 0.5], leaked: [true, false])
        let base = row("base", fidelities: [0.5, 0.25], leaked: [false, false])
        XCTAssertEqual(director.motionFidelity, 0.875)
        XCTAssertEqual(plain.leakage, 0.5)
        XCTAssertEqual(plain.adherence, 0.5)

        let clear = MotionEvalReport.bars([director, plain, base])
        XCTAssertEqual(clear.map(\.name), ["motion_fidelity", "above_plain", "above_base", "leakage"])
        XCTAssertEqual(clear.map(\.met), [true, true, true, true])
        XCTAssertEqual(clear[1].value, 0.25)
        XCTAssertEqual(clear[2].value, 0.5)
        // A plain LoRA that follows the motion as well leaves no margin: the dual path must decouple.
        let closePlain = MotionEvalReport.bars([director, row("plain_lora", fidelities: [1, 0.6], leaked: [false, false]), base])
        XCTAssertEqual(closePlain.map(\.met), [true, false, true, true])
        // A base model that already follows the motion leaves none either.
        let closeBase = MotionEvalReport.bars([director, plain, row("base", fidelities: [0.75, 0.75], leaked: [false, false])])
        XCTAssertEqual(closeBase.map(\.met), [true, true, false, true])
        // One render of two taking the clips' look is leakage 0.5, above 0.1; equal leakage is no longer a failure by itself.
        let leaky = MotionEvalReport.bars([row("motiondirector", fidelities: [1, 0.75], leaked: [true, false]), plain, base])
        XCTAssertEqual(leaky.map(\.met), [true, true, true, false])
        XCTAssertEqual(leaky[3].value, 0.5)
        XCTAssertEqual(MotionEvalReport.bars([director, plain]).count, 0, "without a base row there is nothing to compare")
    }

    func testOnestepBarsAndJSON() throws {
        func row(_ name: String, seconds: Double, adherent: [Bool], highFrequencyRatio: Double) -> OnestepEvalReport.Row {
            OnestepEvalReport.Row(name: name, label: name, outcomes: adherent.map { OnestepEvalReport.Outcome(distance: 0.25, adherent: $0, seconds: seconds) },
                                  highFrequencyRatio: highFrequencyRatio)
        }
        let rows = [row("teacher", seconds: 2, adherent: [true, true, true, true], highFrequencyRatio: 1),
                    row("one_step", seconds: 0.1, adherent: [false, false, false, false], highFrequencyRatio: 0.5),
                    row("one_step_hipa", seconds: 0.125, adherent: [true, true, true, false], highFrequencyRatio: 0.75)]
        XCTAssertEqual(OnestepEvalReport.speedup(of: rows), 16)
        let report = OnestepEvalReport(model: "m", onestep: "o.safetensors", prompts: 4, seed: 0, teacherSteps: 25, guidance: 9, rows: rows,
                                       samples: [], seconds: 10, speedup: OnestepEvalReport.speedup(of: rows))
        XCTAssertEqual(report.bars.map(\.name), ["adherence_kept", "detail_kept", "speedup"])
        // Adherence drops by 0.25 (more than 0.10) and the detail ratio is under 0.8; the speed-up is enough.
        XCTAssertEqual(report.bars.map(\.met), [false, false, true])
        XCTAssertFalse(report.passesBars)
        XCTAssertTrue(report.table.contains("speed-up of HiPA over the teacher: 16.0x"), report.table)
        let json = try object(report.json())
        XCTAssertEqual(json["teacher_steps"] as? Int, 25)
        XCTAssertEqual((json["rows"] as? [[String: Any]])?.last?["hf_ratio"] as? Double, 0.75)
        XCTAssertEqual(json["passes_bars"] as? Bool, false)
    }

    func testABarWithoutAValueIsMissedAndTablesAlign() {
        XCTAssertEqual(EvalBar(name: "x", requirement: "x ≥ 1", value: nil, met: false).line, "bar missed x ≥ 1: not measured")
        XCTAssertEqual(EvalBar(name: "x", requirement: "x ≥ 1", value: 1.5, met: true).line, "bar met    x ≥ 1: 1.50")
        let table = TextTable(header: ["row", "a"], rows: [["long row", "1"], ["r", "22"]]).text
        XCTAssertEqual(table.split(separator: "\n"), ["row" + String(repeating: " ", count: 8) + "a", "long row   1",
                                                      "r" + String(repeating: " ", count: 9) + "22"])
        XCTAssertEqual(ConfusionTable(labels: ["a", "b"], counts: [[3, 0], [1, 12]]).text.split(separator: "\n").last, "b            1  12")
    }

    func testTheNoLeakNoteAppearsOnlyWhenTheStyleLoRALeaksNoMoreThanTheBase() {
        XCTAssertNil(DecorEvalReport.noLeakNote(styleLoRA: 0.5, base: 0.25))
        XCTAssertNotNil(DecorEvalReport.noLeakNote(styleLoRA: 0.25, base: 0.25))
        XCTAssertNil(DecorEvalReport.noLeakNote(styleLoRA: nil, base: 0.25))
    }

    /// LoRA-Composer's default region prompts carry the global prompt's background phrase: the
    /// side-by-side boxes cover most of the picture, and inside them nothing else names the background.
    func testComposerRegionPromptsCarryTheBackground() throws {
        let choices = ["cat", "dog"].map { LoRAChoice(name: $0, path: "/nonexistent/\($0).safetensors", scale: 1) }
        let plan = try ComposePlan(method: .composer, prompt: "a cat on the left and a dog on the right on a green background",
                                   choices: choices, regions: [], conceptPrompts: [])
        XCTAssertEqual(plan.concepts.map(\.prompt), ["a cat on a green background", "a dog on a green background"])
        let orange = try ComposePlan(method: .composer, prompt: "a cat and a dog on an orange gradient background.",
                                     choices: choices, regions: [], conceptPrompts: [])
        XCTAssertEqual(orange.concepts[0].prompt, "a cat on an orange gradient background")
        // No background phrase: the concept alone; a given --concept-prompt wins.
        let plain = try ComposePlan(method: .composer, prompt: nil, choices: choices, regions: [], conceptPrompts: [(name: "dog", prompt: "a dog")])
        XCTAssertEqual(plain.concepts.map(\.prompt), ["a cat", "a dog"])
        let onTop = try ComposePlan(method: .composer, prompt: "a cat on the left and a dog on the right", choices: choices,
                                    regions: [], conceptPrompts: [])
        XCTAssertEqual(onTop.concepts[0].prompt, "a cat")
    }
}
