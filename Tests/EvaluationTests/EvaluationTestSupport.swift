import Checkpoints
import Foundation
import XCTest

/// The fixtures the evaluation tests share: the tiny 16×16 pipeline and a shape classifier with
/// fixed small weights (the tests check the evaluations' plumbing and arithmetic, not its accuracy).
enum EvaluationFixtures {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline").path

    /// Writes the shape classifier into `folder` and returns its path.
    static func shapeProbe(in folder: String) throws -> String {
        let probe = (folder as NSString).appendingPathComponent("shape.safetensors")
        let features = 16 * 16 + 2, hidden = 4, shapes = 10
        func values(_ count: Int, _ seed: Float) -> [Float] { (0..<count).map { sin(Float($0) * 0.7 + seed) * 0.1 } }
        try SafeTensors.write([
            SafeTensors.TensorToWrite(name: "hidden.weight", shape: [hidden, features], values: values(hidden * features, 1)),
            SafeTensors.TensorToWrite(name: "hidden.bias", shape: [hidden], values: values(hidden, 2)),
            SafeTensors.TensorToWrite(name: "output.weight", shape: [shapes, hidden], values: values(shapes * hidden, 3)),
            SafeTensors.TensorToWrite(name: "output.bias", shape: [shapes], values: values(shapes, 4)),
        ], to: probe)
        return probe
    }
}

/// A fresh temporary folder per test, removed afterwards.
class TemporaryFolderTestCase: XCTestCase {
    var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-evaluation-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
}
