import Diffusion
import World
import XCTest
@testable import customize

/// The world's pretraining batches: masks come from the same render as the pixels and match the
/// renderer's own masks, and asking for masks leaves the pixels bit-identical (resumed runs replay).
final class WorldPretrainingDataTests: XCTestCase {
    func testMaskedBatchMatchesPlainBatchAndRendererMasks() throws {
        let data = WorldPretrainingData(seed: 5)
        XCTAssertTrue(data.providesObjectMasks)
        for (count, frames) in [(3, 1), (2, 3)] {
            let (pixels, captions) = try data.batch(index: 4, count: count, frames: frames)
            let (maskedPixels, maskedCaptions, masks) = try data.maskedBatch(index: 4, count: count, frames: frames)
            XCTAssertEqual(maskedPixels.values, pixels.values)
            XCTAssertEqual(maskedCaptions, captions)
            let side = data.imageSide, plane = side * side
            let values = try XCTUnwrap(masks).values
            XCTAssertEqual(values.count, count * frames * plane)
            let specs = data.samples(index: 4, count: count, frames: frames).map(\.spec)
            for slot in 0..<(count * frames) {
                let spec = specs[slot / frames], frame = slot % frames
                let expected = data.renderer.objectMask(spec, progress: spec.progress(ofFrame: frame))
                XCTAssertEqual(Array(values[(slot * plane)..<((slot + 1) * plane)]), expected, "sample \(slot / frames) frame \(frame)")
                XCTAssertGreaterThan(expected.reduce(0, +), 0, "every world sample shows an object")
            }
        }
    }

    /// `"world": "core"` draws the core world's train split, images, clips and warm-up captions alike;
    /// `pretrain --architecture animatediff` starts from a config that does.
    func testTheCoreWorldFeedsPretrainingWhenTheConfigSaysSo() throws {
        let data = WorldPretrainingData(seed: 5, world: .core)
        let core = WorldSampler(seed: 5, clipFrames: 8, distribution: .core)
        for frames in [1, 8] {
            for sample in data.samples(index: 2, count: 6, frames: frames) {
                guard sample.spec.objects.count == 1, case .shape(let shape) = sample.spec.objects[0].kind else { return XCTFail(sample.caption) }
                XCTAssertTrue(CoreWorld.shapes.contains(shape) && CoreWorld.colours.contains(sample.spec.objects[0].colour), sample.caption)
                XCTAssertFalse(CoreWorld.isHeldOut(sample.spec.objects[0].colour, shape), sample.caption)
            }
        }
        XCTAssertEqual(try data.captions(index: 1, count: 2), [core.image(.train, index: 2).caption, core.clip(.train, index: 3).caption])
        XCTAssertNotEqual(WorldPretrainingData(seed: 5).samples(index: 2, count: 6, frames: 1).map(\.caption),
                          data.samples(index: 2, count: 6, frames: 1).map(\.caption))

        let printed = try CLITests.run(["pretrain", "--architecture", "animatediff", "--print-config"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        XCTAssertTrue(printed.stdout.contains(#""world" : "core""#) && printed.stdout.contains(#""architecture" : "animatediff""#), printed.stdout)
        let bad = try CLITests.run(["pretrain", "--architecture", "dit", "--print-config"])
        XCTAssertEqual(bad.status, 64)
        XCTAssertTrue(bad.stderr.contains("--architecture"), bad.stderr)
    }

    /// The warm-up's captions alternate the image and clip streams (so motion words occur), are the
    /// captions those samples carry, and repeat for the same index.
    func testWarmupCaptionsAlternateImagesAndClips() throws {
        let data = WorldPretrainingData(seed: 5)
        let captions = try data.captions(index: 3, count: 6)
        XCTAssertEqual(captions, try data.captions(index: 3, count: 6))
        let sampler = WorldSampler(seed: 5, clipFrames: 8)
        for (item, caption) in captions.enumerated() {
            let sample = 3 * 6 + item
            let expected = item % 2 == 0 ? sampler.image(.train, index: sample).caption : sampler.clip(.train, index: sample).caption
            XCTAssertEqual(caption, expected)
        }
        let clipCaptions = captions.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        XCTAssertTrue(clipCaptions.contains { caption in WorldVocabulary.words.contains { $0.hasSuffix("ing") && caption.contains(" \($0) ") } },
                      "\(clipCaptions)")
    }

    /// `motion_training.focus` on the world: a part of the core world, its words checked, the
    /// bad list named; the full world has no such parts.
    func testAFocusIsAPartOfTheCoreWorld() throws {
        let data = WorldPretrainingData(seed: 1, world: .coreTiedStart)
        let part = try XCTUnwrap(data.focused(.init(steps: 10, shapes: ["star"], colours: ["yellow"])))
        for caption in try part.batch(index: 3, count: 4, frames: 8).captions {
            XCTAssertTrue(caption.hasPrefix("a medium yellow star") || caption.hasPrefix("a large yellow star"), caption)
        }
        XCTAssertThrowsError(try data.focused(.init(steps: 10, colours: ["teal"]))) {
            XCTAssertEqual(($0 as? PretrainingFocusError)?.key, "colours")
            XCTAssertTrue(($0 as? PretrainingFocusError)?.reason.contains("\"teal\"") ?? false)
        }
        XCTAssertThrowsError(try WorldPretrainingData(seed: 1).focused(.init(steps: 10))) {
            XCTAssertTrue(($0 as? PretrainingFocusError)?.reason.contains("full") ?? false)
        }
    }
}
