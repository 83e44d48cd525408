import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A small classifier from `ShapeFeatures` to the world's plain shapes: one hidden ReLU layer.
///
/// Its weights live in a safetensors file beside the model (`probes/shape-classifier.safetensors`)
/// under the keys `hidden.weight` [hidden, features], `hidden.bias`, `output.weight`
/// [shapes, hidden] and `output.bias`, like a torch `nn.Sequential` of two `nn.Linear`s.
public struct ShapeClassifier: Sendable {
    public let hidden: Int
    let hiddenWeight: [Float], hiddenBias: [Float], outputWeight: [Float], outputBias: [Float]

    static let shapes = ObjectShape.allCases
    public static let keys = ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]

    public init(weights: [String: Tensor]) throws {
        for key in Self.keys where weights[key] == nil {
            throw ProbeError.badClassifier(key: key, reason: "missing")
        }
        let hiddenWeight = weights["hidden.weight"]!
        guard hiddenWeight.rank == 2, hiddenWeight.shape[1] == ShapeFeatures.count else {
            throw ProbeError.badClassifier(key: "hidden.weight", reason: "expected [hidden, \(ShapeFeatures.count)], got \(hiddenWeight.shape)")
        }
        let hidden = hiddenWeight.shape[0]
        let expected = ["hidden.bias": [hidden], "output.weight": [Self.shapes.count, hidden], "output.bias": [Self.shapes.count]]
        for (key, shape) in expected where weights[key]!.shape != shape {
            throw ProbeError.badClassifier(key: key, reason: "expected \(shape), got \(weights[key]!.shape)")
        }
        for key in Self.keys where !weights[key]!.values.allSatisfy(\.isFinite) {
            throw ProbeError.badClassifier(key: key, reason: "holds a non-finite value")
        }
        self.hidden = hidden
        self.hiddenWeight = hiddenWeight.values
        self.hiddenBias = weights["hidden.bias"]!.values
        self.outputWeight = weights["output.weight"]!.values
        self.outputBias = weights["output.bias"]!.values
    }

    /// The weights as tensors, for saving.
    public var weights: [String: Tensor] {
        get throws {
            [
                "hidden.weight": try Tensor(shape: [hidden, ShapeFeatures.count], values: hiddenWeight),
                "hidden.bias": try Tensor(shape: [hidden], values: hiddenBias),
                "output.weight": try Tensor(shape: [Self.shapes.count, hidden], values: outputWeight),
                "output.bias": try Tensor(shape: [Self.shapes.count], values: outputBias),
            ]
        }
    }

    /// The most likely shape and its probability.
    public func classify(_ features: [Float]) -> (shape: ObjectShape, probability: Float) {
        precondition(features.count == ShapeFeatures.count, "ShapeClassifier: \(features.count) features")
        var activations = [Float](repeating: 0, count: hidden)
        for unit in 0..<hidden {
            var sum = hiddenBias[unit]
            let row = unit * ShapeFeatures.count
            for i in 0..<ShapeFeatures.count { sum += hiddenWeight[row + i] * features[i] }
            activations[unit] = Swift.max(sum, 0)
        }
        var logits = outputBias
        for shape in logits.indices {
            let row = shape * hidden
            for unit in 0..<hidden { logits[shape] += outputWeight[row + unit] * activations[unit] }
        }
        let top = logits.max()!
        let total = logits.reduce(0) { $0 + expf($1 - top) }
        let best = logits.firstIndex(of: top)!
        return (Self.shapes[best], 1 / total)
    }

    public func classify(_ object: DetectedObject, side: Int) -> ObjectShape {
        classify(ShapeFeatures.features(of: object, side: side)).shape
    }
}
