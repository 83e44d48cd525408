import Foundation
import Models
import Tensor

/// What the trainer reports after each optimizer step.
public struct TrainingStepReport: Sendable {
    /// Steps completed (1 after the first step).
    public var step: Int
    public var totalSteps: Int
    public var loss: Float
    public var learningRate: Float
    /// The global gradient norm before clipping.
    public var gradientNorm: Float
    public var secondsPerStep: Double
}

/// The training loop shared by pretraining and adapter training (diffusers' training scripts'
/// loop, with accelerate's `save_state`/`load_state` for checkpoints): AdamW over the given
/// parameters, a learning-rate schedule, gradient clipping, an optional moving average of the
/// weights, NaN/Inf checks that name the step, and atomic checkpoints with resume.
///
/// Reproducibility: step s draws every random number from `RandomGenerator(seed:).derived(s)`,
/// handed to the loss closure, so a run resumed from a checkpoint continues bit for bit as the
/// uninterrupted run would (on the same thread count): the parameters, AdamW's moments and step
/// counts, the average and the step are all restored, and nothing else carries state.
public final class Trainer {
    public let folder: String
    public let options: TrainerOptions
    public let parameters: [(path: String, tensor: Tensor)]
    public let optimizer: AdamW
    public let ema: EMA?
    /// Completed optimizer steps.
    public private(set) var step = 0
    /// Every step's record so far (restored from loss.csv on resume).
    public private(set) var history: [LossRecord] = []
    /// Called after every step, and may stop training by throwing (previews hook in here).
    public var afterStep: ((TrainingStepReport) throws -> Void)?
    /// Called after each checkpoint is written, with its path, and after loss.csv is rewritten.
    public var afterCheckpoint: ((Int, String) throws -> Void)?
    public var afterLogWrite: (([LossRecord]) throws -> Void)?
    private var elapsedSeconds: Double = 0

    /// - Parameters:
    ///   - folder: where checkpoints and loss.csv go (created when needed).
    ///   - parameters: the trained tensors with their paths (the keys in model.safetensors and
    ///     the optimizer state); they get `requiresGrad` and are named by their path.
    ///   - learningRateMultiplier: each parameter's rate as a multiple of `options.learningRate`
    ///     (torch's parameter groups; parameters of equal multiplier share a group, in order of first
    ///     appearance). Break-for-Make trains the partner projection at a tenth of the rate.
    public init(folder: String, parameters: [(path: String, tensor: Tensor)], options: TrainerOptions,
                optionsFile: String = "trainer options", learningRateMultiplier: (String) -> Float = { _ in 1 }) throws {
        try options.validate(file: optionsFile)
        self.folder = folder
        self.options = options
        self.parameters = parameters
        for (path, tensor) in parameters {
            tensor.name = path
            tensor.requiresGrad = true
        }
        let tensors = parameters.map(\.tensor)
        var multipliers: [Float] = [], members: [[Tensor]] = []
        for (path, tensor) in parameters {
            let multiplier = learningRateMultiplier(path)
            guard multiplier.isFinite, multiplier >= 0 else {
                throw TrainingError.badOptions(file: optionsFile, key: "learning_rate",
                                               reason: "the rate multiplier of \(path) must be a number of 0 or more, got \(multiplier)")
            }
            if let index = multipliers.firstIndex(of: multiplier) { members[index].append(tensor) } else {
                multipliers.append(multiplier)
                members.append([tensor])
            }
        }
        let groups = zip(multipliers, members).map { ParameterGroup(parameters: $1, learningRate: options.learningRate * $0) }
        optimizer = try AdamW(groups: groups.isEmpty ? [ParameterGroup(parameters: [], learningRate: options.learningRate)] : groups,
                              betas: (options.adamBeta1, options.adamBeta2), epsilon: options.adamEpsilon,
                              weightDecay: options.adamWeightDecay)
        ema = try options.emaDecay.map { try EMA(parameters: tensors, decay: $0, warmup: true) }
    }

    public var lossLogPath: String { (folder as NSString).appendingPathComponent(LossLog.fileName) }
    public var isFinished: Bool { step >= options.steps }

    /// Restores the newest complete checkpoint of `folder` (temporary folders of a killed write are
    /// ignored and removed) and returns its step, or nil when there is none.
    @discardableResult
    public func resume() throws -> Int? {
        TrainerCheckpoint.removeAbandoned(in: folder)
        guard let latest = TrainerCheckpoint.latest(in: folder) else { return nil }
        let state = try TrainerCheckpoint.readState(latest.path)
        guard state.parameterCount == parameters.count else {
            throw TrainingError.checkpoint(path: latest.path,
                reason: "holds \(state.parameterCount) trained tensors, this model trains \(parameters.count)")
        }
        let weights = try TrainerCheckpoint.readTensors((latest.path as NSString).appendingPathComponent(TrainerCheckpoint.modelFile))
        // Check every tensor before writing any, so a mismatch leaves the model untouched.
        for (path, tensor) in parameters {
            guard let stored = weights[path] else {
                throw TrainingError.checkpoint(path: latest.path, reason: "model.safetensors has no tensor \(path)")
            }
            guard stored.shape == tensor.shape else {
                throw TrainingError.checkpoint(path: latest.path, reason: "\(path) has shape \(stored.shape), the model has \(tensor.shape)")
            }
        }
        let optimizerState = try TrainerCheckpoint.readTensors((latest.path as NSString).appendingPathComponent(TrainerCheckpoint.optimizerFile))
        try optimizer.importState(optimizerState)
        if let ema {
            let file = (latest.path as NSString).appendingPathComponent(TrainerCheckpoint.emaFile)
            guard FileManager.default.fileExists(atPath: file) else {
                throw TrainingError.checkpoint(path: latest.path, reason: "no \(TrainerCheckpoint.emaFile), but this run keeps a moving average")
            }
            try ema.importState(TrainerCheckpoint.readTensors(file))
        }
        for (path, tensor) in parameters { try tensor.assign(weights[path]!) }
        step = state.step
        elapsedSeconds = state.elapsedSeconds
        history = try LossLog.read(lossLogPath, upTo: step)
        return step
    }

    /// Runs steps until `options.steps` (or `until`, if sooner). `loss(step, random)` builds the
    /// loss of step `step` (0-based) drawing only from `random`.
    public func train(until: Int? = nil, loss: (_ step: Int, _ random: inout RandomGenerator) throws -> Tensor) throws {
        let target = min(until ?? options.steps, options.steps)
        let schedule = options.schedule
        let root = RandomGenerator(seed: options.seed)
        let tensors = parameters.map(\.tensor)
        while step < target {
            let started = Date()
            let index = step
            optimizer.applySchedule(schedule, step: index)
            // The scheduled rate of `options.learningRate` (a group with a multiplier runs at a multiple of it).
            let learningRate = schedule.learningRate(base: options.learningRate, step: index)
            optimizer.zeroGrad()
            var random = root.derived(UInt64(index))
            let value: Float
            do {
                let lossTensor = try loss(index, &random)
                guard lossTensor.count == 1 else { throw TrainingError.lossNotScalar(step: index, shape: lossTensor.shape) }
                value = lossTensor.item
                guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: index, value: value) }
                try lossTensor.backward()
            }
            let norm = try clipGradNorm(tensors, maxNorm: options.maxGradNorm > 0 ? options.maxGradNorm : .greatestFiniteMagnitude)
            if !norm.isFinite {
                let offender = parameters.first { $0.tensor.grad.map { !$0.isFinite } ?? false }
                throw TrainingError.nonFiniteGradient(step: index, parameter: offender?.path ?? "(unknown)")
            }
            try optimizer.step()
            try ema?.update(from: tensors)
            optimizer.zeroGrad()
            step += 1
            let seconds = Date().timeIntervalSince(started)
            elapsedSeconds += seconds
            history.append(LossRecord(step: step, loss: value, learningRate: learningRate, gradientNorm: norm, seconds: seconds))
            try afterStep?(TrainingStepReport(step: step, totalSteps: options.steps, loss: value, learningRate: learningRate,
                                              gradientNorm: norm, secondsPerStep: seconds))
            let checkpointDue = step % options.checkpointingSteps == 0 || step == options.steps
            if checkpointDue || step % options.logEvery == 0 { try writeLog() }
            if checkpointDue { try writeCheckpoint() }
        }
        // A finished run always ends on a checkpoint of its last step (also when it has no steps at all).
        if step == options.steps, TrainerCheckpoint.latest(in: folder)?.step != step {
            try writeLog()
            try writeCheckpoint()
        }
    }

    /// Writes a checkpoint of the current step now and returns its path.
    @discardableResult
    public func writeCheckpoint() throws -> String {
        let state = TrainerState(step: step, seed: options.seed, dataStreamPosition: step, elapsedSeconds: elapsedSeconds,
                                 options: options, parameterCount: parameters.count)
        let path = try TrainerCheckpoint.write(step: step, in: folder, parameters: parameters,
                                               optimizerState: optimizer.exportState(), emaState: ema?.exportState(),
                                               state: state, keep: options.checkpointsTotalLimit)
        try afterCheckpoint?(step, path)
        return path
    }

    /// Rewrites loss.csv from the history.
    public func writeLog() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try LossLog.write(history, to: lossLogPath)
        try afterLogWrite?(history)
    }

    /// Runs `body` with the averaged weights in the parameters (the trained ones are put back after),
    /// or with the trained weights when no average is kept.
    public func withAveragedWeights<T>(_ body: () throws -> T) throws -> T {
        guard let ema else { return try body() }
        let tensors = parameters.map(\.tensor)
        try ema.store(tensors)
        try ema.copy(to: tensors)
        defer { try? ema.restore(to: tensors) }
        return try body()
    }
}
