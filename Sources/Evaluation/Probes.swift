import Checkpoints
import Foundation
import Tensor
import World

/// The learned probes a model folder keeps in `probes/`: the shape classifier (eval base, motion,
/// onestep, decor), the concept classifier (eval compose, b4m) and the style classifier (eval b4m, decor).
public enum ProbeKind: String, CaseIterable, Sendable {
    case shape, concept, style

    public var title: String { "\(rawValue) classifier" }

    /// `<model>/probes/<kind>-classifier.safetensors`.
    public func defaultPath(model: String) -> String {
        (model as NSString).appendingPathComponent("probes/\(rawValue)-classifier.safetensors")
    }
}

/// Reads and writes the probes' classifier files, naming the file and key on bad input.
public enum ProbeFile {
    public static func weights(_ kind: ProbeKind, _ path: String) throws -> [String: Tensor] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw EvaluationError("no \(kind.title) at \(path); train one with `customize eval train-probe --kind \(kind.rawValue) --out \(path)`")
        }
        let file = try SafeTensorsFile(path: path)
        var weights: [String: Tensor] = [:]
        for key in MLPClassifier.keys {
            guard let entry = file.entries[key] else {
                throw EvaluationError("\(path): tensor \"\(key)\" is missing (expected the keys \(MLPClassifier.keys.joined(separator: ", ")))")
            }
            weights[key] = try Tensor(shape: entry.shape, values: try file.floats(key))
        }
        return weights
    }

    /// Builds the probe from the file's weights, prefixing construction errors with the path.
    static func load<Probe>(_ kind: ProbeKind, _ path: String, _ make: ([String: Tensor]) throws -> Probe) throws -> Probe {
        let weights = try weights(kind, path)
        do {
            return try make(weights)
        } catch {
            throw EvaluationError("\(path): \(describe(error))")
        }
    }

    public static func shape(_ path: String) throws -> ShapeClassifier { try load(.shape, path, ShapeClassifier.init(weights:)) }
    public static func concept(_ path: String) throws -> ConceptProbe { try load(.concept, path, ConceptProbe.init(weights:)) }
    public static func style(_ path: String) throws -> StyleProbe { try load(.style, path, StyleProbe.init(weights:)) }

    /// The shape probes for an evaluation's `probe` setting (default: the model's own).
    public static func worldProbes(probe: String?, model: String) throws -> WorldProbes {
        WorldProbes(classifier: try shape(probe ?? ProbeKind.shape.defaultPath(model: model)))
    }

    public static func save(_ network: MLPClassifier, metadata: [String: String], to path: String) throws {
        let tensors = try network.weights.sorted { $0.key < $1.key }.map { name, tensor in
            SafeTensors.TensorToWrite(name: name, shape: tensor.shape, values: tensor.values)
        }
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }
}

/// `eval train-probe`: trains one of the probes' classifiers on world renders (half of them
/// roughened, as decoded latents are) and saves it with its accuracies in the file's metadata.
public struct ProbeTrainingRun {
    public var kind: ProbeKind
    /// Where to write the classifier.
    public var out: String
    /// World images to train on (default: shape 6000, concept 3000, style 3000).
    public var images: Int?
    /// Optimizer steps (default: shape 8000, concept 6000, style 4000).
    public var steps: Int?
    /// World and initialisation seed.
    public var seed: UInt64 = 0

    public init(kind: ProbeKind, out: String) {
        self.kind = kind
        self.out = out
    }

    /// What a finished run trained and wrote.
    public struct Result {
        public var report: ProbeTrainingReport
        public var out: String
        public var seconds: Double
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        if let images { guard images >= 100 else { throw EvaluationError("--images must be at least 100, got \(images)") } }
        if let steps { guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") } }
    }

    /// Trains and writes the classifier (its folder created); progress goes to standard error.
    public func run() throws -> Result {
        try validate()
        let folder = (out as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try OutputFile.checkWritable(out, option: "--out")
        var reporter: ProgressReporter?
        var stage = ""
        let progress: (String, Int, Int) -> Void = { name, done, total in
            if name != stage { stage = name; reporter = ProgressReporter("train-probe \(name)", total: total, unit: name == "render" ? "image" : "step") }
            reporter?.update(done)
        }
        let start = Date()
        var training: any WorldProbeTraining = switch kind {
        case .shape: ShapeClassifierTraining()
        case .concept: ConceptProbeTraining()
        case .style: StyleProbeTraining()
        }
        training.seed = seed
        if let images { training.trainImages = images }
        if let steps { training.steps = steps }
        let report = try training.run(progress: progress)
        let seconds = Date().timeIntervalSince(start)
        let metadata = [
            "format": "customize \(kind.title)", "labels": report.network.labels.joined(separator: ","), "seed": String(seed),
            "train_images": String(training.trainImages), "steps": String(training.steps),
            "train_accuracy": String(format: "%.4f", report.trainAccuracy),
            "heldout_accuracy": String(format: "%.4f", report.validationAccuracy),
            "heldout_degraded_accuracy": String(format: "%.4f", report.degradedValidationAccuracy),
        ]
        try ProbeFile.save(report.network, metadata: metadata, to: out)
        return Result(report: report, out: out, seconds: seconds)
    }
}
