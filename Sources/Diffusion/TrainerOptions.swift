import Foundation
import Tensor

/// How a `Trainer` runs: the arguments of diffusers' training scripts (`train_text_to_image.py`,
/// `--max_train_steps`, `--learning_rate`, `--lr_scheduler`, …) under the same snake_case keys, so
/// a JSON config reads like their command lines. Absent keys take the defaults below.
public struct TrainerOptions: Codable, Equatable, Sendable {
    /// Optimizer steps in all (`max_train_steps`).
    public var steps: Int
    public var learningRate: Float
    /// "constant", "constant_with_warmup" or "cosine" (diffusers' `get_scheduler` names).
    public var lrScheduler: String
    public var lrWarmupSteps: Int
    /// The floor of the cosine schedule.
    public var minLearningRate: Float
    public var adamBeta1: Float
    public var adamBeta2: Float
    public var adamEpsilon: Float
    public var adamWeightDecay: Float
    /// Global gradient-norm clip; 0 turns clipping off (the norm is still measured and logged).
    public var maxGradNorm: Float
    /// Decay of the exponential moving average of the weights (`use_ema`); nil keeps no average.
    public var emaDecay: Float?
    /// A checkpoint every this many steps (`checkpointing_steps`); the last step always gets one.
    public var checkpointingSteps: Int
    /// Complete checkpoints kept on disk (`checkpoints_total_limit`); older ones are removed.
    public var checkpointsTotalLimit: Int
    /// loss.csv is rewritten every this many steps (and at each checkpoint).
    public var logEvery: Int
    /// The root of every random draw: step s draws from `RandomGenerator(seed:).derived(s)`.
    public var seed: UInt64

    enum CodingKeys: String, CodingKey, CaseIterable {
        case steps = "max_train_steps"
        case learningRate = "learning_rate"
        case lrScheduler = "lr_scheduler"
        case lrWarmupSteps = "lr_warmup_steps"
        case minLearningRate = "min_learning_rate"
        case adamBeta1 = "adam_beta1"
        case adamBeta2 = "adam_beta2"
        case adamEpsilon = "adam_epsilon"
        case adamWeightDecay = "adam_weight_decay"
        case maxGradNorm = "max_grad_norm"
        case emaDecay = "ema_decay"
        case checkpointingSteps = "checkpointing_steps"
        case checkpointsTotalLimit = "checkpoints_total_limit"
        case logEvery = "log_every"
        case seed
    }

    public static let schedulerNames = ["constant", "constant_with_warmup", "cosine"]

    public init(steps: Int = 1000, learningRate: Float = 1e-4, lrScheduler: String = "constant", lrWarmupSteps: Int = 0,
                minLearningRate: Float = 0, adamBeta1: Float = 0.9, adamBeta2: Float = 0.999, adamEpsilon: Float = 1e-8,
                adamWeightDecay: Float = 1e-2, maxGradNorm: Float = 1, emaDecay: Float? = nil,
                checkpointingSteps: Int = 500, checkpointsTotalLimit: Int = 2, logEvery: Int = 25, seed: UInt64 = 0) {
        self.steps = steps
        self.learningRate = learningRate
        self.lrScheduler = lrScheduler
        self.lrWarmupSteps = lrWarmupSteps
        self.minLearningRate = minLearningRate
        self.adamBeta1 = adamBeta1
        self.adamBeta2 = adamBeta2
        self.adamEpsilon = adamEpsilon
        self.adamWeightDecay = adamWeightDecay
        self.maxGradNorm = maxGradNorm
        self.emaDecay = emaDecay
        self.checkpointingSteps = checkpointingSteps
        self.checkpointsTotalLimit = checkpointsTotalLimit
        self.logEvery = logEvery
        self.seed = seed
    }

    public init(from decoder: Decoder) throws {
        let d = TrainerOptions()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        lrScheduler = try c.decodeIfPresent(String.self, forKey: .lrScheduler) ?? d.lrScheduler
        lrWarmupSteps = try c.decodeIfPresent(Int.self, forKey: .lrWarmupSteps) ?? d.lrWarmupSteps
        minLearningRate = try c.decodeIfPresent(Float.self, forKey: .minLearningRate) ?? d.minLearningRate
        adamBeta1 = try c.decodeIfPresent(Float.self, forKey: .adamBeta1) ?? d.adamBeta1
        adamBeta2 = try c.decodeIfPresent(Float.self, forKey: .adamBeta2) ?? d.adamBeta2
        adamEpsilon = try c.decodeIfPresent(Float.self, forKey: .adamEpsilon) ?? d.adamEpsilon
        adamWeightDecay = try c.decodeIfPresent(Float.self, forKey: .adamWeightDecay) ?? d.adamWeightDecay
        maxGradNorm = try c.decodeIfPresent(Float.self, forKey: .maxGradNorm) ?? d.maxGradNorm
        emaDecay = try c.decodeIfPresent(Float.self, forKey: .emaDecay)
        checkpointingSteps = try c.decodeIfPresent(Int.self, forKey: .checkpointingSteps) ?? d.checkpointingSteps
        checkpointsTotalLimit = try c.decodeIfPresent(Int.self, forKey: .checkpointsTotalLimit) ?? d.checkpointsTotalLimit
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery) ?? d.logEvery
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }

    /// The learning-rate schedule these options name.
    public var schedule: LearningRateSchedule {
        switch lrScheduler {
        case "constant_with_warmup": return .linearWarmup(steps: lrWarmupSteps)
        case "cosine": return .cosine(total: steps, warmup: lrWarmupSteps, minLR: minLearningRate)
        default: return .constant
        }
    }

    /// Throws `TrainingError.badOptions` naming `file` and the first key out of range.
    public func validate(file: String) throws {
        func bad(_ key: CodingKeys, _ reason: String) -> TrainingError { .badOptions(file: file, key: key.rawValue, reason: reason) }
        guard steps >= 0 else { throw bad(.steps, "must not be negative, got \(steps)") }
        guard learningRate.isFinite, learningRate >= 0 else { throw bad(.learningRate, "must be a non-negative number, got \(learningRate)") }
        guard Self.schedulerNames.contains(lrScheduler) else {
            throw bad(.lrScheduler, "unknown schedule \"\(lrScheduler)\" (supported: \(Self.schedulerNames.joined(separator: ", ")))")
        }
        guard lrWarmupSteps >= 0 else { throw bad(.lrWarmupSteps, "must not be negative, got \(lrWarmupSteps)") }
        guard (0..<1).contains(adamBeta1) else { throw bad(.adamBeta1, "must lie in [0, 1), got \(adamBeta1)") }
        guard (0..<1).contains(adamBeta2) else { throw bad(.adamBeta2, "must lie in [0, 1), got \(adamBeta2)") }
        guard adamEpsilon >= 0 else { throw bad(.adamEpsilon, "must not be negative, got \(adamEpsilon)") }
        guard adamWeightDecay >= 0 else { throw bad(.adamWeightDecay, "must not be negative, got \(adamWeightDecay)") }
        guard maxGradNorm >= 0 else { throw bad(.maxGradNorm, "must not be negative (0 turns clipping off), got \(maxGradNorm)") }
        if let emaDecay, !(0...1).contains(emaDecay) { throw bad(.emaDecay, "must lie in [0, 1], got \(emaDecay)") }
        guard checkpointingSteps >= 1 else { throw bad(.checkpointingSteps, "must be at least 1, got \(checkpointingSteps)") }
        guard checkpointsTotalLimit >= 1 else { throw bad(.checkpointsTotalLimit, "must be at least 1, got \(checkpointsTotalLimit)") }
        guard logEvery >= 1 else { throw bad(.logEvery, "must be at least 1, got \(logEvery)") }
    }
}
