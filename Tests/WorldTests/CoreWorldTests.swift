import Foundation
import XCTest
@testable import World

/// The core world (`WorldSampler(distribution: .core)`): the base's pretraining distribution.
final class CoreWorldTests: XCTestCase {
    /// Train and heldout samples of the core world: images and clips of 8 and 16 frames.
    static func coreSamples(seed: UInt64, count: Int) -> [WorldSample] {
        [8, 16].flatMap { frames in
            let sampler = WorldSampler(seed: seed, clipFrames: frames, distribution: .core)
            return [Split.train, .heldout].flatMap { split in
                (0..<count).flatMap { [sampler.image(split, index: $0), sampler.clip(split, index: $0)] }
            }
        }
    }

    func testCoreSamplesHoldOneCoreObjectOnAPlainBackgroundOfAnotherColour() {
        let samples = Self.coreSamples(seed: 3, count: 400)
        var seen = (shapes: Set<ObjectShape>(), colours: Set<NamedColour>(), sizes: Set<ObjectSize>(),
                    backgrounds: Set<NamedColour>(), motions: Set<Motion>())
        for sample in samples {
            let spec = sample.spec
            XCTAssertEqual(spec.objects.count, 1, sample.caption)
            XCTAssertNil(spec.style, sample.caption)
            XCTAssertEqual(spec.background.kind, .plain, sample.caption)
            XCTAssertTrue(CoreWorld.backgroundColours.contains(spec.background.colour), sample.caption)
            guard let object = spec.objects.first, case let .shape(shape) = object.kind else { return XCTFail("not a shape: \(sample.caption)") }
            XCTAssertTrue(CoreWorld.shapes.contains(shape), sample.caption)
            XCTAssertTrue(CoreWorld.colours.contains(object.colour), sample.caption)
            XCTAssertNotEqual(spec.background.colour, object.colour, sample.caption)
            XCTAssertTrue([ObjectSize.medium, .large].contains(object.size), sample.caption)
            XCTAssertEqual(object.texture, .plain, sample.caption)
            XCTAssertEqual(object.rotation, 0, sample.caption)
            if spec.frames == 1 {
                XCTAssertEqual(object.motion, .still, sample.caption)
            } else {
                XCTAssertTrue(CoreWorld.motions.contains(object.motion), sample.caption)
                XCTAssertEqual(object.speed, CoreWorld.speed, sample.caption)
            }
            XCTAssertEqual(sample.caption, Captions.caption(spec))
            for word in sample.caption.split(separator: " ") {
                XCTAssertTrue(WorldVocabulary.words.contains(String(word)), String(word))
            }
            seen.shapes.insert(shape); seen.colours.insert(object.colour); seen.sizes.insert(object.size)
            seen.backgrounds.insert(spec.background.colour); seen.motions.insert(object.motion)
        }
        XCTAssertEqual(seen.shapes, Set(CoreWorld.shapes))
        XCTAssertEqual(seen.colours, Set(CoreWorld.colours))
        XCTAssertEqual(seen.sizes, [.medium, .large])
        XCTAssertEqual(seen.backgrounds, Set(CoreWorld.backgroundColours))
        XCTAssertEqual(seen.motions, Set(CoreWorld.motions))
        XCTAssertEqual(CoreWorld.shapes.map(\.rawValue), ["circle", "square", "triangle", "star", "heart", "cross"])
        XCTAssertEqual(CoreWorld.colours.map(\.rawValue), ["red", "orange", "yellow", "green", "blue", "purple", "pink", "white"])
        XCTAssertEqual(CoreWorld.backgroundColours.map(\.rawValue), ["black", "gray", "white", "blue", "green", "yellow"])
    }

    /// Moving objects cross at least a third of the frame in an 8-frame clip (0.40), straight along
    /// their direction, and the whole object stays inside the frame at every frame, at 8 and 16 frames.
    func testCoreClipsCrossAThirdOfTheFrameAndStayInside() {
        for frames in [8, 16] {
            let sampler = WorldSampler(seed: 9, clipFrames: frames, distribution: .core)
            for index in 0..<600 {
                for split in [Split.train, .heldout] {
                    let spec = sampler.clip(split, index: index).spec, object = spec.objects[0]
                    let start = object.pose(at: 0).centre, end = object.pose(at: 1).centre
                    if let direction = object.motion.direction {
                        XCTAssertGreaterThanOrEqual(((end - start) * direction).sum(), 0.4 - 1e-5, "\(spec)")
                        XCTAssertEqual(((end - start) * SIMD2(direction.y, direction.x)).sum(), 0, accuracy: 1e-6, "\(spec)")
                        if frames == 8 {
                            let eighth = object.pose(at: spec.progress(ofFrame: 7)).centre
                            XCTAssertGreaterThanOrEqual(((eighth - start) * direction).sum(), 1.0 / 3, "\(spec)")
                        }
                    } else {
                        XCTAssertEqual(object.motion, .still)
                        XCTAssertEqual(start, end)
                    }
                    for frame in 0..<frames {
                        let pose = object.pose(at: spec.progress(ofFrame: frame))
                        XCTAssertEqual(pose.scale, 1)
                        // Every shape fits its radius's disc.
                        let r = object.size.radius
                        XCTAssertGreaterThanOrEqual(pose.centre.x - r, -1e-5, "\(spec) frame \(frame)")
                        XCTAssertLessThanOrEqual(pose.centre.x + r, 1 + 1e-5, "\(spec) frame \(frame)")
                        XCTAssertGreaterThanOrEqual(pose.centre.y - r, -1e-5, "\(spec) frame \(frame)")
                        XCTAssertLessThanOrEqual(pose.centre.y + r, 1 + 1e-5, "\(spec) frame \(frame)")
                    }
                }
            }
        }
    }

    /// Rendered: the object keeps its whole area at every frame (nothing is cut off at an edge) and
    /// its centroid moves at least a third of the frame's 64 pixels over 8 frames. Area and centroid
    /// weigh each pixel by how much of the object covers it, read from its colour between the
    /// background's and the object's; 3×3 supersampling puts an edge within a sixth of a pixel, so
    /// the area of a shape varies by a few percent with where it falls between pixels.
    func testRenderedCoreClipsMoveAThirdOfTheFrameWithTheWholeObject() {
        let renderer = Renderer(), side = Float(renderer.side)
        func coverage(_ pixels: [UInt8], _ spec: SceneSpec) -> (area: Float, centroid: SIMD2<Float>) {
            let background = spec.background.colour.rgb * 255, object = spec.objects[0].colour.rgb * 255
            let span = object - background
            var area: Float = 0, sum = SIMD2<Float>(repeating: 0)
            for pixel in 0..<(renderer.side * renderer.side) {
                let value = SIMD3(Float(pixels[3 * pixel]), Float(pixels[3 * pixel + 1]), Float(pixels[3 * pixel + 2]))
                let weight = Swift.min(Swift.max(((value - background) * span).sum() / (span * span).sum(), 0), 1)
                area += weight
                sum += weight * SIMD2(Float(pixel % renderer.side) + 0.5, Float(pixel / renderer.side) + 0.5)
            }
            return (area, sum / area)
        }
        let sampler = WorldSampler(seed: 21, distribution: .core)
        var moving = 0
        for index in 0..<24 {
            let spec = sampler.clip(.train, index: index).spec
            var centred = spec
            centred.objects[0].position = [0.5, 0.5]
            centred.objects[0].motion = .still
            let fullArea = coverage(renderer.render(centred, progress: 0), centred).area
            let frames = renderer.render(spec).map { coverage($0, spec) }
            for (frame, measured) in frames.enumerated() {
                XCTAssertEqual(measured.area, fullArea, accuracy: fullArea * 0.05, "\(spec) frame \(frame)")
            }
            let shift = frames[7].centroid - frames[0].centroid
            if let direction = spec.objects[0].motion.direction {
                moving += 1
                XCTAssertGreaterThanOrEqual((shift * direction).sum(), side / 3, "\(spec)")
                XCTAssertEqual((shift * direction).sum(), side * 0.4, accuracy: 0.7, "\(spec)")
            } else {
                XCTAssertLessThan((shift * shift).sum().squareRoot(), 0.01, "\(spec)")
            }
        }
        XCTAssertGreaterThan(moving, 10)
    }

    /// Every core shape is at least a quarter of the frame wide and high at medium size (the smaller
    /// one), and no two core shapes draw the same silhouette.
    func testCoreShapesAreAQuarterOfTheFrameAndDistinct() {
        let renderer = Renderer()
        var masks: [[Float]] = []
        for shape in CoreWorld.shapes {
            let spec = SceneSpec(background: Background(kind: .plain, colour: .black),
                                 objects: [SceneObject(kind: .shape(shape), colour: .white, size: .medium)])
            let mask = renderer.objectMask(spec)
            let columns = Set((0..<mask.count).filter { mask[$0] > 0 }.map { $0 % renderer.side })
            let rows = Set((0..<mask.count).filter { mask[$0] > 0 }.map { $0 / renderer.side })
            XCTAssertGreaterThanOrEqual(columns.count, renderer.side / 4, "\(shape) width")
            XCTAssertGreaterThanOrEqual(rows.count, renderer.side / 4, "\(shape) height")
            masks.append(mask)
        }
        XCTAssertEqual(ObjectSize.medium.radius * 2 * 0.8, 0.288, accuracy: 1e-6)  // a square's side, the narrowest
        for a in 0..<masks.count {
            for b in (a + 1)..<masks.count {
                let differing = zip(masks[a], masks[b]).filter { $0 != $1 }.count
                XCTAssertGreaterThan(differing, 60, "\(CoreWorld.shapes[a]) vs \(CoreWorld.shapes[b])")
            }
        }
    }

    /// The core held-out pairs are the full world's among the core's colours and shapes; the core
    /// train split never draws them and the core heldout split draws nothing else.
    func testCoreHeldOutPairsAreNeverTrainedAndAreAllTheHeldOutSplitDraws() {
        let pairs = CoreWorld.heldOutPairs
        XCTAssertEqual(pairs.map { "\($0.0) \($0.1)" },
                       ["green circle", "red square", "pink square", "purple triangle", "orange star",
                        "blue cross", "white cross", "red heart", "pink heart"])
        for shape in CoreWorld.shapes {
            // One or two held out per shape; each shape still trains with six or seven colours.
            XCTAssertTrue((1...2).contains(pairs.filter { $0.1 == shape }.count), "\(shape)")
        }
        for colour in CoreWorld.colours {
            // No colour held out with more than two shapes: each still trains with four or more.
            XCTAssertLessThanOrEqual(pairs.filter { $0.0 == colour }.count, 2, "\(colour)")
        }
        for shape in CoreWorld.shapes {
            for colour in CoreWorld.colours {
                // Both worlds hold out the same pairs where they overlap.
                XCTAssertEqual(CoreWorld.isHeldOut(colour, shape), WorldSampler.isHeldOut(colour, shape), "\(colour) \(shape)")
                XCTAssertEqual(CoreWorld.isHeldOut(colour, shape), pairs.contains { $0 == (colour, shape) })
            }
        }
        XCTAssertFalse(CoreWorld.isHeldOut(.cyan, .ring))
        var trained = Set<String>(), evaluated = Set<String>()
        for sample in Self.coreSamples(seed: 5, count: 500) {
            let object = sample.spec.objects[0]
            guard case let .shape(shape) = object.kind else { return XCTFail(sample.caption) }
            let isHeldOut = CoreWorld.isHeldOut(object.colour, shape)
            XCTAssertEqual(isHeldOut, sample.split == .heldout, "\(sample.split): \(sample.caption)")
            if sample.split == .train { trained.insert("\(object.colour) \(shape)") } else { evaluated.insert("\(object.colour) \(shape)") }
        }
        XCTAssertEqual(trained.count, 6 * 8 - pairs.count)
        XCTAssertEqual(evaluated.count, pairs.count)
    }

    func testCoreSamplesAreDeterministicAndDrawnFromTheirOwnStreams() {
        let sampler = WorldSampler(seed: 7, distribution: .core)
        let a = sampler.clip(.train, index: 3)
        _ = sampler.clip(.train, index: 4)
        XCTAssertEqual(WorldSampler(seed: 7, distribution: .core).clip(.train, index: 3), a)
        XCTAssertEqual(Renderer().render(a.spec), Renderer().render(sampler.clip(.train, index: 3).spec))
        XCTAssertNotEqual(sampler.clip(.train, index: 4), a)
        XCTAssertNotEqual(WorldSampler(seed: 8, distribution: .core).clip(.train, index: 3), a)
        XCTAssertEqual(sampler.image(.heldout, index: 11), WorldSampler(seed: 7, distribution: .core).image(.heldout, index: 11))
        // The core world's first draws are not the full world's reinterpreted.
        let full = WorldSampler(seed: 7)
        let samePositions = (0..<50).filter { sampler.image(.train, index: $0).spec.objects[0].position == full.image(.train, index: $0).spec.objects[0].position }
        XCTAssertTrue(samePositions.isEmpty)
        // The reserved split is the full world's under both distributions.
        for index in 0..<20 {
            XCTAssertEqual(sampler.clip(.reserved, index: index), full.clip(.reserved, index: index))
            XCTAssertEqual(sampler.image(.reserved, index: index), full.image(.reserved, index: index))
        }
    }

    func testCoreCaptionsFollowTheWorldsGrammar() {
        let sampler = WorldSampler(seed: 0, distribution: .core)
        let spec = SceneSpec(background: Background(kind: .plain, colour: .blue),
                             objects: [SceneObject(kind: .shape(.star), colour: .red, size: .large, motion: .left, speed: CoreWorld.speed)],
                             frames: 8)
        XCTAssertEqual(Captions.caption(spec), "a large red star moving left quickly on a blue background")
        var still = spec
        still.objects[0].motion = .still
        XCTAssertEqual(Captions.caption(still), "a large red star staying still on a blue background")
        still.frames = 1
        XCTAssertEqual(Captions.caption(still), "a large red star on a blue background")
        // Recorded from the sampler: an image, a clip and a held-out clip.
        XCTAssertEqual(sampler.image(.train, index: 0).caption, Self.recorded[0])
        XCTAssertEqual(sampler.clip(.train, index: 0).caption, Self.recorded[1])
        XCTAssertEqual(sampler.clip(.heldout, index: 0).caption, Self.recorded[2])
    }

    static let recorded = ["a large orange square on a yellow background",
                            "a medium yellow star staying still on a gray background",
                            "a medium orange star moving right quickly on a gray background"]

    // MARK: The full world is unchanged

    /// FNV-1a over every field of the first `count` samples of each split (images and clips) and of
    /// the customization sets: captions, positions (bit patterns), sizes, textures, motions, speeds,
    /// backgrounds, styles.
    static func digest(_ sampler: WorldSampler, count: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ text: String) { for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 } }
        var samples = Split.allCases.flatMap { split in
            (0..<count).flatMap { [sampler.image(split, index: $0), sampler.clip(split, index: $0)] }
        }
        samples += Concept.allCases.flatMap { sampler.conceptImages($0, count: 8) }
        samples += Style.allCases.flatMap { sampler.styleImages($0, count: 8) }
        samples += Motion.allCases.flatMap { sampler.motionClips($0, count: 8) }
        for sample in samples {
            mix(sample.caption + "|" + sample.split.rawValue + "|\(sample.spec.frames)|" + sample.spec.background.kind.rawValue
                + sample.spec.background.colour.rawValue + "|" + (sample.spec.style?.rawValue ?? "-"))
            for object in sample.spec.objects {
                mix("\(object.kind.word) \(object.colour.rawValue) \(object.size.rawValue) \(object.texture.rawValue) "
                    + "\(object.motion.rawValue) \(object.speed.rawValue) \(object.position.x.bitPattern) "
                    + "\(object.position.y.bitPattern) \(object.rotation.bitPattern);")
            }
        }
        return hash
    }

    /// The full world (the default) draws exactly what it drew before the core world was added:
    /// digests recorded from the sampler before the change.
    func testFullWorldDrawsWhatItDrewBefore() {
        XCTAssertEqual(WorldSampler(seed: 0).distribution, .full)
        XCTAssertEqual(String(Self.digest(WorldSampler(seed: 0), count: 300), radix: 16), "2b2b718f001efd81")
        XCTAssertEqual(String(Self.digest(WorldSampler(seed: 7, clipFrames: 16), count: 300), radix: 16), "46617b5ce6915b30")
        XCTAssertEqual(String(Self.digest(WorldSampler(seed: 123, distribution: .full), count: 300), radix: 16), "c83da84e348f7a40")
        let sampler = WorldSampler(seed: 0)
        XCTAssertEqual(sampler.image(.train, index: 1).caption, "a large gray star on an orange background")
        XCTAssertEqual(sampler.clip(.train, index: 1).caption, "a medium white outlined circle growing on an orange background")
        XCTAssertEqual(sampler.clip(.heldout, index: 2).caption, "a small blue dotted cross shrinking on a gray background")
    }

    /// The tied-start variant draws the core world's scenes, except that a moving object starts
    /// at the far side from its direction: a clip moving right starts in the left part of the
    /// frame and its whole path stays inside; still clips and images are the core world's.
    func testTiedStartBeginsOnTheSideAMovingObjectLeaves() {
        let core = WorldSampler(seed: 5, distribution: .core), tied = WorldSampler(seed: 5, distribution: .coreTiedStart)
        var moving = 0
        for index in 0..<300 {
            let plain = core.clip(.train, index: index), variant = tied.clip(.train, index: index)
            XCTAssertEqual(plain.caption, variant.caption)
            XCTAssertEqual(core.image(.heldout, index: index).spec.objects[0].position, tied.image(.heldout, index: index).spec.objects[0].position)
            let object = variant.spec.objects[0]
            guard let direction = object.motion.direction else {
                XCTAssertEqual(object.position, plain.spec.objects[0].position, variant.caption)
                continue
            }
            moving += 1
            let start = object.pose(at: 0).centre, end = object.pose(at: 1).centre
            for point in [start, end] {
                XCTAssertGreaterThanOrEqual(point.min() - object.size.radius, -1e-5, variant.caption)
                XCTAssertLessThanOrEqual(point.max() + object.size.radius, 1 + 1e-5, variant.caption)
            }
            // The start is within 0.03 of the frame of the edge it moves away from.
            for axis in 0..<2 where direction[axis] != 0 {
                let edgeDistance = direction[axis] > 0 ? start[axis] - object.size.radius : 1 - start[axis] - object.size.radius
                XCTAssertLessThanOrEqual(edgeDistance, 0.03 + 1e-5, variant.caption)
            }
        }
        XCTAssertGreaterThan(moving, 200)
    }

    /// A focus narrows the train split to its lists (tied starts kept) and leaves the heldout split
    /// as it was; without one the sampler draws what it drew before; lists outside the core world,
    /// empty ones, and lists that leave only held-out pairs or no other background are refused.
    func testAFocusDrawsTheTrainSplitFromItsListsAlone() throws {
        var focused = WorldSampler(seed: 2, distribution: .coreTiedStart)
        focused.focus = try CoreFocus(shapes: ["circle"], colours: ["red"], backgrounds: ["black"], sizes: ["large"], motions: ["left", "right"])
        let whole = WorldSampler(seed: 2, distribution: .coreTiedStart)
        var motions = Set<Motion>()
        for index in 0..<200 {
            let clip = focused.clip(.train, index: index), object = clip.spec.objects[0]
            XCTAssertEqual(clip.caption, "a large red circle moving \(object.motion.rawValue) quickly on a black background")
            motions.insert(object.motion)
            let edgeDistance = object.motion == .right ? object.pose(at: 0).centre.x - object.size.radius
                : 1 - object.pose(at: 0).centre.x - object.size.radius
            XCTAssertLessThanOrEqual(edgeDistance, 0.03 + 1e-5, "a tied start")
            XCTAssertEqual(focused.clip(.heldout, index: index), whole.clip(.heldout, index: index))
        }
        XCTAssertEqual(motions, [.left, .right])
        focused.focus = nil
        XCTAssertEqual((0..<50).map { focused.clip(.train, index: $0) }, (0..<50).map { whole.clip(.train, index: $0) })

        XCTAssertThrowsError(try CoreFocus(shapes: ["cat"])) {
            XCTAssertEqual($0 as? CoreFocus.Problem, .notInCoreWorld(key: "shapes", word: "cat", allowed: CoreWorld.shapes.map(\.rawValue)))
        }
        XCTAssertThrowsError(try CoreFocus(motions: [])) { guard case .empty(key: "motions", _)? = $0 as? CoreFocus.Problem else { return XCTFail("\($0)") } }
        XCTAssertThrowsError(try CoreFocus(shapes: ["circle"], colours: ["green"])) {
            guard case .empty(key: "shapes", _)? = $0 as? CoreFocus.Problem else { return XCTFail("\($0)") }
        }
        XCTAssertThrowsError(try CoreFocus(colours: ["blue"], backgrounds: ["blue"])) {
            guard case .empty(key: "backgrounds", _)? = $0 as? CoreFocus.Problem else { return XCTFail("\($0)") }
        }
    }

    /// A plain background's mask compares the frame with the background's own bytes instead of
    /// drawing it again: the same mask as the frame drawn without its objects, for core and full
    /// world scenes (plain, gradient, grid, panned, styled), still and moving.
    func testObjectMaskOfAPlainBackgroundEqualsTheMaskOfTheEmptyFrame() {
        let renderer = Renderer()
        let core = WorldSampler(seed: 9, distribution: .core), full = WorldSampler(seed: 9)
        var samples: [WorldSample] = []
        for index in 0..<60 {
            samples.append(core.clip(.train, index: index))
            samples.append(core.image(.heldout, index: index))
            samples.append(full.clip(.train, index: index))
        }
        for style in Style.allCases { samples += full.styleImages(style, count: 2) }
        var uniform = 0
        for sample in samples {
            let spec = sample.spec
            if renderer.uniformBackgroundPixel(spec) != nil { uniform += 1 }
            for progress: Float in [0, 0.6] {
                let drawn = renderer.render(spec, progress: progress)
                let empty = renderer.render(spec, progress: progress, drawingObjects: false)
                var expected = [Float](repeating: 0, count: renderer.side * renderer.side)
                for pixel in expected.indices {
                    let differs = drawn[pixel * 3] != empty[pixel * 3] || drawn[pixel * 3 + 1] != empty[pixel * 3 + 1]
                        || drawn[pixel * 3 + 2] != empty[pixel * 3 + 2]
                    if differs { expected[pixel] = 1 }
                }
                XCTAssertEqual(renderer.objectMask(spec, progress: progress, drawn: drawn), expected, sample.caption)
            }
        }
        XCTAssertGreaterThan(uniform, 100)
        XCTAssertLessThan(uniform, samples.count)
    }
}
