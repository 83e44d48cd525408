import Tensor

/// The probes' shape reader: an `MLPClassifier` from `ShapeFeatures` to the world's plain shapes.
///
/// Its weights live in a safetensors file beside the model (`probes/shape-classifier.safetensors`)
/// under `MLPClassifier.keys`.
public struct ShapeClassifier: Sendable {
    public let network: MLPClassifier

    static let shapes = ObjectShape.allCases
    public static let name = "shape classifier"
    public static let keys = MLPClassifier.keys

    public init(weights: [String: Tensor]) throws {
        network = try MLPClassifier(name: Self.name, labels: Self.shapes.map(\.rawValue), featureCount: ShapeFeatures.count, weights: weights)
    }

    public init(network: MLPClassifier) { self.network = network }

    public var hidden: Int { network.hidden }

    /// The weights as tensors, for saving.
    public var weights: [String: Tensor] { get throws { try network.weights } }

    /// The most likely shape and its probability.
    public func classify(_ features: [Float]) -> (shape: ObjectShape, probability: Float) {
        let (index, probability) = network.classify(features)
        return (Self.shapes[index], probability)
    }

    public func classify(_ object: DetectedObject, side: Int) -> ObjectShape {
        classify(ShapeFeatures.features(of: object, side: side)).shape
    }
}
