import XCTest
@testable import World

/// The motion-fidelity metric of `eval motion`: displacement sequences, their correlation, and what
/// it says about world clips read through the probes; the caption reading and prompt choice around it.
final class MotionFidelityTests: XCTestCase {
    private func trajectory(_ points: [SIMD2<Float>?]) -> Trajectory {
        Trajectory(centroids: points, areas: points.map { $0 == nil ? nil : 100 })
    }

    private func clip(_ motion: Motion, speed: Speed = .fast, colour: NamedColour = .red, shape: ObjectShape = .square,
                      background: NamedColour = .blue, position: SIMD2<Float> = [0.3, 0.45]) -> SceneSpec {
        SceneSpec(background: Background(kind: .plain, colour: background),
                  objects: [SceneObject(kind: .shape(shape), colour: colour, size: .medium, position: position, motion: motion, speed: speed)],
                  frames: 8)
    }

    private func probed(_ spec: SceneSpec) throws -> [Float] {
        let renderer = Renderer()
        let frames = try renderer.render(spec).map { try ProbeFrame(side: renderer.side, pixels: $0) }
        return try XCTUnwrap(MotionFidelity.displacements(MotionFidelity.mainObjectTrajectory(frames)), "\(spec)")
    }

    func testDisplacementsAreStepsXsThenYsWithGapsInterpolated() throws {
        let path: [SIMD2<Float>?] = [[0, 0], [0.1, 0.2], nil, [0.3, 0.2]]
        let steps = try XCTUnwrap(MotionFidelity.displacements(trajectory(path)))
        let expected: [Float] = [0.1, 0.1, 0.1, 0.2, 0, 0]
        for (value, wanted) in zip(steps, expected) { XCTAssertEqual(value, wanted, accuracy: 1e-6) }
        XCTAssertEqual(steps.count, 6)
        // Held at the ends; lost in more than half the frames: not followed.
        let held = try XCTUnwrap(MotionFidelity.displacements(trajectory([nil, [0.5, 0.5], [0.6, 0.5], nil])))
        XCTAssertEqual(held.count, 6)
        for (value, wanted) in zip(held, [0, 0.1, 0, 0, 0, 0] as [Float]) { XCTAssertEqual(value, wanted, accuracy: 1e-6) }
        XCTAssertNil(MotionFidelity.displacements(trajectory([nil, nil, [0.6, 0.5], nil])))
        XCTAssertEqual(MotionFidelity.fidelity(trajectory([nil, nil, [0.6, 0.5], nil]), reference: expected), 0)
        XCTAssertEqual(MotionFidelity.fidelity(nil, reference: expected), 0)
    }

    func testCorrelationOfKnownSequences() throws {
        let zigzag: [SIMD2<Float>?] = (0..<8).map { index -> SIMD2<Float>? in
            let x: Float = 0.2 + 0.05 * Float(index)
            let y: Float = index % 2 == 0 ? 0.4 : 0.55
            return SIMD2<Float>(x, y)
        }
        let reference = try XCTUnwrap(MotionFidelity.displacements(trajectory(zigzag)))
        // Identical: 1. Mirrored through a point, every displacement is negated: −1.
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(zigzag), reference: reference), 1, accuracy: 1e-6)
        let mirrored = zigzag.map { $0.map { SIMD2<Float>(1, 1) - $0 } }
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(mirrored), reference: reference), -1, accuracy: 1e-6)
        // A straight path played backwards is the same path travelled the other way: −1 too.
        let right: [SIMD2<Float>?] = (0..<8).map { index -> SIMD2<Float>? in
            let step = Float(index)
            return SIMD2<Float>(0.2 + 0.05 * step, 0.5 + 0.01 * step)
        }
        let rightSteps = try XCTUnwrap(MotionFidelity.displacements(trajectory(right)))
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(Array(right.reversed())), reference: rightSteps), -1, accuracy: 1e-6)
        // Scale does not matter; a still object (no variance) and another length score 0.
        let halfSpeed = zigzag.map { $0.map { $0 * 0.5 } }
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(halfSpeed), reference: reference), 1, accuracy: 1e-6)
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(Array(repeating: [0.5, 0.5], count: 8)), reference: reference), 0)
        XCTAssertEqual(MotionFidelity.fidelity(trajectory(Array(zigzag.prefix(6))), reference: reference), 0)
        XCTAssertNil(MotionFidelity.correlation([1, 2], [1, 2, 3]))
        XCTAssertEqual(try XCTUnwrap(MotionFidelity.correlation([1, 2, 3, 4], [2, 4, 6, 8.5])), 0.998, accuracy: 0.002)
        // The reference of several clips is their mean.
        XCTAssertEqual(MotionFidelity.reference([[1, 2], [3, 6]]), [2, 4])
        XCTAssertNil(MotionFidelity.reference([[1, 2], [3]]))
        XCTAssertNil(MotionFidelity.reference([]))
    }

    /// World clips read through the probes: another zigzag (another object, colour, background, speed
    /// and place) follows the reference; other motions do not.
    func testWorldClipsOfTheSameMotionAgreeAndOtherMotionsDoNot() throws {
        let training = [clip(.zigzag, colour: .yellow, shape: .circle, background: .brown, position: [0.28, 0.41]),
                        clip(.zigzag, colour: .white, shape: .hexagon, background: .black, position: [0.18, 0.53]),
                        clip(.zigzag, speed: .slow, colour: .green, shape: .ring, background: .purple, position: [0.18, 0.4])]
        let reference = try XCTUnwrap(MotionFidelity.reference(try training.map(probed)))
        for spec in training {
            XCTAssertGreaterThan(try XCTUnwrap(MotionFidelity.correlation(probed(spec), reference)), 0.95, "\(spec)")
        }
        let sameMotion = try probed(clip(.zigzag, colour: .cyan, shape: .star, background: .gray, position: [0.25, 0.5]))
        let same = try XCTUnwrap(MotionFidelity.correlation(sameMotion, reference))
        XCTAssertGreaterThan(same, 0.95)
        let others: [(Motion, SIMD2<Float>, Float)] = [(.orbit, [0.5, 0.4], 0.3), (.left, [0.7, 0.4], -0.2), (.down, [0.4, 0.3], 0),
                                                       (.right, [0.3, 0.4], 0.6), (.still, [0.5, 0.5], 0.3)]
        for (motion, position, below) in others {
            let other = MotionFidelity.correlation(try probed(clip(motion, colour: .cyan, shape: .star, background: .gray,
                                                                   position: position)), reference) ?? 0
            XCTAssertLessThan(other, below, "\(motion)")
            XCTAssertLessThan(other, same - 0.3, "\(motion)")
        }
    }

    func testCaptionReadingAndPromptsUnlikeTheClips() throws {
        let reading = CaptionReading("a medium green ring zigzagging slowly on a purple gradient background")
        XCTAssertEqual(reading, CaptionReading(colour: .green, shape: .ring, size: .medium, background: .purple, motionPhrase: "zigzagging slowly"))
        let dotted = CaptionReading("a small yellow dotted circle moving up and left quickly on an orange background in neon style")
        XCTAssertEqual(dotted.colour, .yellow)
        XCTAssertEqual(dotted.shape, .circle)
        XCTAssertEqual(dotted.background, .orange)
        XCTAssertEqual(dotted.motionPhrase, "moving up and left quickly")
        XCTAssertEqual(CaptionReading("a ball zigzagging"), CaptionReading(colour: nil, shape: nil, size: nil, background: nil, motionPhrase: nil))

        let used: Set<NamedColour> = [.yellow, .white, .green, .brown, .black, .purple]
        let prompts = try MotionEvaluationPrompt.make(count: 12, motionPhrase: "zigzagging quickly", size: .medium,
                                                      avoidingColours: used, avoidingShapes: [.circle, .hexagon, .ring])
        XCTAssertEqual(prompts.count, 12)
        XCTAssertEqual(prompts[0].caption, "a medium red square zigzagging quickly on a blue background")
        for prompt in prompts {
            XCTAssertFalse(used.contains(prompt.colour) || used.contains(prompt.background), prompt.caption)
            XCTAssertNotEqual(prompt.colour, prompt.background, prompt.caption)
            XCTAssertFalse([ObjectShape.circle, .hexagon, .ring].contains(prompt.shape), prompt.caption)
            XCTAssertEqual(CaptionReading(prompt.caption).motionPhrase, "zigzagging quickly")
        }
        XCTAssertEqual(Set(prompts.map { "\($0.colour) \($0.background)" }).count, 12, "pairs vary")
        XCTAssertThrowsError(try MotionEvaluationPrompt.make(count: 1, motionPhrase: "x", size: .small,
                                                             avoidingColours: Set(NamedColour.allCases.dropLast()), avoidingShapes: [])) {
            XCTAssertTrue("\($0)".contains("fewer than two colours"), "\($0)")
        }
        XCTAssertThrowsError(try MotionEvaluationPrompt.make(count: 1, motionPhrase: "x", size: .small, avoidingColours: [],
                                                             avoidingShapes: Set(ObjectShape.allCases))) {
            XCTAssertTrue("\($0)".contains("every shape"), "\($0)")
        }
    }

    /// With `core`, prompts use the core world's colours, shapes and background colours only,
    /// never the clips' colours or shapes, and never an object on its own colour.
    func testCorePromptsStayInTheCoreVocabulary() throws {
        let avoidingColours: Set<NamedColour> = [.green, .gray, .red, .white, .purple]
        let avoidingShapes: Set<ObjectShape> = [.heart, .triangle, .circle]
        let prompts = try MotionEvaluationPrompt.make(count: 12, motionPhrase: "zigzagging quickly", size: .large,
                                                      avoidingColours: avoidingColours, avoidingShapes: avoidingShapes, core: true)
        XCTAssertEqual(prompts.count, 12)
        for prompt in prompts {
            XCTAssertTrue(CoreWorld.colours.contains(prompt.colour) && !avoidingColours.contains(prompt.colour), prompt.caption)
            XCTAssertTrue(CoreWorld.shapes.contains(prompt.shape) && !avoidingShapes.contains(prompt.shape), prompt.caption)
            XCTAssertTrue(CoreWorld.backgroundColours.contains(prompt.background) && !avoidingColours.contains(prompt.background), prompt.caption)
            XCTAssertNotEqual(prompt.colour, prompt.background, prompt.caption)
            XCTAssertTrue(prompt.caption.hasPrefix("a large \(prompt.colour.rawValue) \(prompt.shape.rawValue) zigzagging quickly on a"), prompt.caption)
        }
        XCTAssertGreaterThan(Set(prompts.map(\.colour)).count, 2)
        XCTAssertGreaterThan(Set(prompts.map(\.background)).count, 1)
        // The full world's prompts are as before: a shape outside the core appears.
        let full = try MotionEvaluationPrompt.make(count: 12, motionPhrase: "zigzagging quickly", size: .large,
                                                   avoidingColours: avoidingColours, avoidingShapes: avoidingShapes)
        XCTAssertTrue(full.contains { !CoreWorld.shapes.contains($0.shape) })
    }
}
