import Diffusion
import Foundation

/// The settings of a HiPA run (`customize train-onestep`).
public struct HiPAConfig: Codable, Equatable, Sendable {
    /// Adaptor rank on every attention projection and resnet convolution (ours: 8).
    public var rank: Int
    public var learningRate: Float
    public var adamWeightDecay: Float
    public var maxTrainSteps: Int
    public var checkpointingSteps: Int
    public var checkpointsTotalLimit: Int
    /// Teacher pairs generated and cached once.
    public var pairs: Int
    /// The teacher's DDIM steps and guidance.
    public var teacherSteps: Int
    public var teacherGuidance: Float
    public var frames: Int
    /// λ of the high-frequency term, and the FFT high-pass cutoff (a fraction of the Nyquist radius).
    public var highFrequencyWeight: Float
    public var highPassCutoff: Double
    public var seed: UInt64

    enum CodingKeys: String, CodingKey {
        case rank, pairs, frames, seed
        case learningRate = "learning_rate"
        case adamWeightDecay = "adam_weight_decay"
        case maxTrainSteps = "max_train_steps"
        case checkpointingSteps = "checkpointing_steps"
        case checkpointsTotalLimit = "checkpoints_total_limit"
        case teacherSteps = "teacher_steps"
        case teacherGuidance = "teacher_guidance"
        case highFrequencyWeight = "high_frequency_weight"
        case highPassCutoff = "high_pass_cutoff"
    }

    /// Rank 8, lr 1e-4, 1000 steps over 64 cached pairs of one frame, a 25-step DDIM teacher at
    /// the pipeline's default guidance (`TextToVideoPipeline.defaultGuidance`), λ = 1, cutoff 0.5 (ours where METHODS.md leaves it open).
    public init(rank: Int = 8, learningRate: Float = 1e-4, adamWeightDecay: Float = 1e-2, maxTrainSteps: Int = 1000,
                checkpointingSteps: Int = 100, checkpointsTotalLimit: Int = 2, pairs: Int = 64, teacherSteps: Int = 25,
                teacherGuidance: Float = TextToVideoPipeline.defaultGuidance, frames: Int = 1, highFrequencyWeight: Float = 1, highPassCutoff: Double = 0.5,
                seed: UInt64 = 0) {
        self.rank = rank
        self.learningRate = learningRate
        self.adamWeightDecay = adamWeightDecay
        self.maxTrainSteps = maxTrainSteps
        self.checkpointingSteps = checkpointingSteps
        self.checkpointsTotalLimit = checkpointsTotalLimit
        self.pairs = pairs
        self.teacherSteps = teacherSteps
        self.teacherGuidance = teacherGuidance
        self.frames = frames
        self.highFrequencyWeight = highFrequencyWeight
        self.highPassCutoff = highPassCutoff
        self.seed = seed
    }

    public var trainerOptions: TrainerOptions {
        TrainerOptions(steps: maxTrainSteps, learningRate: learningRate, adamWeightDecay: adamWeightDecay, maxGradNorm: 1,
                       checkpointingSteps: checkpointingSteps, checkpointsTotalLimit: checkpointsTotalLimit,
                       logEvery: max(1, min(10, checkpointingSteps)), seed: seed)
    }

    public func validate(file: String) throws {
        func bad(_ key: CodingKeys, _ reason: String) -> TrainingError { .badOptions(file: file, key: key.rawValue, reason: reason) }
        guard rank >= 1 else { throw bad(.rank, "must be at least 1, got \(rank)") }
        guard pairs >= 1 else { throw bad(.pairs, "must be at least 1, got \(pairs)") }
        guard teacherSteps >= 1 else { throw bad(.teacherSteps, "must be at least 1, got \(teacherSteps)") }
        guard teacherGuidance.isFinite else { throw bad(.teacherGuidance, "must be a number, got \(teacherGuidance)") }
        guard frames >= 1 else { throw bad(.frames, "must be at least 1, got \(frames)") }
        guard highFrequencyWeight.isFinite, highFrequencyWeight >= 0 else { throw bad(.highFrequencyWeight, "must be a number of 0 or more") }
        guard highPassCutoff.isFinite, highPassCutoff >= 0, highPassCutoff < 2.0.squareRoot() else {
            throw bad(.highPassCutoff, "must lie in [0, √2), got \(highPassCutoff)")
        }
        try trainerOptions.validate(file: file)
    }

    /// What a resumed run may change: the step count and the checkpoint interval.
    func adjustedForResume(folder: String, adjust: (inout HiPAConfig) -> Void) throws -> HiPAConfig {
        var config = self
        adjust(&config)
        var comparable = config
        comparable.maxTrainSteps = maxTrainSteps
        comparable.checkpointingSteps = checkpointingSteps
        guard comparable == self else {
            throw MethodError.badRun(folder: folder, reason: "a resumed run keeps its adaptors, pairs and seed; only the step count and interval may change")
        }
        return config
    }
}
