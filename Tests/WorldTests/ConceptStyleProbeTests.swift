import Tensor
import XCTest
@testable import World

/// The concept and style probes: trained briefly on world renders, they must read the world's own
/// drawings right, and their weight files must be checked like the shape classifier's.
final class ConceptStyleProbeTests: XCTestCase {
    func testConceptProbeNamesTheConceptInEachHalfAndNothingInAnEmptyOne() throws {
        var training = ConceptProbeTraining()
        training.trainImages = 800
        training.validationImages = 200
        training.steps = 1500
        let report = try training.run()
        print("concept probe: train \(report.trainAccuracy) held-out \(report.validationAccuracy) roughened \(report.degradedValidationAccuracy)")
        XCTAssertGreaterThanOrEqual(report.validationAccuracy, 0.9)
        let probe = ConceptProbe(network: report.network)

        let renderer = Renderer()
        for (left, right) in [(Concept.cat, Concept.dog), (.robot, .cat), (.dog, .robot)] {
            let spec = SceneSpec(background: Background(kind: .plain, colour: .blue), objects: [
                SceneObject(kind: .concept(left), colour: .orange, size: .medium, position: [0.25, 0.5]),
                SceneObject(kind: .concept(right), colour: .orange, size: .medium, position: [0.75, 0.45]),
            ])
            let frame = try ProbeFrame(side: renderer.side, pixels: renderer.render(spec)[0])
            XCTAssertEqual(probe.read(frame, box: [0, 0, 0.5, 1]), .concept(left))
            XCTAssertEqual(probe.read(frame, box: [0.5, 0, 1, 1]), .concept(right))
        }
        // A plain shape is "other"; an empty half is "nothing".
        let spec = SceneSpec(background: Background(kind: .plain, colour: .green), objects: [
            SceneObject(kind: .shape(.circle), colour: .orange, size: .medium, position: [0.25, 0.5]),
        ])
        let frame = try ProbeFrame(side: renderer.side, pixels: renderer.render(spec)[0])
        XCTAssertEqual(probe.read(frame, box: [0, 0, 0.5, 1]), .other)
        XCTAssertEqual(probe.read(frame, box: [0.5, 0, 1, 1]), .nothing)
    }

    func testStyleProbeNamesEachStyle() throws {
        var training = StyleProbeTraining()
        training.trainImages = 800
        training.validationImages = 200
        training.steps = 1500
        let report = try training.run()
        print("style probe: train \(report.trainAccuracy) held-out \(report.validationAccuracy) roughened \(report.degradedValidationAccuracy)")
        XCTAssertGreaterThanOrEqual(report.validationAccuracy, 0.9)
        // Every true label is mostly read as itself on roughened renders too.
        for (label, row) in report.degradedConfusion.enumerated() {
            XCTAssertGreaterThan(Float(row[label]) / Float(max(row.reduce(0, +), 1)), 0.7, StyleProbe.labels[label])
        }
        let probe = StyleProbe(network: report.network)
        let renderer = Renderer()
        let sampler = WorldSampler(seed: 5)
        for style in Style.allCases {
            let sample = sampler.styleImages(style, count: 1)[0]
            XCTAssertEqual(probe.read(try ProbeFrame(side: renderer.side, pixels: renderer.render(sample.spec)[0])), style)
        }
    }

    func testClassifierWeightsAreCheckedAndNamed() throws {
        var generator = RandomGenerator(seed: 2)
        var weights: [String: Tensor] = [
            "hidden.weight": generator.normal([4, ConceptFeatures.count]), "hidden.bias": Tensor(zeros: [4]),
            "output.weight": generator.normal([ConceptProbe.labels.count, 4]), "output.bias": Tensor(zeros: [ConceptProbe.labels.count]),
        ]
        XCTAssertNoThrow(try ConceptProbe(weights: weights))
        // A shape classifier's output layer (10 shapes) is not a concept classifier's.
        weights["output.weight"] = generator.normal([ObjectShape.allCases.count, 4])
        XCTAssertThrowsError(try ConceptProbe(weights: weights)) { error in
            XCTAssertTrue("\(error)".contains("concept classifier weights: output.weight: expected [4, 4]"), "\(error)")
        }
        XCTAssertThrowsError(try StyleProbe(weights: weights)) { error in
            XCTAssertTrue("\(error)".contains("style classifier weights: hidden.weight"), "\(error)")
        }
        XCTAssertThrowsError(try MLPClassifierTraining().train([], name: "style classifier", labels: ["a"], featureCount: 1)) { error in
            XCTAssertTrue("\(error)".contains("no training examples"), "\(error)")
        }
    }
}
