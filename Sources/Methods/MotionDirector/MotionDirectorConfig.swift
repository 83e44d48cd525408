import Diffusion
import Foundation

/// The settings of a MotionDirector run under the keys of the reference's YAML configs
/// (showlab/MotionDirector `configs/config_multi_videos.yaml`, `config_single_video.yaml`,
/// `config_single_image.yaml`, read by `MotionDirector_train.py`'s `main(**config)`), so a reference
/// config file reads here as it reads there. Absent keys take the defaults below; the reference's
/// keys that concern only its GPU set-up (mixed precision, xformers, checkpointing of activations,
/// dataset types, paths) are accepted and not used (`ignoredReferenceKeys`).
///
/// `width`, `height`, `n_sample_frames` and `fps` are read at the top level too (where `train_data:`
/// does not give them). Keys of ours, for choices the reference hard-codes: `debias_beta` (its `beta = 1`),
/// `spatial_lora_off_probability` (its `random.uniform(0, 1) < 0.2`), `max_grad_norm` (it clips
/// nothing), `checkpoints_total_limit`, `seed` (it seeds nothing by default).
public struct MotionDirectorConfig: Codable, Equatable, Sendable {
    public var loraRank: Int
    /// Dropout on the LoRAs' inputs while training (`lora_unet_dropout`).
    public var loraDropout: Float
    public var learningRate: Float
    public var lrScheduler: String
    public var lrWarmupSteps: Int
    public var adamBeta1: Float
    public var adamBeta2: Float
    public var adamEpsilon: Float
    /// nil: 1e-2 for one clip, 1e-4 for several (METHODS.md).
    public var adamWeightDecay: Float?
    public var maxTrainSteps: Int
    public var checkpointingSteps: Int
    public var checkpointsTotalLimit: Int
    /// A preview every this many steps (and at the last step) while `validation.samplePreview`; 0: none.
    public var validationSteps: Int
    /// One spatial LoRA shared by all clips instead of one per clip.
    public var singleSpatialLoRA: Bool
    /// false trains only the spatial path (image animation's appearance LoRA).
    public var trainTemporalLoRA: Bool
    /// Probability of a horizontal flip of the spatial path's frame; the reference's -1 (any value
    /// at or below 0) never flips.
    public var randomHorizontalFlip: Float
    /// β of the appearance-debiased temporal loss; 0 leaves plain MSE twice.
    public var debiasBeta: Float
    /// Probability that a step switches the spatial LoRAs off (and skips the spatial path).
    public var spatialLoRAOffProbability: Float
    /// Global gradient-norm clip; 0 (the reference's behaviour) clips nothing.
    public var maxGradNorm: Float
    public var seed: UInt64
    public var trainData: TrainData
    public var validationData: ValidationData

    /// `train_data`: how clips are sampled.
    public struct TrainData: Codable, Equatable, Sendable {
        /// Pixel size of the training frames; nil: the model's render size.
        public var width: Int?
        public var height: Int?
        /// Frames per clip (`n_sample_frames`).
        public var sampleFrames: Int
        /// Sample at this rate from the clip's start (the reference's folder datasets); nil spreads the
        /// frames evenly over the whole clip.
        public var fps: Double?
        /// The caption of clips without a caption file (the reference's `fallback_prompt`).
        public var fallbackPrompt: String?

        public enum CodingKeys: String, CodingKey {
            case width, height, fps
            case sampleFrames = "n_sample_frames"
            case fallbackPrompt = "fallback_prompt"
        }

        public init(width: Int? = nil, height: Int? = nil, sampleFrames: Int = 8, fps: Double? = nil, fallbackPrompt: String? = nil) {
            self.width = width
            self.height = height
            self.sampleFrames = sampleFrames
            self.fps = fps
            self.fallbackPrompt = fallbackPrompt
        }

        public init(from decoder: Decoder) throws {
            let d = TrainData()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            width = try c.decodeIfPresent(Int.self, forKey: .width) ?? d.width
            height = try c.decodeIfPresent(Int.self, forKey: .height) ?? d.height
            sampleFrames = try c.decodeIfPresent(Int.self, forKey: .sampleFrames) ?? d.sampleFrames
            fps = try c.decodeIfPresent(Double.self, forKey: .fps) ?? d.fps
            fallbackPrompt = try c.decodeIfPresent(String.self, forKey: .fallbackPrompt) ?? d.fallbackPrompt
        }
    }

    /// `validation_data`: the preview clips rendered while training.
    public struct ValidationData: Codable, Equatable, Sendable {
        /// Preview prompts; empty: the first clip's caption (the reference's training prompt).
        public var prompt: [String]
        public var samplePreview: Bool
        public var numFrames: Int?
        public var numInferenceSteps: Int
        public var guidanceScale: Float
        /// Strength of the spatial LoRAs in previews (0, the reference's default: motion only).
        public var spatialScale: Float
        /// Noise prior p of previews: start from sqrt(p)·z_inv + sqrt(1−p)·ε, z_inv the DDIM inversion of
        /// the first clip's latents.
        public var noisePrior: Float
        public var seed: UInt64

        enum CodingKeys: String, CodingKey {
            case prompt, seed
            case samplePreview = "sample_preview"
            case numFrames = "num_frames"
            case numInferenceSteps = "num_inference_steps"
            case guidanceScale = "guidance_scale"
            case spatialScale = "spatial_scale"
            case noisePrior = "noise_prior"
        }

        public init(prompt: [String] = [], samplePreview: Bool = true, numFrames: Int? = nil, numInferenceSteps: Int = 20,
                    guidanceScale: Float = TextToVideoPipeline.defaultGuidance, spatialScale: Float = 0, noisePrior: Float = 0, seed: UInt64 = 0) {
            self.prompt = prompt
            self.samplePreview = samplePreview
            self.numFrames = numFrames
            self.numInferenceSteps = numInferenceSteps
            self.guidanceScale = guidanceScale
            self.spatialScale = spatialScale
            self.noisePrior = noisePrior
            self.seed = seed
        }

        public init(from decoder: Decoder) throws {
            let d = ValidationData()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            // The reference writes `prompt:` as a list; one string is taken as a list of one.
            if let list = try? c.decodeIfPresent([String].self, forKey: .prompt) {
                prompt = list
            } else {
                prompt = try c.decodeIfPresent(String.self, forKey: .prompt).map { [$0] } ?? d.prompt
            }
            samplePreview = try c.decodeIfPresent(Bool.self, forKey: .samplePreview) ?? d.samplePreview
            numFrames = try c.decodeIfPresent(Int.self, forKey: .numFrames) ?? d.numFrames
            numInferenceSteps = try c.decodeIfPresent(Int.self, forKey: .numInferenceSteps) ?? d.numInferenceSteps
            guidanceScale = try c.decodeIfPresent(Float.self, forKey: .guidanceScale) ?? d.guidanceScale
            spatialScale = try c.decodeIfPresent(Float.self, forKey: .spatialScale) ?? d.spatialScale
            noisePrior = try c.decodeIfPresent(Float.self, forKey: .noisePrior) ?? d.noisePrior
            seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        }
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case loraRank = "lora_rank"
        case loraDropout = "lora_unet_dropout"
        case learningRate = "learning_rate"
        case lrScheduler = "lr_scheduler"
        case lrWarmupSteps = "lr_warmup_steps"
        case adamBeta1 = "adam_beta1"
        case adamBeta2 = "adam_beta2"
        case adamEpsilon = "adam_epsilon"
        case adamWeightDecay = "adam_weight_decay"
        case maxTrainSteps = "max_train_steps"
        case checkpointingSteps = "checkpointing_steps"
        case checkpointsTotalLimit = "checkpoints_total_limit"
        case validationSteps = "validation_steps"
        case singleSpatialLoRA = "single_spatial_lora"
        case trainTemporalLoRA = "train_temporal_lora"
        case randomHorizontalFlip = "random_hflip_img"
        case debiasBeta = "debias_beta"
        case spatialLoRAOffProbability = "spatial_lora_off_probability"
        case maxGradNorm = "max_grad_norm"
        case seed
        case trainData = "train_data"
        case validationData = "validation_data"
    }

    /// Keys of the reference's configs that only concern its own set-up; read and not used.
    public static let ignoredReferenceKeys: Set<String> = [
        "pretrained_model_path", "output_dir", "dataset_types", "cache_latents", "cached_latent_dir", "use_unet_lora",
        "save_pretrained_model", "mixed_precision", "gradient_checkpointing", "text_encoder_gradient_checkpointing",
        "enable_xformers_memory_efficient_attention", "enable_torch_2_attn", "train_batch_size", "gradient_accumulation_steps",
        "use_offset_noise", "rescale_schedule", "offset_noise_strength", "extend_dataset", "use_8bit_adam", "logger_type",
        "unet_lora_modules", "text_encoder_lora_modules", "trainable_modules", "extra_unet_params", "extra_train_data",
        "lora_path", "resume_from_checkpoint", "resume_step",
        "train_data.use_bucketing", "train_data.sample_start_idx", "train_data.frame_step", "train_data.path",
        "train_data.single_video_path", "train_data.single_video_prompt", "train_data.image_dir", "train_data.single_img_prompt",
        "train_data.json_path",
        "validation_data.width", "validation_data.height",
    ]

    /// Every key this config reads, dotted for nested ones (`train_data.n_sample_frames`).
    public static var knownKeys: Set<String> {
        var keys = Set(CodingKeys.allCases.map(\.rawValue)).union(["width", "height", "n_sample_frames", "fps"])
        keys.formUnion(["width", "height", "n_sample_frames", "fps", "fallback_prompt"].map { "train_data." + $0 })
        keys.formUnion(["prompt", "sample_preview", "num_frames", "num_inference_steps", "guidance_scale", "spatial_scale",
                        "noise_prior", "seed"].map { "validation_data." + $0 })
        return keys
    }

    /// The method's defaults (as the method's description gives them): rank 32, dropout 0.1, constant learning rate, β = 1,
    /// spatial LoRAs off with probability 0.2. **Ours**: lr 1e-3 and 1 500 steps instead of the
    /// reference's 5e-4 and 300, a checkpoint every 100 and a preview every 300 steps. On the shipped
    /// base, pilots on samples/clips (eval motion, 6 prompts) gave MotionDirector's motion fidelity
    /// 0.12 at 5e-4 × 300 steps; at 1e-3: 0.62 (300), 0.64 (600), 0.78 (1 000), 0.83 (1 500); at
    /// 2e-3 × 300 0.34 with adherence falling to 0.83.
    public init() {
        loraRank = 32
        loraDropout = 0.1
        learningRate = 1e-3
        lrScheduler = "constant"
        lrWarmupSteps = 0
        adamBeta1 = 0.9
        adamBeta2 = 0.999
        adamEpsilon = 1e-8
        adamWeightDecay = nil
        maxTrainSteps = 1500
        checkpointingSteps = 100
        checkpointsTotalLimit = 2
        validationSteps = 300
        singleSpatialLoRA = false
        trainTemporalLoRA = true
        randomHorizontalFlip = -1
        debiasBeta = 1
        spatialLoRAOffProbability = 0.2
        maxGradNorm = 0
        seed = 0
        trainData = TrainData()
        validationData = ValidationData()
    }

    /// Image animation's appearance LoRA (the reference's `config_single_image.yaml`): the spatial
    /// path only, one LoRA, random flips, weight decay 1e-4, lr 5e-4 and 300 steps (the reference's).
    public static var singleImage: MotionDirectorConfig {
        var config = MotionDirectorConfig()
        config.learningRate = 5e-4
        config.maxTrainSteps = 300
        config.checkpointingSteps = 50
        config.validationSteps = 100
        config.singleSpatialLoRA = true
        config.trainTemporalLoRA = false
        config.randomHorizontalFlip = 0.5
        config.adamWeightDecay = 1e-4
        config.trainData.sampleFrames = 1
        config.validationData.samplePreview = false
        return config
    }

    public init(from decoder: Decoder) throws {
        let d = MotionDirectorConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        loraRank = try c.decodeIfPresent(Int.self, forKey: .loraRank) ?? d.loraRank
        loraDropout = try c.decodeIfPresent(Float.self, forKey: .loraDropout) ?? d.loraDropout
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        lrScheduler = try c.decodeIfPresent(String.self, forKey: .lrScheduler) ?? d.lrScheduler
        lrWarmupSteps = try c.decodeIfPresent(Int.self, forKey: .lrWarmupSteps) ?? d.lrWarmupSteps
        adamBeta1 = try c.decodeIfPresent(Float.self, forKey: .adamBeta1) ?? d.adamBeta1
        adamBeta2 = try c.decodeIfPresent(Float.self, forKey: .adamBeta2) ?? d.adamBeta2
        adamEpsilon = try c.decodeIfPresent(Float.self, forKey: .adamEpsilon) ?? d.adamEpsilon
        adamWeightDecay = try c.decodeIfPresent(Float.self, forKey: .adamWeightDecay) ?? d.adamWeightDecay
        maxTrainSteps = try c.decodeIfPresent(Int.self, forKey: .maxTrainSteps) ?? d.maxTrainSteps
        checkpointingSteps = try c.decodeIfPresent(Int.self, forKey: .checkpointingSteps) ?? d.checkpointingSteps
        checkpointsTotalLimit = try c.decodeIfPresent(Int.self, forKey: .checkpointsTotalLimit) ?? d.checkpointsTotalLimit
        validationSteps = try c.decodeIfPresent(Int.self, forKey: .validationSteps) ?? d.validationSteps
        singleSpatialLoRA = try c.decodeIfPresent(Bool.self, forKey: .singleSpatialLoRA) ?? d.singleSpatialLoRA
        trainTemporalLoRA = try c.decodeIfPresent(Bool.self, forKey: .trainTemporalLoRA) ?? d.trainTemporalLoRA
        randomHorizontalFlip = try c.decodeIfPresent(Float.self, forKey: .randomHorizontalFlip) ?? d.randomHorizontalFlip
        debiasBeta = try c.decodeIfPresent(Float.self, forKey: .debiasBeta) ?? d.debiasBeta
        spatialLoRAOffProbability = try c.decodeIfPresent(Float.self, forKey: .spatialLoRAOffProbability) ?? d.spatialLoRAOffProbability
        maxGradNorm = try c.decodeIfPresent(Float.self, forKey: .maxGradNorm) ?? d.maxGradNorm
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        trainData = try c.decodeIfPresent(TrainData.self, forKey: .trainData) ?? d.trainData
        validationData = try c.decodeIfPresent(ValidationData.self, forKey: .validationData) ?? d.validationData
        // The sampling keys may also stand at the top level; `train_data:` wins where both give one.
        let flat = try decoder.container(keyedBy: TrainData.CodingKeys.self)
        let nested = c.contains(.trainData) ? try? c.nestedContainer(keyedBy: TrainData.CodingKeys.self, forKey: .trainData) : nil
        func given(_ key: TrainData.CodingKeys) -> Bool { flat.contains(key) && !(nested?.contains(key) ?? false) }
        if given(.width) { trainData.width = try flat.decode(Int.self, forKey: .width) }
        if given(.height) { trainData.height = try flat.decode(Int.self, forKey: .height) }
        if given(.sampleFrames) { trainData.sampleFrames = try flat.decode(Int.self, forKey: .sampleFrames) }
        if given(.fps) { trainData.fps = try flat.decode(Double.self, forKey: .fps) }
    }

    /// The weight decay for `clips` clips: the configured one, else 1e-2 for one clip and 1e-4 for several.
    public func weightDecay(clips: Int) -> Float {
        adamWeightDecay ?? (clips <= 1 ? 1e-2 : 1e-4)
    }

    /// Whether a run with this config is the run `other` started: the same adapters, data, optimiser
    /// and seed; only the step count, the checkpoint intervals and the previews may differ (what a
    /// resumed run may change).
    public func isSameRun(as other: MotionDirectorConfig) -> Bool {
        var mine = self, theirs = other
        for changeable in [\MotionDirectorConfig.maxTrainSteps, \.checkpointingSteps, \.validationSteps, \.checkpointsTotalLimit] {
            mine[keyPath: changeable] = 0
            theirs[keyPath: changeable] = 0
        }
        mine.validationData = theirs.validationData
        return mine == theirs
    }

    /// The trainer's options for a run over `clips` clips.
    public func trainerOptions(clips: Int) -> TrainerOptions {
        TrainerOptions(steps: maxTrainSteps, learningRate: learningRate, lrScheduler: lrScheduler, lrWarmupSteps: lrWarmupSteps,
                       adamBeta1: adamBeta1, adamBeta2: adamBeta2, adamEpsilon: adamEpsilon,
                       adamWeightDecay: weightDecay(clips: clips), maxGradNorm: maxGradNorm, emaDecay: nil,
                       checkpointingSteps: checkpointingSteps, checkpointsTotalLimit: checkpointsTotalLimit,
                       logEvery: max(1, min(10, checkpointingSteps)), seed: seed)
    }

    /// Throws `TrainingError.badOptions` naming `file` and the first key out of range.
    public func validate(file: String) throws {
        func bad(_ key: String, _ reason: String) -> TrainingError { .badOptions(file: file, key: key, reason: reason) }
        guard loraRank >= 1 else { throw bad("lora_rank", "must be at least 1, got \(loraRank)") }
        guard loraDropout >= 0, loraDropout < 1 else { throw bad("lora_unet_dropout", "must lie in [0, 1), got \(loraDropout)") }
        guard debiasBeta.isFinite, debiasBeta >= 0 else { throw bad("debias_beta", "must be a number of 0 or more, got \(debiasBeta)") }
        guard (0...1).contains(spatialLoRAOffProbability) else {
            throw bad("spatial_lora_off_probability", "must lie in [0, 1], got \(spatialLoRAOffProbability)")
        }
        guard randomHorizontalFlip.isFinite, randomHorizontalFlip <= 1 else {
            throw bad("random_hflip_img", "must be a probability (at most 1; -1 for no flips), got \(randomHorizontalFlip)")
        }
        guard validationSteps >= 0 else { throw bad("validation_steps", "must not be negative (0: no previews), got \(validationSteps)") }
        if let width = trainData.width, width < 1 { throw bad("train_data.width", "must be at least 1, got \(width)") }
        if let height = trainData.height, height < 1 { throw bad("train_data.height", "must be at least 1, got \(height)") }
        guard trainData.sampleFrames >= 1 else { throw bad("train_data.n_sample_frames", "must be at least 1, got \(trainData.sampleFrames)") }
        if trainTemporalLoRA, trainData.sampleFrames < 2 {
            throw bad("train_data.n_sample_frames", "the temporal path needs at least 2 frames, got \(trainData.sampleFrames)")
        }
        if let fps = trainData.fps, !(fps.isFinite && fps > 0) { throw bad("train_data.fps", "must be a positive number, got \(fps)") }
        if let frames = validationData.numFrames, frames < 1 { throw bad("validation_data.num_frames", "must be at least 1, got \(frames)") }
        guard validationData.numInferenceSteps >= 1 else {
            throw bad("validation_data.num_inference_steps", "must be at least 1, got \(validationData.numInferenceSteps)")
        }
        guard validationData.guidanceScale.isFinite else { throw bad("validation_data.guidance_scale", "must be a number") }
        guard validationData.spatialScale.isFinite else { throw bad("validation_data.spatial_scale", "must be a number") }
        guard (0...1).contains(validationData.noisePrior) else {
            throw bad("validation_data.noise_prior", "must lie in [0, 1], got \(validationData.noisePrior)")
        }
        if let decay = adamWeightDecay, !(decay >= 0) { throw bad("adam_weight_decay", "must not be negative, got \(decay)") }
        try trainerOptions(clips: 1).validate(file: file)
    }

    /// The config as JSON (sorted keys), as a run folder stores it.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}
