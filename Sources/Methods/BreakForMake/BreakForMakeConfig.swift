import Diffusion
import Foundation

/// The settings of Break-for-Make runs (`train-content`, `train-style`, `make`), under the argument
/// names of the reference's scripts where it has them (`rank`, `learning_rate`, `max_train_steps`, …).
public struct BreakForMakeConfig: Codable, Equatable, Sendable {
    /// PLP rank (reference 64 for SDXL; ours 16 for the compact model).
    public var rank: Int
    /// The rate of the half that learns from the run's own images (reference 1e-4).
    public var learningRate: Float
    /// The partner half's rate as a fraction of `learning_rate` (reference: a tenth).
    public var partnerLearningRateRatio: Float
    public var adamWeightDecay: Float
    /// δ of the Riemannian preconditioner in `make` (reference `reg` 1e-6).
    public var preconditionerDelta: Float
    public var maxTrainSteps: Int
    /// Micro-steps whose gradients each optimizer step averages (reference: 4 with batch size 1). A
    /// micro-step of train-content or train-style takes one own and one auxiliary image, one of make a
    /// style and a content image. Run records written before it existed read as 1.
    public var gradientAccumulationSteps: Int
    public var checkpointingSteps: Int
    public var checkpointsTotalLimit: Int
    public var randomFlip: Float
    /// Latent pixels the crop may move each way.
    public var cropJitter: Int
    public var validationSteps: Int
    public var validationInferenceSteps: Int
    public var validationGuidance: Float
    /// Content and style runs must share it (and the rank) for their frozen halves to match.
    public var seed: UInt64

    enum CodingKeys: String, CodingKey {
        case rank, seed
        case learningRate = "learning_rate"
        case partnerLearningRateRatio = "partner_learning_rate_ratio"
        case adamWeightDecay = "adam_weight_decay"
        case preconditionerDelta = "preconditioner_delta"
        case maxTrainSteps = "max_train_steps"
        case gradientAccumulationSteps = "gradient_accumulation_steps"
        case checkpointingSteps = "checkpointing_steps"
        case checkpointsTotalLimit = "checkpoints_total_limit"
        case randomFlip = "random_flip"
        case cropJitter = "crop_jitter"
        case validationSteps = "validation_steps"
        case validationInferenceSteps = "validation_inference_steps"
        case validationGuidance = "validation_guidance"
    }

    /// The reference's schedule (`train_content.sh`, `train_style.sh`, `train_second_stage.sh`): lr
    /// 1e-4 (partner 1e-5), 1000 steps of 4 accumulated images; rank 16 (ours, for the compact model).
    public init(rank: Int = 16, learningRate: Float = 1e-4, partnerLearningRateRatio: Float = 0.1, adamWeightDecay: Float = 1e-2,
                preconditionerDelta: Float = 1e-6, maxTrainSteps: Int = 1000, gradientAccumulationSteps: Int = 4, checkpointingSteps: Int = 50,
                checkpointsTotalLimit: Int = 2, randomFlip: Float = 0.5, cropJitter: Int = 1, validationSteps: Int = 100,
                validationInferenceSteps: Int = 20, validationGuidance: Float = TextToVideoPipeline.defaultGuidance, seed: UInt64 = 0) {
        self.rank = rank
        self.learningRate = learningRate
        self.partnerLearningRateRatio = partnerLearningRateRatio
        self.adamWeightDecay = adamWeightDecay
        self.preconditionerDelta = preconditionerDelta
        self.maxTrainSteps = maxTrainSteps
        self.gradientAccumulationSteps = gradientAccumulationSteps
        self.checkpointingSteps = checkpointingSteps
        self.checkpointsTotalLimit = checkpointsTotalLimit
        self.randomFlip = randomFlip
        self.cropJitter = cropJitter
        self.validationSteps = validationSteps
        self.validationInferenceSteps = validationInferenceSteps
        self.validationGuidance = validationGuidance
        self.seed = seed
    }

    public init(from decoder: Decoder) throws {
        let values = try decoder.container(keyedBy: CodingKeys.self)
        rank = try values.decode(Int.self, forKey: .rank)
        learningRate = try values.decode(Float.self, forKey: .learningRate)
        partnerLearningRateRatio = try values.decode(Float.self, forKey: .partnerLearningRateRatio)
        adamWeightDecay = try values.decode(Float.self, forKey: .adamWeightDecay)
        preconditionerDelta = try values.decode(Float.self, forKey: .preconditionerDelta)
        maxTrainSteps = try values.decode(Int.self, forKey: .maxTrainSteps)
        gradientAccumulationSteps = try values.decodeIfPresent(Int.self, forKey: .gradientAccumulationSteps) ?? 1
        checkpointingSteps = try values.decode(Int.self, forKey: .checkpointingSteps)
        checkpointsTotalLimit = try values.decode(Int.self, forKey: .checkpointsTotalLimit)
        randomFlip = try values.decode(Float.self, forKey: .randomFlip)
        cropJitter = try values.decode(Int.self, forKey: .cropJitter)
        validationSteps = try values.decode(Int.self, forKey: .validationSteps)
        validationInferenceSteps = try values.decode(Int.self, forKey: .validationInferenceSteps)
        validationGuidance = try values.decode(Float.self, forKey: .validationGuidance)
        seed = try values.decode(UInt64.self, forKey: .seed)
    }

    public var trainerOptions: TrainerOptions {
        TrainerOptions(steps: maxTrainSteps, learningRate: learningRate, adamWeightDecay: adamWeightDecay, maxGradNorm: 0,
                       checkpointingSteps: checkpointingSteps, checkpointsTotalLimit: checkpointsTotalLimit,
                       logEvery: max(1, min(10, checkpointingSteps)), seed: seed)
    }

    /// Throws `TrainingError.badOptions` naming `file` and the first setting out of range.
    public func validate(file: String) throws {
        func bad(_ key: CodingKeys, _ reason: String) -> TrainingError { .badOptions(file: file, key: key.rawValue, reason: reason) }
        guard rank >= 1 else { throw bad(.rank, "must be at least 1, got \(rank)") }
        guard gradientAccumulationSteps >= 1 else {
            throw bad(.gradientAccumulationSteps, "must be at least 1, got \(gradientAccumulationSteps)")
        }
        guard partnerLearningRateRatio.isFinite, partnerLearningRateRatio >= 0 else {
            throw bad(.partnerLearningRateRatio, "must be a number of 0 or more, got \(partnerLearningRateRatio)")
        }
        guard preconditionerDelta.isFinite, preconditionerDelta > 0 else {
            throw bad(.preconditionerDelta, "must be a positive number, got \(preconditionerDelta)")
        }
        guard randomFlip.isFinite, randomFlip >= 0, randomFlip <= 1 else { throw bad(.randomFlip, "must be a probability, got \(randomFlip)") }
        guard cropJitter >= 0 else { throw bad(.cropJitter, "must not be negative, got \(cropJitter)") }
        guard validationSteps >= 0 else { throw bad(.validationSteps, "must not be negative, got \(validationSteps)") }
        guard validationInferenceSteps >= 1 else { throw bad(.validationInferenceSteps, "must be at least 1") }
        try trainerOptions.validate(file: file)
    }
}
