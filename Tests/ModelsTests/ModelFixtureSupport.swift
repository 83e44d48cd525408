import Checkpoints
import Foundation
import Models
import Tensor
import XCTest

/// Fixture files written by Tests/Fixtures/fixtures_unet_vae.py (diffusers, float32).
enum ModelFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A two-block UNet3DConditionModel with random weights, and `batch` clips of 3 frames at 4×4
    /// with their text states (2 tokens of 8).
    static func tinyUNet3D(batch: Int) throws -> (UNet3DConditionModel, Tensor, Tensor) {
        let model = try UNet3DConditionModel(config: UNet3DConfig(blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4,
                                                                  crossAttentionDim: 8, attentionHeadDim: 4))
        randomise(model, seed: 11)
        var generator = RandomGenerator(seed: 5)
        return (model, generator.normal([batch, 4, 3, 4, 4]), generator.normal([batch, 2, 8]))
    }

    static func path(_ folder: String, _ file: String) -> String {
        root.appendingPathComponent(folder).appendingPathComponent(file).path
    }

    static func tensor(_ file: SafeTensorsFile, _ name: String) throws -> Tensor {
        let entry = try file.entry(name)
        return try Tensor(shape: entry.shape, values: file.floats(name))
    }

    /// Max |actual − expected| ≤ 1e-4 · max |expected|, with matching shapes.
    static func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
        guard actual.shape == expected.shape else { return }
        let a = actual.values, e = expected.values
        let scale = e.map(abs).max() ?? 0
        let error = zip(a, e).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(scale, 0.1, "\(what): reference output is trivially small", file: file, line: line)
        XCTAssertLessThanOrEqual(error, 1e-4 * scale, "\(what): max abs error \(error) vs max |output| \(scale)", file: file, line: line)
    }

    /// Backward parity against a gradients.safetensors fixture: `output` must already be computed
    /// from `inputs` (each a leaf with requiresGrad) and `model`; back-propagates the fixture's
    /// cotangent and compares the gradient of every input and every parameter (`grad.<name>`)
    /// within 1e-3 of each tensor's largest reference value (or of 1e-3 · the largest overall).
    static func assertGradientsMatch(_ model: Module, output: Tensor, inputs: [(String, Tensor)], file gradients: SafeTensorsFile,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        try output.backward(gradient: tensor(gradients, "cotangent"))
        let pairs = inputs + model.namedParameters()
        let expected = try pairs.map { try tensor(gradients, "grad." + $0.0) }
        let globalScale = expected.map { $0.values.map(abs).max() ?? 0 }.max() ?? 0
        XCTAssertGreaterThan(globalScale, 0.1, file: file, line: line)
        XCTAssertEqual(pairs.count, gradients.names.filter { $0.hasPrefix("grad.") }.count,
                       "every parameter has a reference gradient", file: file, line: line)
        for ((name, tensor), reference) in zip(pairs, expected) {
            guard let gradient = tensor.grad else {
                XCTFail("no gradient for \(name)", file: file, line: line)
                continue
            }
            XCTAssertEqual(gradient.shape, reference.shape, name, file: file, line: line)
            let scale = max(reference.values.map(abs).max() ?? 0, 1e-3 * globalScale)
            let error = zip(gradient.values, reference.values).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, 1e-3 * scale, "\(name): max abs error \(error) against max |gradient| \(scale)",
                                     file: file, line: line)
        }
    }

    /// Fills every parameter with small deterministic pseudo-random values (for shape-only runs).
    static func randomise(_ model: Module, seed: UInt64) {
        var generator = RandomGenerator(seed: seed)
        for (_, tensor) in model.namedParameters() {
            let fanIn = tensor.rank >= 2 ? tensor.count / tensor.shape[0] : 1
            let values = generator.normal(tensor.shape, std: 1 / Float(fanIn).squareRoot())
            tensor.data.update(from: values.data, count: tensor.count)
        }
    }
}
