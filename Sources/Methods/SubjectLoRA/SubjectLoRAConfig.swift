import Diffusion
import Foundation

/// The settings of a subject LoRA run (`customize train-lora`), under the argument names of
/// diffusers' `train_dreambooth_lora.py` where it has them (`rank`, `learning_rate`,
/// `max_train_steps`, …). Augmentations are ours: a horizontal flip with probability
/// `random_flip` (the script's `--random_flip`, there always 0.5 when on) and a crop jitter of up to
/// `crop_jitter` latent pixels each way (the script's `--center_crop` off crops randomly in pixels;
/// here the latents of a slightly larger resize are cropped, so they can be cached).
public struct SubjectLoRAConfig: Codable, Equatable, Sendable {
    public var rank: Int
    public var loraDropout: Float
    public var learningRate: Float
    public var adamWeightDecay: Float
    public var maxTrainSteps: Int
    public var checkpointingSteps: Int
    public var checkpointsTotalLimit: Int
    public var randomFlip: Float
    /// Latent pixels the crop may move each way (pixels: this times the VAE's downsampling).
    public var cropJitter: Int
    public var validationSteps: Int
    public var validationPrompts: [String]
    public var validationInferenceSteps: Int
    public var validationGuidance: Float
    public var seed: UInt64
    /// DECOR's projection of the training prompts (and previews); nil: none.
    public var decor: DECORSetting?

    enum CodingKeys: String, CodingKey {
        case rank, seed, decor
        case loraDropout = "lora_dropout"
        case learningRate = "learning_rate"
        case adamWeightDecay = "adam_weight_decay"
        case maxTrainSteps = "max_train_steps"
        case checkpointingSteps = "checkpointing_steps"
        case checkpointsTotalLimit = "checkpoints_total_limit"
        case randomFlip = "random_flip"
        case cropJitter = "crop_jitter"
        case validationSteps = "validation_steps"
        case validationPrompts = "validation_prompts"
        case validationInferenceSteps = "validation_inference_steps"
        case validationGuidance = "validation_guidance"
    }

    /// Rank 16, lr 1e-3 constant, 2 000 steps, flips half the time, crops jittered by one latent
    /// pixel. The rate and length are ours, from pilots on the shipped base with samples/concepts/cat
    /// (renders of "a <size> cat on a <colour> background" looked at): 5e-4 × 300 steps drew an
    /// orange blob with ears; at 1e-3, 1 000 steps a face beginning, 2 000 a cat's face with eyes on
    /// most backgrounds, 4 000 no better (the 8 images overfitted: the cat left the yellow one).
    public init(rank: Int = 16, loraDropout: Float = 0, learningRate: Float = 1e-3, adamWeightDecay: Float = 1e-2,
                maxTrainSteps: Int = 2000, checkpointingSteps: Int = 200, checkpointsTotalLimit: Int = 2, randomFlip: Float = 0.5,
                cropJitter: Int = 1, validationSteps: Int = 500, validationPrompts: [String] = [], validationInferenceSteps: Int = 20,
                validationGuidance: Float = TextToVideoPipeline.defaultGuidance, seed: UInt64 = 0, decor: DECORSetting? = nil) {
        self.rank = rank
        self.loraDropout = loraDropout
        self.learningRate = learningRate
        self.adamWeightDecay = adamWeightDecay
        self.maxTrainSteps = maxTrainSteps
        self.checkpointingSteps = checkpointingSteps
        self.checkpointsTotalLimit = checkpointsTotalLimit
        self.randomFlip = randomFlip
        self.cropJitter = cropJitter
        self.validationSteps = validationSteps
        self.validationPrompts = validationPrompts
        self.validationInferenceSteps = validationInferenceSteps
        self.validationGuidance = validationGuidance
        self.seed = seed
        self.decor = decor
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
        guard loraDropout >= 0, loraDropout < 1 else { throw bad(.loraDropout, "must lie in [0, 1), got \(loraDropout)") }
        guard randomFlip.isFinite, randomFlip <= 1 else { throw bad(.randomFlip, "must be a probability, got \(randomFlip)") }
        guard cropJitter >= 0 else { throw bad(.cropJitter, "must not be negative, got \(cropJitter)") }
        guard validationSteps >= 0 else { throw bad(.validationSteps, "must not be negative, got \(validationSteps)") }
        guard validationInferenceSteps >= 1 else { throw bad(.validationInferenceSteps, "must be at least 1") }
        if let decor, !(decor.strength.isFinite && (0...1).contains(decor.strength)) {
            throw bad(.decor, "strength must lie in [0, 1], got \(decor.strength)")
        }
        try trainerOptions.validate(file: file)
    }
}
