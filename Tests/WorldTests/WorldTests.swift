import Foundation
import XCTest
@testable import World

final class WorldTests: XCTestCase {
    func testSamplesAreDeterministicAndIndependentOfOrder() {
        let sampler = WorldSampler(seed: 7)
        let a = sampler.clip(.train, index: 3), b = sampler.clip(.train, index: 3)
        XCTAssertEqual(a, b)
        _ = sampler.clip(.train, index: 4)
        XCTAssertEqual(sampler.clip(.train, index: 3), a)
        XCTAssertNotEqual(sampler.clip(.train, index: 4), a)
        let renderer = Renderer()
        XCTAssertEqual(renderer.render(a.spec), renderer.render(b.spec))
        XCTAssertNotEqual(WorldSampler(seed: 8).clip(.train, index: 3), a)
    }

    func testSplitsKeepHeldOutCombinationsAndReservedItemsApart() {
        let sampler = WorldSampler(seed: 1)
        for index in 0..<400 {
            for sample in [sampler.image(.train, index: index), sampler.clip(.train, index: index)] {
                XCTAssertNil(sample.spec.style)
                for object in sample.spec.objects {
                    guard case let .shape(shape) = object.kind else { return XCTFail("concept in train: \(sample.caption)") }
                    XCTAssertFalse(WorldSampler.isHeldOut(object.colour, shape), sample.caption)
                    XCTAssertFalse(object.motion.isReserved, sample.caption)
                }
            }
            for object in sampler.image(.heldout, index: index).spec.objects {
                guard case let .shape(shape) = object.kind else { return XCTFail("concept in heldout") }
                XCTAssertTrue(WorldSampler.isHeldOut(object.colour, shape))
            }
            let reserved = sampler.clip(.reserved, index: index).spec
            let isReserved = reserved.style != nil || reserved.objects.contains {
                if case .concept = $0.kind { return true }
                return $0.motion.isReserved
            }
            XCTAssertTrue(isReserved)
        }
        XCTAssertEqual(WorldSampler.heldOutPairs.count, 20)
    }

    func testCaptionGrammar() {
        let spec = SceneSpec(background: Background(kind: .plain, colour: .blue),
                             objects: [SceneObject(kind: .shape(.circle), colour: .red, size: .small, texture: .striped,
                                                   motion: .left, speed: .fast)], frames: 8)
        XCTAssertEqual(Captions.caption(spec), "a small red striped circle moving left quickly on a blue background")
        var still = spec
        still.frames = 1
        XCTAssertEqual(Captions.caption(still), "a small red striped circle on a blue background")
        let two = SceneSpec(background: Background(kind: .grid, colour: .green), objects: [
            SceneObject(kind: .shape(.star), colour: .yellow, size: .medium, position: [0.7, 0.5]),
            SceneObject(kind: .concept(.cat), colour: .orange, size: .small, position: [0.3, 0.5]),
        ], style: .neon)
        XCTAssertEqual(Captions.caption(two),
                       "a small cat on the left and a medium yellow star on the right on a green grid background in neon style")
        for word in Captions.caption(spec).split(separator: " ") {
            XCTAssertTrue(WorldVocabulary.words.contains(String(word)), String(word))
        }
    }

    func testObjectsStayInsideTheCanvasThroughTheirMotion() {
        let sampler = WorldSampler(seed: 3)
        for index in 0..<300 {
            let spec = sampler.clip(.train, index: index).spec
            for object in spec.objects where object.motion != .panLeft && object.motion != .panRight {
                for step in 0...8 {
                    let pose = object.pose(at: Float(step) / 8)
                    let r = object.size.radius * pose.scale
                    XCTAssertGreaterThanOrEqual(pose.centre.x, r - 0.02, "\(spec)")
                    XCTAssertLessThanOrEqual(pose.centre.x, 1 - r + 0.02, "\(spec)")
                    XCTAssertGreaterThanOrEqual(pose.centre.y, r - 0.02, "\(spec)")
                    XCTAssertLessThanOrEqual(pose.centre.y, 1 - r + 0.02, "\(spec)")
                }
            }
        }
    }

    func testRenderedObjectHasItsColourAndMoves() {
        let object = SceneObject(kind: .shape(.square), colour: .red, size: .medium, position: [0.3, 0.5], motion: .right, speed: .fast)
        let spec = SceneSpec(background: Background(kind: .plain, colour: .blue), objects: [object], frames: 8)
        let frames = Renderer().render(spec)
        XCTAssertEqual(frames.count, 8)
        func redCentroidX(_ pixels: [UInt8]) -> Float {
            var sum: Float = 0, count: Float = 0
            for i in 0..<(64 * 64) where pixels[i * 3] > 180 && pixels[i * 3 + 2] < 80 {
                sum += Float(i % 64); count += 1
            }
            return sum / count
        }
        let start = redCentroidX(frames[0]), end = redCentroidX(frames[7])
        XCTAssertEqual(start, 0.3 * 64 - 0.5, accuracy: 1)
        XCTAssertEqual(end - start, 0.4 * 64, accuracy: 1.5)
    }

    /// The object mask marks exactly the pixels where a picture differs from its background drawn
    /// alone, and covers some but not most of the canvas.
    func testObjectMaskMarksWhereObjectsChangeThePicture() {
        let renderer = Renderer()
        let sampler = WorldSampler(seed: 5, clipFrames: 1)
        for index in 0..<6 {
            let spec = sampler.image(.train, index: index).spec
            let mask = renderer.objectMask(spec)
            var background = spec
            background.objects = []
            let drawn = renderer.render(spec, progress: 0), empty = renderer.render(background, progress: 0)
            for pixel in 0..<(renderer.side * renderer.side) {
                let differs = (0..<3).contains { drawn[pixel * 3 + $0] != empty[pixel * 3 + $0] }
                XCTAssertEqual(mask[pixel], differs ? 1 : 0)
            }
            let covered = mask.reduce(0, +) / Float(mask.count)
            XCTAssertGreaterThan(covered, 0, "\(spec)")
            XCTAssertLessThan(covered, 0.5, "\(spec)")
        }
    }

    /// In a panning clip the background moves under the objects; the mask compares each frame with
    /// its background panned alike, so every frame marks the object and nothing else (the grid's
    /// lines, shifted by the pan, would be marked against an unpanned background).
    func testObjectMaskFollowsTheCameraPan() {
        let renderer = Renderer()
        let object = SceneObject(kind: .shape(.square), colour: .red, size: .small, position: [0.7, 0.5], motion: .panRight, speed: .fast)
        let spec = SceneSpec(background: Background(kind: .grid, colour: .blue), objects: [object], frames: 8)
        let side = Float(renderer.side)
        for progress: Float in [0, 0.5, 1] {
            let mask = renderer.objectMask(spec, progress: progress)
            XCTAssertGreaterThan(mask.reduce(0, +), 0, "at \(progress)")
            let centre = object.pose(at: progress).centre * side
            // A square's corner lies √2 radii from its centre; a pixel touching it, one more pixel.
            let reach = object.size.radius * side * Float(2).squareRoot() + 1.5
            for pixel in 0..<mask.count where mask[pixel] == 1 {
                let point = SIMD2<Float>(Float(pixel % renderer.side) + 0.5, Float(pixel / renderer.side) + 0.5)
                let offset = point - centre
                XCTAssertLessThanOrEqual((offset * offset).sum().squareRoot(), reach, "pixel \(pixel) at \(progress)")
            }
        }
        // Against the background drawn without objects (so without the pan), the grid's shifted
        // lines would count as objects: the check above tells the two apart.
        var unpanned = spec
        unpanned.objects = []
        let drawn = renderer.render(spec, progress: 1), empty = renderer.render(unpanned, progress: 1)
        var naive = 0
        for pixel in 0..<(renderer.side * renderer.side) where drawn[(3 * pixel)..<(3 * pixel + 3)] != empty[(3 * pixel)..<(3 * pixel + 3)] {
            naive += 1
        }
        let marked: Float = renderer.objectMask(spec, progress: 1).reduce(0, +)
        XCTAssertGreaterThan(Float(naive), 2 * marked)
    }

    func testRingsAreNeverOutlined() {
        // An outlined ring renders exactly as an outlined circle, so the world never draws one.
        let sampler = WorldSampler(seed: 4)
        let samples = (0..<2000).flatMap { [sampler.image(.train, index: $0), sampler.clip(.heldout, index: $0)] }
        let rings = samples.flatMap(\.spec.objects).filter { $0.kind == .shape(.ring) }
        XCTAssertGreaterThan(rings.count, 100)
        XCTAssertFalse(rings.contains { $0.texture == .outlined })
        XCTAssertTrue(samples.flatMap(\.spec.objects).contains { $0.texture == .outlined })
    }

    func testDumpForLooking() throws {
        guard let dir = ProcessInfo.processInfo.environment["WORLD_DUMP"] else { return }
        let sampler = WorldSampler(seed: 11)
        var samples: [WorldSample] = []
        for i in 0..<8 { samples.append(sampler.image(.train, index: i)) }
        for i in 0..<4 { samples.append(sampler.image(.reserved, index: i)) }
        samples += sampler.conceptImages(.cat, count: 2) + sampler.conceptImages(.dog, count: 2) + sampler.conceptImages(.robot, count: 2)
        samples += Style.allCases.flatMap { sampler.styleImages($0, count: 2) }
        samples += [sampler.clip(.train, index: 0), sampler.clip(.reserved, index: 5)]
        var blob: [UInt8] = []
        var captions = ""
        for s in samples {
            let frames = Renderer().render(s.spec)
            for f in frames.prefix(8) { blob += f }
            for _ in frames.count..<8 { blob += frames[0] }
            captions += s.caption + "\n"
        }
        try Data(blob).write(to: URL(fileURLWithPath: dir + "/world.raw"))
        try captions.write(toFile: dir + "/world.txt", atomically: true, encoding: .utf8)
    }
}
