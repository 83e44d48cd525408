import Evaluation
import Foundation
import World
import XCTest

/// `customize eval caption`: the captions it compares and the command end to end on the tiny pipeline.
final class EvalCaptionTests: XCTestCase {
    /// Each variant changes only its word: the right caption with one word replaced by another of
    /// its kind, on one-object plain-shape scenes; the same seed gives the same variants.
    func testEachVariantReplacesOnlyItsWord() throws {
        let scenes = CaptionSwaps.scenes(count: 24, seed: 3)
        XCTAssertEqual(scenes.count, 24)
        XCTAssertTrue(scenes.allSatisfy { $0.objects.count == 1 })
        let variants = CaptionSwaps.variants(scenes, seed: 3)
        XCTAssertEqual(variants.map(\.name), ["right", "shape", "colour", "size", "background", "empty"])
        let words: [String: [String]] = ["shape": ObjectShape.allCases.map(\.rawValue), "colour": NamedColour.allCases.map(\.rawValue),
                                         "size": ObjectSize.allCases.map(\.rawValue), "background": NamedColour.allCases.map(\.rawValue)]
        for variant in variants[1 ..< 5] {
            for (right, changed) in zip(variants[0].captions, variant.captions) {
                let (a, b) = (right.split(separator: " "), changed.split(separator: " "))
                XCTAssertEqual(a.count, b.count, "\(right) / \(changed)")
                // "a"/"an" follow the word after them.
                let differing = zip(a, b).filter { $0 != $1 && !(["a", "an"].contains($0) && ["a", "an"].contains($1)) }
                XCTAssertEqual(differing.count, 1, "\(variant.name): \(right) / \(changed)")
                if let (old, new) = differing.first {
                    XCTAssertTrue(words[variant.name]!.contains(String(old)) && words[variant.name]!.contains(String(new)),
                                  "\(variant.name): \(right) / \(changed)")
                }
            }
        }
        // The background word sits after "on a"; the object's colour before the shape.
        XCTAssertTrue(zip(variants[0].captions, variants[4].captions).allSatisfy { $0.hasPrefix(String($1.prefix(8))) })
        // The replacements are drawn, not fixed.
        for variant in variants[1 ..< 5] {
            let replacements = Set(zip(variants[0].captions, variant.captions).map { right, changed in
                zip(right.split(separator: " "), changed.split(separator: " ")).first { $0 != $1 && !["a", "an"].contains($0) }.map { String($1) } ?? ""
            })
            XCTAssertGreaterThanOrEqual(replacements.count, 3, "\(variant.name): \(replacements.sorted())")
        }
        XCTAssertEqual(variants[5].captions, Array(repeating: "", count: 24))
        XCTAssertEqual(CaptionSwaps.variants(scenes, seed: 3).map(\.captions), variants.map(\.captions))
    }

    /// `--core`: the core world's held-out compositions, and replacement words from its vocabulary.
    func testCoreMeasuresHeldOutCoreScenesWithCoreWords() throws {
        let scenes = CaptionSwaps.scenes(count: 24, seed: 3, core: true)
        let clips = CaptionSwaps.clipScenes(count: 8, seed: 3, core: true)
        XCTAssertEqual(scenes.count, 24)
        XCTAssertEqual(clips.count, 8)
        for spec in scenes + clips {
            guard case .shape(let shape) = spec.objects[0].kind else { return XCTFail("\(spec)") }
            XCTAssertTrue(CoreWorld.isHeldOut(spec.objects[0].colour, shape), Captions.caption(spec))
        }
        let core = Set((CoreWorld.shapes.map(\.rawValue) + CoreWorld.colours.map(\.rawValue) + CoreWorld.sizes.map(\.rawValue)
                        + CoreWorld.backgroundColours.map(\.rawValue)))
        let variants = CaptionSwaps.variants(scenes, seed: 3, core: true)
        for variant in variants[1 ..< 5] {
            for (right, changed) in zip(variants[0].captions, variant.captions) {
                for (old, new) in zip(right.split(separator: " "), changed.split(separator: " ")) where old != new && !["a", "an"].contains(old) {
                    XCTAssertTrue(core.contains(String(new)), "\(variant.name): \(right) / \(changed)")
                }
            }
        }
        // Without --core, the full world's train split, as before.
        XCTAssertFalse(CaptionSwaps.scenes(count: 24, seed: 3).allSatisfy { spec in
            guard case .shape(let shape) = spec.objects[0].kind else { return false }
            return CoreWorld.shapes.contains(shape)
        })
    }

    /// The motion variant turns each clip's straight direction around and changes nothing else.
    func testTheMotionVariantReversesTheDirection() throws {
        let scenes = CaptionSwaps.clipScenes(count: 12, seed: 3)
        XCTAssertEqual(scenes.count, 12)
        XCTAssertTrue(scenes.allSatisfy { $0.objects.count == 1 && $0.frames > 1 && CaptionSwaps.opposites[$0.objects[0].motion] != nil })
        let variants = CaptionSwaps.motionVariants(scenes)
        XCTAssertEqual(variants.map(\.name), ["right", "motion"])
        let opposite = ["left": "right", "right": "left", "up": "down", "down": "up"]
        for (spec, (right, changed)) in zip(scenes, zip(variants[0].captions, variants[1].captions)) {
            XCTAssertEqual(right, Captions.caption(spec))
            let (a, b) = (right.split(separator: " "), changed.split(separator: " "))
            XCTAssertEqual(a.count, b.count, "\(right) / \(changed)")
            let differing = zip(a, b).filter { $0 != $1 }
            XCTAssertFalse(differing.isEmpty, right)
            for (old, new) in differing { XCTAssertEqual(opposite[String(old)], String(new), "\(right) / \(changed)") }
        }
        // Several directions are measured, not one.
        XCTAssertGreaterThanOrEqual(Set(scenes.map { $0.objects[0].motion }).count, 3)
    }

    func testTheCommandReportsEveryTimestepAndIsRepeatable() throws {
        let arguments = ["eval", "caption", "--model", RenderTests.model, "--images", "4", "--clips", "2", "--timesteps", "100,700", "--threads", "1", "--json"]
        let run = try CLITests.run(arguments)
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let rows = try XCTUnwrap(json["rows"] as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["timestep"] as? Int }, [100, 700])
        for row in rows {
            XCTAssertGreaterThan(try XCTUnwrap(row["loss"] as? Double), 0)
            let rise = try XCTUnwrap(row["rise"] as? [String: Double])
            XCTAssertEqual(Set(rise.keys), ["shape", "colour", "size", "background", "empty", "motion"])
            XCTAssertGreaterThan(try XCTUnwrap(row["clip_loss"] as? Double), 0)
            // The tiny U-Net attends to its text states: an empty caption changes its loss.
            XCTAssertNotEqual(rise["empty"], 0)
        }
        let again = try CLITests.run(arguments)
        let strip = { (text: String) in text.split(separator: "\n").filter { !$0.contains("\"seconds\"") } }
        XCTAssertEqual(strip(again.stdout), strip(run.stdout))

        let table = try CLITests.run(["eval", "caption", "--model", RenderTests.model, "--images", "2", "--clips", "0", "--timesteps", "300", "--threads", "1"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("wrong shape") && !table.stdout.contains("motion"), table.stdout)
        let outside = try CLITests.run(["eval", "caption", "--model", RenderTests.model, "--timesteps", "1000"])
        XCTAssertEqual(outside.status, 1)
        XCTAssertTrue(outside.stderr.contains("1000") && outside.stderr.contains(RenderTests.model), outside.stderr)
        let garbled = try CLITests.run(["eval", "caption", "--timesteps", "4,,8"])
        XCTAssertEqual(garbled.status, 64)
    }
}
