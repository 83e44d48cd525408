import Foundation
import Tensor
import XCTest
@testable import World

final class ProbeTests: XCTestCase {
    static let side = 64

    func frames(_ spec: SceneSpec) throws -> [ProbeFrame] {
        try Renderer().render(spec).map { try ProbeFrame(side: Self.side, pixels: $0) }
    }

    func testSegmentationFindsEachObjectWithItsColourOnEveryBackground() throws {
        let sampler = WorldSampler(seed: 5)
        var found = 0, objects = 0, largestRight = 0, singles = 0
        for index in 0..<300 {
            let spec = sampler.image(.train, index: index).spec
            let segmentation = FrameSegmentation(try frames(spec)[0])
            for object in spec.objects {
                objects += 1
                if segmentation.object(coloured: object.colour) != nil { found += 1 }
            }
            if spec.objects.count == 1 {
                singles += 1
                if segmentation.objects.first?.colour == spec.objects[0].colour { largestRight += 1 }
            }
        }
        // A gray object on a black grid shares the grid lines' colour; little else may fail.
        XCTAssertGreaterThanOrEqual(Double(found) / Double(objects), 0.99)
        XCTAssertGreaterThanOrEqual(Double(largestRight) / Double(singles), 0.99)
    }

    func testBackgroundFitIgnoresGridLinesAndFollowsGradients() throws {
        let object = SceneObject(kind: .shape(.square), colour: .red, size: .medium, position: [0.5, 0.5])
        for kind in BackgroundKind.allCases {
            let spec = SceneSpec(background: Background(kind: kind, colour: .blue), objects: [object])
            let segmentation = FrameSegmentation(try frames(spec)[0])
            XCTAssertEqual(segmentation.objects.count, 1, "\(kind)")
            // A medium square: 1.6 radii a side, 0.18 of 64 pixels a radius, plus the blended edge.
            let expected = Float(1.6 * 0.18 * 64 + 1.5) * Float(1.6 * 0.18 * 64 + 1.5)
            XCTAssertEqual(Float(segmentation.objects[0].area), expected, accuracy: expected * 0.1, "\(kind)")
        }
    }

    func testTrajectoryNamesDirectionsGrowthAndStillness() throws {
        for motion in Motion.pretraining {
            var object = SceneObject(kind: .shape(.circle), colour: .yellow, size: .small, motion: motion, speed: .fast)
            object.position = [0.5, 0.5] - (motion.direction ?? .zero) * 0.2
            let spec = SceneSpec(background: Background(kind: .grid, colour: .purple), objects: [object], frames: 8)
            let segmentations = try frames(spec).map(FrameSegmentation.init)
            let located = segmentations.map { $0.objects.first }
            let trajectory = Trajectory(centroids: located.map { $0?.centroid }, areas: located.map { $0?.area })
            XCTAssertEqual(trajectory.motion, MotionClass(motion), "\(motion)")
            if MotionClass(motion)?.isDirectional == true { XCTAssertEqual(trajectory.speed, .fast, "\(motion)") }
        }
    }

    func testClassifierLearnsShapesAndProbesReadTrueRendersAlmostPerfectly() throws {
        var training = ShapeClassifierTraining()
        training.trainImages = 2000
        training.validationImages = 300
        training.steps = 1200
        let report = try training.run()
        print("shape classifier: train \(report.trainAccuracy) validation \(report.validationAccuracy) degraded \(report.degradedValidationAccuracy) examples \(report.examples)")
        XCTAssertGreaterThanOrEqual(report.validationAccuracy, 0.95)

        let probes = WorldProbes(classifier: ShapeClassifier(network: report.network))
        let sampler = WorldSampler(seed: 9)
        var scores = ProbeScores()
        for index in 0..<120 {
            let sample = index % 2 == 0 ? sampler.image(.heldout, index: index) : sampler.clip(.heldout, index: index)
            _ = probes.score(try frames(sample.spec), spec: sample.spec, into: &scores)
        }
        for (name, score) in scores.rows {
            print("true renders \(name): \(score.correct)/\(score.total)")
        }
        for (name, score) in scores.rows {
            XCTAssertGreaterThanOrEqual(score.accuracy ?? 0, 0.98, name)
        }
    }

    func testClassifierWeightsRoundTripAndBadWeightsAreNamed() throws {
        var generator = RandomGenerator(seed: 1)
        let weights: [String: Tensor] = [
            "hidden.weight": generator.normal([8, ShapeFeatures.count]), "hidden.bias": Tensor(zeros: [8]),
            "output.weight": generator.normal([ObjectShape.allCases.count, 8]), "output.bias": Tensor(zeros: [ObjectShape.allCases.count]),
        ]
        let classifier = try ShapeClassifier(weights: weights)
        XCTAssertEqual(try classifier.weights["hidden.weight"]!.values, weights["hidden.weight"]!.values)
        var broken = weights
        broken["output.bias"] = Tensor(zeros: [3])
        XCTAssertThrowsError(try ShapeClassifier(weights: broken)) { error in
            XCTAssertTrue("\(error)".contains("output.bias"), "\(error)")
        }
        broken = weights
        broken["hidden.weight"] = nil
        XCTAssertThrowsError(try ShapeClassifier(weights: broken)) { error in
            XCTAssertTrue("\(error)".contains("hidden.weight") && "\(error)".contains("missing"), "\(error)")
        }
    }
}
