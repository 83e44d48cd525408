import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The form every learned probe takes: features → one hidden ReLU layer → a probability per label.
///
/// Weights are stored under the keys `hidden.weight` [hidden, features], `hidden.bias`,
/// `output.weight` [labels, hidden] and `output.bias`, like a torch `nn.Sequential` of two
/// `nn.Linear`s. `name` only serves error messages ("shape classifier", "concept classifier").
public struct MLPClassifier: Sendable {
    public let name: String
    public let labels: [String]
    public let featureCount: Int
    public let hidden: Int
    let hiddenWeight: [Float], hiddenBias: [Float], outputWeight: [Float], outputBias: [Float]

    public static let keys = ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]

    public init(name: String, labels: [String], featureCount: Int, weights: [String: Tensor]) throws {
        for key in Self.keys where weights[key] == nil {
            throw ProbeError.badClassifier(name: name, key: key, reason: "missing")
        }
        let hiddenWeight = weights["hidden.weight"]!
        guard hiddenWeight.rank == 2, hiddenWeight.shape[1] == featureCount else {
            throw ProbeError.badClassifier(name: name, key: "hidden.weight", reason: "expected [hidden, \(featureCount)], got \(hiddenWeight.shape)")
        }
        let hidden = hiddenWeight.shape[0]
        let expected = ["hidden.bias": [hidden], "output.weight": [labels.count, hidden], "output.bias": [labels.count]]
        for (key, shape) in expected.sorted(by: { $0.key < $1.key }) where weights[key]!.shape != shape {
            throw ProbeError.badClassifier(name: name, key: key, reason: "expected \(shape), got \(weights[key]!.shape)")
        }
        for key in Self.keys where !weights[key]!.values.allSatisfy(\.isFinite) {
            throw ProbeError.badClassifier(name: name, key: key, reason: "holds a non-finite value")
        }
        self.name = name
        self.labels = labels
        self.featureCount = featureCount
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
                "hidden.weight": try Tensor(shape: [hidden, featureCount], values: hiddenWeight),
                "hidden.bias": try Tensor(shape: [hidden], values: hiddenBias),
                "output.weight": try Tensor(shape: [labels.count, hidden], values: outputWeight),
                "output.bias": try Tensor(shape: [labels.count], values: outputBias),
            ]
        }
    }

    /// The most likely label's index and its probability.
    public func classify(_ features: [Float]) -> (index: Int, probability: Float) {
        precondition(features.count == featureCount, "\(name): \(features.count) features, expected \(featureCount)")
        var activations = [Float](repeating: 0, count: hidden)
        for unit in 0..<hidden {
            var sum = hiddenBias[unit]
            let row = unit * featureCount
            for i in 0..<featureCount { sum += hiddenWeight[row + i] * features[i] }
            activations[unit] = Swift.max(sum, 0)
        }
        var logits = outputBias
        for label in logits.indices {
            let row = label * hidden
            for unit in 0..<hidden { logits[label] += outputWeight[row + unit] * activations[unit] }
        }
        let top = logits.max()!
        let total = logits.reduce(0) { $0 + expf($1 - top) }
        return (logits.firstIndex(of: top)!, 1 / total)
    }

    /// Share of `examples` classified as labelled (0 for none).
    public func accuracy(_ examples: [ProbeExample]) -> Float {
        guard !examples.isEmpty else { return 0 }
        return Float(examples.filter { classify($0.features).index == $0.label }.count) / Float(examples.count)
    }

    /// Counts by true label (rows) and predicted label (columns).
    public func confusion(_ examples: [ProbeExample]) -> [[Int]] {
        var counts = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count)
        for example in examples { counts[example.label][classify(example.features).index] += 1 }
        return counts
    }
}

/// One training or validation example of a learned probe.
public struct ProbeExample: Sendable {
    public var features: [Float]
    public var label: Int

    public init(features: [Float], label: Int) {
        self.features = features
        self.label = label
    }
}

/// Trains an `MLPClassifier` by AdamW on softmax cross-entropy over random mini-batches, with the
/// learning rate decayed by a cosine to a tenth (the last steps settle the boundaries).
/// Deterministic in `seed`.
public struct MLPClassifierTraining: Sendable {
    public var seed: UInt64 = 0
    public var hidden = 128
    public var steps = 8000
    public var batchSize = 128
    public var learningRate: Float = 3e-3

    public init() {}

    public func train(_ examples: [ProbeExample], name: String, labels: [String], featureCount: Int,
                      progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> MLPClassifier {
        guard !examples.isEmpty else { throw ProbeError.noExamples(name: name) }
        let classes = labels.count
        var generator = RandomGenerator(seed: seed, stream: 0x5A)
        let w1 = generator.normal([hidden, featureCount], std: (2 / Float(featureCount)).squareRoot())
        let b1 = Tensor(zeros: [hidden])
        let w2 = generator.normal([classes, hidden], std: (1 / Float(hidden)).squareRoot())
        let b2 = Tensor(zeros: [classes])
        let parameters = [w1, b1, w2, b2]
        for parameter in parameters { parameter.requiresGrad = true }
        let optimizer = try AdamW(parameters: parameters, learningRate: learningRate, weightDecay: 1e-4)
        var picker = SplitMix(seed: seed, stream: 0xB47C, index: 0)
        for step in 0..<steps {
            var inputs: [Float] = [], targets = [Float](repeating: 0, count: batchSize * classes)
            inputs.reserveCapacity(batchSize * featureCount)
            for row in 0..<batchSize {
                let example = examples[picker.below(examples.count)]
                inputs += example.features
                targets[row * classes + example.label] = 1
            }
            let x = try Tensor(shape: [batchSize, featureCount], values: inputs)
            let hiddenActivations = try Tensor.linear(x, weight: w1, bias: b1).relu()
            let logProbabilities = try Tensor.linear(hiddenActivations, weight: w2, bias: b2).logSoftmax(axis: -1)
            let loss = try (logProbabilities * Tensor(shape: [batchSize, classes], values: targets)).sum() * (-1 / Float(batchSize))
            optimizer.zeroGrad()
            try loss.backward()
            let fraction = Float(step) / Float(Swift.max(steps - 1, 1))
            optimizer.groups[0].learningRate = learningRate * (0.1 + 0.9 * 0.5 * (1 + cosf(Float.pi * fraction)))
            try optimizer.step()
            if step % 100 == 99 || step == steps - 1 { progress(step + 1, steps) }
        }
        return try MLPClassifier(name: name, labels: labels, featureCount: featureCount,
                                 weights: ["hidden.weight": w1.detached(), "hidden.bias": b1.detached(),
                                           "output.weight": w2.detached(), "output.bias": b2.detached()])
    }
}

/// What training a learned probe reports: the network, and its accuracy on the training examples,
/// on clean held-out renders and on roughened held-out renders (with that confusion matrix).
public struct ProbeTrainingReport: Sendable {
    public var network: MLPClassifier
    public var examples: Int
    public var trainAccuracy: Float
    public var validationAccuracy: Float
    public var degradedValidationAccuracy: Float
    public var degradedConfusion: [[Int]]

    public init(network: MLPClassifier, train: [ProbeExample], validation: [ProbeExample], degraded: [ProbeExample]) {
        self.network = network
        examples = train.count
        trainAccuracy = network.accuracy(train)
        validationAccuracy = network.accuracy(validation)
        degradedValidationAccuracy = network.accuracy(degraded)
        degradedConfusion = network.confusion(degraded)
    }
}

/// A learned probe's training on world renders, as `customize eval train-probe` runs it.
public protocol WorldProbeTraining {
    var seed: UInt64 { get set }
    var trainImages: Int { get set }
    var steps: Int { get set }
    func run(progress: (_ stage: String, _ done: Int, _ total: Int) -> Void) throws -> ProbeTrainingReport
}
