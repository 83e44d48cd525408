import Foundation
import Models

/// Everything `customize pretrain` needs, read from a JSON file whose keys are the diffusers and
/// transformers config keys (`block_out_channels`, `hidden_size`, …) and diffusers' training-script
/// arguments (`max_train_steps`, `learning_rate`, …). Any top-level key may be left out for its
/// default; a model config that is given is read as diffusers reads config.json (absent keys take
/// diffusers' defaults), so give it whole.
///
/// The defaults are the compact model this project ships: about 7 M parameters in all (14 MB in
/// F16, under the 40 MB limit), sized to train on two CPU cores in a few hours.
///
/// `architecture` chooses the denoiser: `unet3d` (the default; `unet`, trained in the U-Net stage)
/// or `animatediff` (`image_unet` trained on images in the U-Net stage, then `motion_adapter`'s
/// motion modules on clips in the motion stage, `motion_training`).
public struct PretrainConfig: Codable, Equatable, Sendable {
    /// Which denoiser the run trains.
    public enum Architecture: String, Codable, Equatable, Sendable, CaseIterable {
        /// diffusers' `UNet3DConditionModel` (`unet`), trained in one stage on images and clips.
        case unet3d
        /// AnimateDiff's layout: the image U-Net (`image_unet`) on images in the U-Net stage, then
        /// the motion modules (`motion_adapter`) on clips in the motion stage; saved as an
        /// `AnimateDiffPipeline` folder with a `UNetMotionModel`.
        case animatediff
    }

    /// Which part of the synthetic world the data is drawn from.
    public enum World: String, Codable, Equatable, Sendable, CaseIterable {
        /// The whole world's train split (10 shapes, 12 colours, 3 sizes, textures, two-object scenes, 14 motions).
        case full
        /// The core world's train split (`customize world --core`): one plain object, 6 shapes, 8
        /// colours, medium or large, plain backgrounds, still/left/right/up/down.
        case core
        /// The core world with each moving object starting on the side it moves away from
        /// (`customize world --core --tied-start`): a pilot of whether a motion word that also
        /// tells the layout is read sooner.
        case coreTiedStart = "core-tied-start"
    }

    public var seed: UInt64
    /// `"full"` (the default), `"core"` or `"core-tied-start"`; `PretrainConfig.animateDiff()` uses the core world.
    public var world: World
    /// `"unet3d"` (the default) or `"animatediff"`.
    public var architecture: Architecture
    public var vae: AutoencoderKLConfig
    /// The 3-D U-Net of an `unet3d` run (unused by an `animatediff` run).
    public var unet: UNet3DConfig
    /// The image U-Net of an `animatediff` run (`UNet2DConditionModel` config.json keys).
    public var imageUNet: UNet2DConditionConfig
    /// The motion modules of an `animatediff` run (`MotionAdapter` config.json keys); they must fit
    /// `image_unet` (same `block_out_channels`, `motion_layers_per_block` = its `layers_per_block`).
    public var motionAdapter: MotionAdapterConfig
    /// `vocab_size`, `bos_token_id`, `eos_token_id` and `pad_token_id` are set from the tokenizer
    /// the run writes (the world's words plus CLIP's byte symbols).
    public var textEncoder: CLIPTextConfig
    /// The training noise schedule and the scheduler saved with the model.
    public var scheduler: SchedulerConfig
    public var vaeTraining: VAETraining
    public var textEncoderWarmup: TextEncoderWarmup
    /// The U-Net stage; in an `animatediff` run, the image stage (images only: `clip_fraction` 0).
    public var unetTraining: UNetTraining
    /// The motion stage of an `animatediff` run.
    public var motionTraining: MotionTraining
    public var preview: Preview

    /// Stage 1: the autoencoder alone, on world images.
    public struct VAETraining: Codable, Equatable, Sendable {
        public var trainer: TrainerOptions
        public var batchSize: Int
        public var l1Weight: Float
        public var l2Weight: Float
        /// Weight of the KL term (per-sample sum over latent entries, averaged over the batch), as LDM's `kl_weight`.
        public var klWeight: Float
        /// Extra weight of object pixels in the L1 and L2 terms: each pixel counts 1 + `objectWeight`
        /// where the data shows an object (`PretrainingData.maskedBatch`), 1 elsewhere, and the terms
        /// are weighted means. The world's objects cover a few percent of a picture, so a plain mean
        /// spends the autoencoder on backgrounds; nil or 0: plain means.
        public var objectWeight: Float?
        /// The posterior's log-variance at the start of training (`AutoencoderKL.setInitialLogVariance`);
        /// nil: as torch's initialisation leaves it (near 0, i.e. unit noise on the latents).
        public var initialLogvar: Float?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case trainer, batchSize = "batch_size", l1Weight = "l1_weight", l2Weight = "l2_weight", klWeight = "kl_weight"
            case objectWeight = "object_weight", initialLogvar = "initial_logvar"
        }

        public init(trainer: TrainerOptions = TrainerOptions(steps: 5000, learningRate: 1e-3, lrScheduler: "cosine", lrWarmupSteps: 100,
                                                             minLearningRate: 1e-4, adamWeightDecay: 0, checkpointingSteps: 250),
                    batchSize: Int = 8, l1Weight: Float = 1, l2Weight: Float = 1, klWeight: Float = 1e-6) {
            self.trainer = trainer
            self.batchSize = batchSize
            self.l1Weight = l1Weight
            self.l2Weight = l2Weight
            self.klWeight = klWeight
        }

        public init(from decoder: Decoder) throws {
            let d = VAETraining()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            trainer = try c.decodeIfPresent(TrainerOptions.self, forKey: .trainer) ?? d.trainer
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
            l1Weight = try c.decodeIfPresent(Float.self, forKey: .l1Weight) ?? d.l1Weight
            l2Weight = try c.decodeIfPresent(Float.self, forKey: .l2Weight) ?? d.l2Weight
            klWeight = try c.decodeIfPresent(Float.self, forKey: .klWeight) ?? d.klWeight
            objectWeight = try c.decodeIfPresent(Float.self, forKey: .objectWeight)
            initialLogvar = try c.decodeIfPresent(Float.self, forKey: .initialLogvar)
        }
    }

    /// Stage 1b: the text encoder alone, taught to tell every caption word in the states after its
    /// end marker (`TextEncoderWarmupObjective`); the U-Net stage starts from the result. 0 steps: off.
    public struct TextEncoderWarmup: Codable, Equatable, Sendable {
        public var trainer: TrainerOptions
        /// Captions per step.
        public var batchSize: Int
        /// Word positions the head predicts (captions' words beyond it are not predicted); at most
        /// the text encoder's positions less its two markers, which is what nil (the default) means.
        public var slots: Int?

        enum CodingKeys: String, CodingKey, CaseIterable { case trainer, batchSize = "batch_size", slots }

        public init(trainer: TrainerOptions = TrainerOptions(steps: 800, learningRate: 1e-3, adamWeightDecay: 1e-2, checkpointingSteps: 200),
                    batchSize: Int = 64, slots: Int? = nil) {
            self.trainer = trainer
            self.batchSize = batchSize
            self.slots = slots
        }

        public init(from decoder: Decoder) throws {
            let d = TextEncoderWarmup()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            trainer = try c.decodeIfPresent(TrainerOptions.self, forKey: .trainer) ?? d.trainer
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
            slots = try c.decodeIfPresent(Int.self, forKey: .slots)
        }
    }

    /// Stage 2: the U-Net (and the text encoder when `trainTextEncoder`), the autoencoder frozen.
    public struct UNetTraining: Codable, Equatable, Sendable {
        public var trainer: TrainerOptions
        /// Whether the text encoder trains with the U-Net (diffusers' `--train_text_encoder`), from
        /// the warmed-up encoder. On by default: an encoder that adapts to the U-Net made the U-Net
        /// read the caption sooner than a frozen one (README, stage 1b).
        public var trainTextEncoder: Bool
        /// With `trainTextEncoder`, the weight of the warm-up's objective kept as a second loss
        /// through this stage, on its own `warmupLossBatchSize` captions per step and with the
        /// warm-up's head (trained along), so the encoder adapts to the U-Net without losing what
        /// the warm-up taught it (trained through the U-Net's loss alone, after 1000 steps a swapped
        /// shape word moved the states after EOS 0.10 instead of 0.63). 0: off; a frozen encoder
        /// needs none.
        public var warmupLossWeight: Float
        public var warmupLossBatchSize: Int
        /// Images (one frame each) per image step.
        public var imageBatchSize: Int
        /// Clips per clip step.
        public var clipBatchSize: Int
        /// Frames per clip.
        public var clipFrames: Int
        /// The share of steps that train on clips (the rest on images).
        public var clipFraction: Float
        /// The share of captions replaced by the empty prompt, for classifier-free guidance.
        public var captionDropout: Float
        /// Min-SNR loss weighting's γ (diffusers' `--snr_gamma`, 5 in the paper); nil: plain MSE.
        public var snrGamma: Float?
        /// Extra weight of latent cells that show an object: each latent entry's squared error counts
        /// 1 + `objectWeight`·c, where c is the share of its pixels on an object
        /// (`PretrainingData.maskedBatch` averaged over the cell, as kohya's masked loss resizes
        /// masks by area), and each sample's error is the weighted mean. nil or 0: plain means.
        public var objectWeight: Float?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case trainer, trainTextEncoder = "train_text_encoder"
            case warmupLossWeight = "warmup_loss_weight", warmupLossBatchSize = "warmup_loss_batch_size"
            case imageBatchSize = "image_batch_size", clipBatchSize = "clip_batch_size", clipFrames = "clip_frames"
            case clipFraction = "clip_fraction", captionDropout = "caption_dropout", snrGamma = "snr_gamma"
            case objectWeight = "object_weight"
        }

        public init(trainer: TrainerOptions = TrainerOptions(steps: 12000, learningRate: 3e-4, lrScheduler: "cosine", lrWarmupSteps: 200,
                                                             minLearningRate: 3e-5, adamWeightDecay: 1e-2, emaDecay: 0.999,
                                                             checkpointingSteps: 250),
                    imageBatchSize: Int = 8, clipBatchSize: Int = 1, clipFrames: Int = 8, clipFraction: Float = 0.5,
                    captionDropout: Float = 0.1, snrGamma: Float? = nil, trainTextEncoder: Bool = true) {
            self.trainer = trainer
            self.trainTextEncoder = trainTextEncoder
            warmupLossWeight = 1
            warmupLossBatchSize = 16
            self.imageBatchSize = imageBatchSize
            self.clipBatchSize = clipBatchSize
            self.clipFrames = clipFrames
            self.clipFraction = clipFraction
            self.captionDropout = captionDropout
            self.snrGamma = snrGamma
        }

        public init(from decoder: Decoder) throws {
            let d = UNetTraining()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            trainer = try c.decodeIfPresent(TrainerOptions.self, forKey: .trainer) ?? d.trainer
            trainTextEncoder = try c.decodeIfPresent(Bool.self, forKey: .trainTextEncoder) ?? d.trainTextEncoder
            warmupLossWeight = try c.decodeIfPresent(Float.self, forKey: .warmupLossWeight) ?? d.warmupLossWeight
            warmupLossBatchSize = try c.decodeIfPresent(Int.self, forKey: .warmupLossBatchSize) ?? d.warmupLossBatchSize
            imageBatchSize = try c.decodeIfPresent(Int.self, forKey: .imageBatchSize) ?? d.imageBatchSize
            clipBatchSize = try c.decodeIfPresent(Int.self, forKey: .clipBatchSize) ?? d.clipBatchSize
            clipFrames = try c.decodeIfPresent(Int.self, forKey: .clipFrames) ?? d.clipFrames
            clipFraction = try c.decodeIfPresent(Float.self, forKey: .clipFraction) ?? d.clipFraction
            captionDropout = try c.decodeIfPresent(Float.self, forKey: .captionDropout) ?? d.captionDropout
            snrGamma = try c.decodeIfPresent(Float.self, forKey: .snrGamma) ?? d.snrGamma
            objectWeight = try c.decodeIfPresent(Float.self, forKey: .objectWeight)
        }
    }

    /// Stage 3 of an `animatediff` run: the motion modules (and what `trainable` adds) on clips,
    /// the autoencoder frozen, starting from the U-Net stage's averaged image U-Net and text encoder.
    public struct MotionTraining: Codable, Equatable, Sendable {
        /// What trains besides nothing else (everything not named stays frozen):
        public enum Trainable: String, Codable, Equatable, Sendable, CaseIterable {
            /// The motion modules alone (AnimateDiff's recipe: `freeze_unet2d_params`).
            case motionModules = "motion_modules"
            /// The motion modules and the text encoder.
            case motionModulesAndTextEncoder = "motion_modules+text_encoder"
            /// The motion modules, the spatial cross-attention keys and values (`attn2.to_k`,
            /// `attn2.to_v` outside the motion modules) and the text encoder.
            case motionModulesAndCrossAttention = "motion_modules+cross_attention"
            /// The whole U-Net, the text encoder frozen: the warm-up taught the encoder to tell every
            /// caption word in its padding states, motion words included, and a trained encoder
            /// erased the direction word there while the U-Net could not yet use it (issue 24).
            case unet
            /// The whole U-Net and the text encoder.
            case all

            /// Whether the U-Net parameter at `path` trains.
            public func trainsUNetParameter(_ path: String) -> Bool {
                if path.contains("motion_modules.") { return true }
                switch self {
                case .motionModules, .motionModulesAndTextEncoder: return false
                case .motionModulesAndCrossAttention: return path.contains(".attn2.to_k.") || path.contains(".attn2.to_v.")
                case .unet, .all: return true
                }
            }

            public var trainsTextEncoder: Bool {
                switch self {
                case .motionModules, .unet: return false
                case .motionModulesAndTextEncoder, .motionModulesAndCrossAttention, .all: return true
                }
            }
        }

        public var trainer: TrainerOptions
        /// Clips per step.
        public var clipBatchSize: Int
        /// Frames per clip (2 to the adapter's `motion_max_seq_length`).
        public var clipFrames: Int
        /// The share of captions replaced by the empty prompt, for classifier-free guidance.
        public var captionDropout: Float
        /// Min-SNR loss weighting's γ; nil: plain MSE.
        public var snrGamma: Float?
        public var trainable: Trainable
        /// diffusers' timestep bias (`TimestepBias`): `timestep_bias_strategy` none (the default),
        /// later, earlier or range, with `timestep_bias_multiplier`, `timestep_bias_portion`,
        /// `timestep_bias_begin` and `timestep_bias_end`.
        public var timestepBias = TimestepBias()
        /// Extra weight of latent cells that show the object, as `unet_training.object_weight`:
        /// a clip's direction lives in its object's cells alone. nil or 0: plain means.
        public var objectWeight: Float?
        /// The stage's first `steps` steps draw their clips from a part of the data alone (a
        /// curriculum); nil: every step draws from all of it.
        public var focus: Focus?

        /// A part of the data, named by lists of world words the data checks (`PretrainingData.focused`):
        /// `shapes`, `colours`, `backgrounds`, `sizes`, `motions`, each optional (left out: all).
        public struct Focus: Codable, Equatable, Sendable {
            public var steps: Int
            public var shapes: [String]?
            public var colours: [String]?
            public var backgrounds: [String]?
            public var sizes: [String]?
            public var motions: [String]?

            public init(steps: Int, shapes: [String]? = nil, colours: [String]? = nil, backgrounds: [String]? = nil,
                        sizes: [String]? = nil, motions: [String]? = nil) {
                self.steps = steps
                self.shapes = shapes
                self.colours = colours
                self.backgrounds = backgrounds
                self.sizes = sizes
                self.motions = motions
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case steps, shapes, colours, backgrounds, sizes, motions }
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case trainer, clipBatchSize = "clip_batch_size", clipFrames = "clip_frames", captionDropout = "caption_dropout"
            case snrGamma = "snr_gamma", trainable, objectWeight = "object_weight", focus
            case timestepBiasStrategy = "timestep_bias_strategy", timestepBiasMultiplier = "timestep_bias_multiplier"
            case timestepBiasPortion = "timestep_bias_portion", timestepBiasBegin = "timestep_bias_begin"
            case timestepBiasEnd = "timestep_bias_end"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(trainer, forKey: .trainer)
            try c.encode(clipBatchSize, forKey: .clipBatchSize)
            try c.encode(clipFrames, forKey: .clipFrames)
            try c.encode(captionDropout, forKey: .captionDropout)
            try c.encodeIfPresent(snrGamma, forKey: .snrGamma)
            try c.encode(trainable, forKey: .trainable)
            try c.encodeIfPresent(objectWeight, forKey: .objectWeight)
            try c.encodeIfPresent(focus, forKey: .focus)
            // The bias keys only when a bias is set, so configs without one read as before.
            if timestepBias != TimestepBias() {
                try c.encode(timestepBias.strategy, forKey: .timestepBiasStrategy)
                try c.encode(timestepBias.multiplier, forKey: .timestepBiasMultiplier)
                try c.encode(timestepBias.portion, forKey: .timestepBiasPortion)
                try c.encode(timestepBias.begin, forKey: .timestepBiasBegin)
                try c.encode(timestepBias.end, forKey: .timestepBiasEnd)
            }
        }

        /// Defaults: 4000 steps of 2 eight-frame clips, AdamW 3e-4 cosine to 3e-5 after 100 warm-up
        /// steps, weight decay 0.01, EMA 0.999, a checkpoint every 250 steps, 10% caption dropout,
        /// the motion modules alone.
        public init(trainer: TrainerOptions = TrainerOptions(steps: 4000, learningRate: 3e-4, lrScheduler: "cosine", lrWarmupSteps: 100,
                                                             minLearningRate: 3e-5, adamWeightDecay: 1e-2, emaDecay: 0.999,
                                                             checkpointingSteps: 250),
                    clipBatchSize: Int = 2, clipFrames: Int = 8, captionDropout: Float = 0.1, snrGamma: Float? = nil,
                    trainable: Trainable = .motionModules) {
            self.trainer = trainer
            self.clipBatchSize = clipBatchSize
            self.clipFrames = clipFrames
            self.captionDropout = captionDropout
            self.snrGamma = snrGamma
            self.trainable = trainable
        }

        public init(from decoder: Decoder) throws {
            let d = MotionTraining()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            trainer = try c.decodeIfPresent(TrainerOptions.self, forKey: .trainer) ?? d.trainer
            clipBatchSize = try c.decodeIfPresent(Int.self, forKey: .clipBatchSize) ?? d.clipBatchSize
            clipFrames = try c.decodeIfPresent(Int.self, forKey: .clipFrames) ?? d.clipFrames
            captionDropout = try c.decodeIfPresent(Float.self, forKey: .captionDropout) ?? d.captionDropout
            snrGamma = try c.decodeIfPresent(Float.self, forKey: .snrGamma) ?? d.snrGamma
            objectWeight = try c.decodeIfPresent(Float.self, forKey: .objectWeight)
            focus = try c.decodeIfPresent(Focus.self, forKey: .focus)
            if let name = try c.decodeIfPresent(String.self, forKey: .timestepBiasStrategy) {
                guard let value = TimestepBias.Strategy(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: .timestepBiasStrategy, in: c,
                        debugDescription: "unknown value \"\(name)\" (one of: \(TimestepBias.Strategy.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                timestepBias.strategy = value
            }
            timestepBias.multiplier = try c.decodeIfPresent(Float.self, forKey: .timestepBiasMultiplier) ?? timestepBias.multiplier
            timestepBias.portion = try c.decodeIfPresent(Double.self, forKey: .timestepBiasPortion) ?? timestepBias.portion
            timestepBias.begin = try c.decodeIfPresent(Int.self, forKey: .timestepBiasBegin) ?? timestepBias.begin
            timestepBias.end = try c.decodeIfPresent(Int.self, forKey: .timestepBiasEnd) ?? timestepBias.end
            if let name = try c.decodeIfPresent(String.self, forKey: .trainable) {
                guard let value = Trainable(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(forKey: .trainable, in: c,
                        debugDescription: "unknown value \"\(name)\" (one of: \(Trainable.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                trainable = value
            } else {
                trainable = d.trainable
            }
        }
    }

    /// Preview grids: autoencoder reconstructions of fixed images during stage 1, and samples of
    /// fixed prompts with the averaged weights during stage 2.
    public struct Preview: Codable, Equatable, Sendable {
        public struct Prompt: Codable, Equatable, Sendable {
            public var prompt: String
            public var frames: Int
            public init(prompt: String, frames: Int) {
                self.prompt = prompt
                self.frames = frames
            }
        }
        /// A grid every this many steps of each stage (0: none); a stage's last step always gets one when nonzero.
        public var every: Int
        public var prompts: [Prompt]
        public var steps: Int
        public var guidance: Float
        public var seed: UInt64

        enum CodingKeys: String, CodingKey, CaseIterable { case every, prompts, steps, guidance, seed }

        public init(every: Int = 500, prompts: [Prompt] = [
            Prompt(prompt: "a large red circle on a blue background", frames: 1),
            Prompt(prompt: "a small yellow striped square on a black background", frames: 1),
            Prompt(prompt: "a medium green triangle moving right on a white background", frames: 8),
            Prompt(prompt: "a large purple star growing on a gray background", frames: 8),
        ], steps: Int = 20, guidance: Float = 4, seed: UInt64 = 0) {
            self.every = every
            self.prompts = prompts
            self.steps = steps
            self.guidance = guidance
            self.seed = seed
        }

        public init(from decoder: Decoder) throws {
            let d = Preview()
            let c = try decoder.container(keyedBy: CodingKeys.self)
            every = try c.decodeIfPresent(Int.self, forKey: .every) ?? d.every
            prompts = try c.decodeIfPresent([Prompt].self, forKey: .prompts) ?? d.prompts
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
            guidance = try c.decodeIfPresent(Float.self, forKey: .guidance) ?? d.guidance
            seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case seed, world, architecture, vae, unet, scheduler, preview
        case imageUNet = "image_unet"
        case motionAdapter = "motion_adapter"
        case textEncoder = "text_encoder"
        case vaeTraining = "vae_training"
        case textEncoderWarmup = "text_encoder_warmup"
        case unetTraining = "unet_training"
        case motionTraining = "motion_training"
    }

    /// The compact default model and schedule: autoencoder [32, 64, 64] with 8 norm groups
    /// (64×64 pixels → 16×16×4 latents; a group of one channel is an instance norm, which erases
    /// a plain image's colour before `conv_out`, so every group holds at least 4 channels), U-Net [48, 96, 96] with one layer per block and 16-channel heads, a 3-layer
    /// 64-wide text encoder with 40 positions (the longest world caption is 32 tokens with its
    /// markers); about 7 M parameters, 14 MB in F16. Measured on two idle cores: 0.74 s per
    /// autoencoder step (8 images), 0.59 s per U-Net step (8 images or one 8-frame clip).
    public init() {
        seed = 0
        var vae = AutoencoderKLConfig(blockOutChannels: [32, 64, 64], layersPerBlock: 1, latentChannels: 4, normNumGroups: 8)
        vae.sampleSize = .single(64)
        vae.scalingFactor = 1
        self.vae = vae
        var unet = UNet3DConfig(blockOutChannels: [48, 96, 96], layersPerBlock: 1, normNumGroups: 16, crossAttentionDim: 64,
                                attentionHeadDim: 16, inChannels: 4, outChannels: 4)
        unet.sampleSize = .single(16)
        self.unet = unet
        architecture = .unet3d
        world = .full
        // AnimateDiff's compact base, sized like the PyTorch pilot (../shared/peer/pilot_core.py):
        // image U-Net [48, 96, 96], one layer per block, 16 norm groups, 4 heads per block
        // (`attention_head_dim` 4, diffusers' quirk: heads), cross-attention 64 wide (the text
        // encoder's hidden size), 3.3 M parameters; motion modules on the same blocks, one per
        // layer, 4 heads, 16 norm groups, up to 32 frames, with a middle-block module (1.6 M).
        imageUNet = UNet2DConditionConfig(blockOutChannels: [48, 96, 96], layersPerBlock: 1, normNumGroups: 16, crossAttentionDim: 64,
                                          attentionHeads: 4, inChannels: 4, outChannels: 4, sampleSize: 16)
        motionAdapter = MotionAdapterConfig(blockOutChannels: [48, 96, 96], layersPerBlock: 1, heads: 4, normNumGroups: 16,
                                            maxSequenceLength: 32, useMidBlock: true)
        var text = CLIPTextConfig(vocabSize: 1, hiddenSize: 64, intermediateSize: 256, numHiddenLayers: 3,
                                  numAttentionHeads: 4, maxPositionEmbeddings: 40, hiddenAct: "quick_gelu")
        text.projectionDim = 64
        textEncoder = text
        var scheduler = SchedulerConfig()
        scheduler.className = "DDIMScheduler"
        scheduler.betaSchedule = .scaledLinear
        scheduler.betaStart = 0.00085
        scheduler.betaEnd = 0.012
        scheduler.clipSample = false
        scheduler.setAlphaToOne = false
        scheduler.stepsOffset = 1
        // Velocity prediction on a schedule rescaled to zero terminal SNR, sampled from t = 999
        // ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Lin et al. 2024). On
        // Stable Diffusion's own schedule, √ᾱ at t = 999 is 0.068: a noised latent still tells its
        // background colour, so the U-Net never had to read it from the caption. Measured on this
        // world with ε-prediction: after 3400 steps the caption changed the loss by 2 % (right
        // against shuffled captions) and renders took their background from the seed, not the
        // prompt; with v-prediction the same weights began to follow the prompt within 400 steps.
        scheduler.predictionType = .vPrediction
        scheduler.rescaleBetasZeroSnr = true
        scheduler.timestepSpacing = .trailing
        self.scheduler = scheduler
        vaeTraining = VAETraining()
        textEncoderWarmup = TextEncoderWarmup()
        unetTraining = UNetTraining()
        motionTraining = MotionTraining()
        preview = Preview()
    }

    /// The built-in compact model in AnimateDiff's layout: `architecture` "animatediff" and an
    /// image-only U-Net stage (`unet_training.clip_fraction` 0), the rest as `init()`.
    public static func animateDiff() -> PretrainConfig {
        var config = PretrainConfig()
        config.architecture = .animatediff
        config.world = .core
        config.unetTraining.clipFraction = 0
        config.preview.prompts = [
            Preview.Prompt(prompt: "a large red circle on a blue background", frames: 1),
            Preview.Prompt(prompt: "a medium yellow star on a black background", frames: 1),
            Preview.Prompt(prompt: "a large green triangle moving right quickly on a white background", frames: 8),
            Preview.Prompt(prompt: "a medium purple heart moving up quickly on a gray background", frames: 8),
        ]
        return config
    }

    public init(from decoder: Decoder) throws {
        let d = PretrainConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        if let name = try c.decodeIfPresent(String.self, forKey: .architecture) {
            guard let value = Architecture(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .architecture, in: c,
                    debugDescription: "unknown architecture \"\(name)\" (one of: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            architecture = value
        } else {
            architecture = d.architecture
        }
        if let name = try c.decodeIfPresent(String.self, forKey: .world) {
            guard let value = World(rawValue: name) else {
                throw DecodingError.dataCorruptedError(forKey: .world, in: c,
                    debugDescription: "unknown world \"\(name)\" (one of: \(World.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            world = value
        } else {
            world = d.world
        }
        vae = try c.decodeIfPresent(AutoencoderKLConfig.self, forKey: .vae) ?? d.vae
        unet = try c.decodeIfPresent(UNet3DConfig.self, forKey: .unet) ?? d.unet
        imageUNet = try c.decodeIfPresent(UNet2DConditionConfig.self, forKey: .imageUNet) ?? d.imageUNet
        motionAdapter = try c.decodeIfPresent(MotionAdapterConfig.self, forKey: .motionAdapter) ?? d.motionAdapter
        textEncoder = try c.decodeIfPresent(CLIPTextConfig.self, forKey: .textEncoder) ?? d.textEncoder
        scheduler = try c.decodeIfPresent(SchedulerConfig.self, forKey: .scheduler) ?? d.scheduler
        vaeTraining = try c.decodeIfPresent(VAETraining.self, forKey: .vaeTraining) ?? d.vaeTraining
        textEncoderWarmup = try c.decodeIfPresent(TextEncoderWarmup.self, forKey: .textEncoderWarmup) ?? d.textEncoderWarmup
        unetTraining = try c.decodeIfPresent(UNetTraining.self, forKey: .unetTraining) ?? d.unetTraining
        // An animatediff run's U-Net stage is images only: clip_fraction defaults to 0 there.
        if architecture == .animatediff {
            let section = try? c.nestedContainer(keyedBy: UNetTraining.CodingKeys.self, forKey: .unetTraining)
            if !(section?.contains(.clipFraction) ?? false) { unetTraining.clipFraction = 0 }
        }
        motionTraining = try c.decodeIfPresent(MotionTraining.self, forKey: .motionTraining) ?? d.motionTraining
        preview = try c.decodeIfPresent(Preview.self, forKey: .preview) ?? d.preview
    }

    /// Reads a config file; errors name the file and the key.
    public static func load(path: String) throws -> PretrainConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw TrainingError.badOptions(file: path, key: "(file)", reason: "cannot read: \(error.localizedDescription)")
        }
        // Unknown keys first: a misspelt key would otherwise read as a missing one.
        if let (key, known) = Self.unknownKey(in: data) {
            throw TrainingError.badOptions(file: path, key: key, reason: "unknown key (known here: \(known.sorted().joined(separator: ", ")))")
        }
        let config: PretrainConfig
        do { config = try JSONDecoder().decode(PretrainConfig.self, from: data) } catch let error as DecodingError {
            throw TrainingError.badOptions(file: path, key: Self.keyPath(of: error), reason: Self.reason(of: error))
        }
        try config.validate(file: path)
        return config
    }

    /// The config as JSON (sorted keys, the form saved in a run folder).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// The word slots the warm-up's head predicts: `text_encoder_warmup.slots`, or every position
    /// between the text encoder's markers.
    public var warmupSlots: Int { textEncoderWarmup.slots ?? max(1, textEncoder.maxPositionEmbeddings - 2) }

    /// Throws naming the first key that cannot work: the model configs' own checks plus the
    /// couplings between them (latent channels, cross-attention width, sample sizes, the motion
    /// modules against the image U-Net); an animatediff run checks `image_unet`, `motion_adapter`
    /// and `motion_training` instead of `unet`.
    public func validate(file: String) throws {
        try vae.validate(file: file + " (vae)")
        try textEncoder.validate(file: file + " (text_encoder)")
        try vaeTraining.trainer.validate(file: file + " (vae_training.trainer)")
        try textEncoderWarmup.trainer.validate(file: file + " (text_encoder_warmup.trainer)")
        try unetTraining.trainer.validate(file: file + " (unet_training.trainer)")
        func bad(_ key: String, _ reason: String) -> TrainingError { .badOptions(file: file, key: key, reason: reason) }
        switch architecture {
        case .unet3d:
            try unet.validate(file: file + " (unet)")
            guard unet.inChannels == vae.latentChannels, unet.outChannels == vae.latentChannels else {
                throw bad("unet.in_channels", "in_channels and out_channels must equal the VAE's latent_channels \(vae.latentChannels)")
            }
            guard unet.crossAttentionDim == textEncoder.hiddenSize else {
                throw bad("unet.cross_attention_dim", "\(unet.crossAttentionDim) must equal text_encoder.hidden_size \(textEncoder.hiddenSize)")
            }
        case .animatediff:
            try imageUNet.validate(file: file + " (image_unet)")
            try motionAdapter.validate(file: file + " (motion_adapter)")
            try motionAdapter.checkFits(imageUNet, file: file + " (motion_adapter)")
            guard imageUNet.inChannels == vae.latentChannels, imageUNet.outChannels == vae.latentChannels else {
                throw bad("image_unet.in_channels", "in_channels and out_channels must equal the VAE's latent_channels \(vae.latentChannels)")
            }
            guard imageUNet.crossAttentionDim == textEncoder.hiddenSize else {
                throw bad("image_unet.cross_attention_dim", "\(imageUNet.crossAttentionDim) must equal text_encoder.hidden_size \(textEncoder.hiddenSize)")
            }
            guard unetTraining.clipFraction == 0 else {
                throw bad("unet_training.clip_fraction", "must be 0 in an animatediff run: its U-Net stage trains the image U-Net on images only (clips train in motion_training)")
            }
            try motionTraining.trainer.validate(file: file + " (motion_training.trainer)")
            guard motionTraining.clipBatchSize >= 1 else { throw bad("motion_training.clip_batch_size", "must be at least 1") }
            guard (2...motionAdapter.motionMaxSeqLength).contains(motionTraining.clipFrames) else {
                throw bad("motion_training.clip_frames", "must lie in 2...\(motionAdapter.motionMaxSeqLength) (a clip of one frame runs no motion module; motion_adapter.motion_max_seq_length is the most), got \(motionTraining.clipFrames)")
            }
            guard (0...1).contains(motionTraining.captionDropout) else { throw bad("motion_training.caption_dropout", "must lie in [0, 1]") }
            if let gamma = motionTraining.snrGamma, !(gamma > 0 && gamma.isFinite) {
                throw bad("motion_training.snr_gamma", "must be a positive number (5 in the Min-SNR paper), got \(gamma)")
            }
            if let weight = motionTraining.objectWeight, !(weight >= 0 && weight.isFinite) {
                throw bad("motion_training.object_weight", "must be a number ≥ 0, got \(weight)")
            }
            // A leg without a motion stage (--motion-steps 0) may keep the focus for a later one.
            if let focus = motionTraining.focus, focus.steps < 1 || (motionTraining.trainer.steps > 0 && focus.steps > motionTraining.trainer.steps) {
                throw bad("motion_training.focus.steps", "must lie in 1...\(motionTraining.trainer.steps) (motion_training.trainer.max_train_steps), got \(focus.steps)")
            }
            if let problem = motionTraining.timestepBias.problem(timesteps: scheduler.numTrainTimesteps) {
                throw bad("motion_training.timestep_bias_" + problem.key, problem.reason)
            }
            for (index, prompt) in preview.prompts.enumerated() where prompt.frames > motionAdapter.motionMaxSeqLength {
                throw bad("preview.prompts[\(index)].frames", "at most motion_adapter.motion_max_seq_length \(motionAdapter.motionMaxSeqLength), got \(prompt.frames)")
            }
        }
        guard vaeTraining.batchSize >= 1 else { throw bad("vae_training.batch_size", "must be at least 1") }
        if let weight = vaeTraining.objectWeight, !(weight >= 0 && weight.isFinite) {
            throw bad("vae_training.object_weight", "must be a number at least 0, got \(weight)")
        }
        if let logvar = vaeTraining.initialLogvar, !(-30...20).contains(logvar) {
            throw bad("vae_training.initial_logvar", "must lie in [-30, 20], where the posterior clamps its log-variance, got \(logvar)")
        }
        guard textEncoderWarmup.batchSize >= 1 else { throw bad("text_encoder_warmup.batch_size", "must be at least 1") }
        let wordPositions = textEncoder.maxPositionEmbeddings - 2
        if let slots = textEncoderWarmup.slots, !(1...max(1, wordPositions)).contains(slots) {
            throw bad("text_encoder_warmup.slots", "must lie in 1...\(wordPositions) (the text encoder's \(textEncoder.maxPositionEmbeddings) positions less its two markers), got \(slots)")
        }
        guard unetTraining.imageBatchSize >= 1 else { throw bad("unet_training.image_batch_size", "must be at least 1") }
        guard unetTraining.clipBatchSize >= 1 else { throw bad("unet_training.clip_batch_size", "must be at least 1") }
        guard unetTraining.clipFrames >= 1 else { throw bad("unet_training.clip_frames", "must be at least 1") }
        guard (0...1).contains(unetTraining.clipFraction) else { throw bad("unet_training.clip_fraction", "must lie in [0, 1]") }
        guard (0...1).contains(unetTraining.captionDropout) else { throw bad("unet_training.caption_dropout", "must lie in [0, 1]") }
        if let weight = unetTraining.objectWeight, !(weight >= 0 && weight.isFinite) {
            throw bad("unet_training.object_weight", "must be a number at least 0, got \(weight)")
        }
        guard unetTraining.warmupLossWeight >= 0, unetTraining.warmupLossWeight.isFinite else {
            throw bad("unet_training.warmup_loss_weight", "must be a number at least 0, got \(unetTraining.warmupLossWeight)")
        }
        guard unetTraining.warmupLossBatchSize >= 1 else { throw bad("unet_training.warmup_loss_batch_size", "must be at least 1") }
        if let gamma = unetTraining.snrGamma, !(gamma > 0 && gamma.isFinite) {
            throw bad("unet_training.snr_gamma", "must be a positive number (5 in the Min-SNR paper), got \(gamma)")
        }
        guard preview.every >= 0 else { throw bad("preview.every", "must not be negative") }
        guard preview.steps >= 1 else { throw bad("preview.steps", "must be at least 1") }
        for (index, prompt) in preview.prompts.enumerated() where prompt.frames < 1 {
            throw bad("preview.prompts[\(index)].frames", "must be at least 1")
        }
    }

    /// The first key of `data` (a config file) that this config does not read, as a dotted path,
    /// with the keys that would have been read there. The training, warm-up and preview sections
    /// and the top level are ours and checked; the model sections (`vae`, `unet`, `image_unet`,
    /// `motion_adapter`, `text_encoder`, `scheduler`) are read as diffusers reads config.json.
    static func unknownKey(in data: Data) -> (key: String, known: Set<String>)? {
        guard let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        func names<K: CaseIterable & CodingKey>(_: K.Type) -> Set<String> { Set(K.allCases.map(\.stringValue)) }
        let trainerKeys = names(TrainerOptions.CodingKeys.self)
        func check(_ object: Any?, _ path: String, _ known: Set<String>,
                   nested: [String: (Any?, String) -> (String, Set<String>)?] = [:]) -> (String, Set<String>)? {
            guard let object = object as? [String: Any] else { return nil }
            for key in object.keys.sorted() {
                let keyPath = path.isEmpty ? key : path + "." + key
                guard known.contains(key) else { return (keyPath, known) }
                if let inner = nested[key], let found = inner(object[key], keyPath) { return found }
            }
            return nil
        }
        let trainer: [String: (Any?, String) -> (String, Set<String>)?] = ["trainer": { check($0, $1, trainerKeys) }]
        return check(top, "", names(CodingKeys.self), nested: [
            CodingKeys.vaeTraining.rawValue: { check($0, $1, names(VAETraining.CodingKeys.self), nested: trainer) },
            CodingKeys.textEncoderWarmup.rawValue: { check($0, $1, names(TextEncoderWarmup.CodingKeys.self), nested: trainer) },
            CodingKeys.unetTraining.rawValue: { check($0, $1, names(UNetTraining.CodingKeys.self), nested: trainer) },
            CodingKeys.motionTraining.rawValue: {
                check($0, $1, names(MotionTraining.CodingKeys.self),
                      nested: trainer.merging(["focus": { check($0, $1, names(MotionTraining.Focus.CodingKeys.self)) }]) { $1 })
            },
            CodingKeys.preview.rawValue: { object, path in
                check(object, path, names(Preview.CodingKeys.self), nested: ["prompts": { prompts, path in
                    for (index, prompt) in ((prompts as? [Any]) ?? []).enumerated() {
                        if let found = check(prompt, "\(path)[\(index)]", ["prompt", "frames"]) { return found }
                    }
                    return nil
                }])
            },
        ])
    }

    static func keyPath(of error: DecodingError) -> String {
        let path: [CodingKey]
        switch error {
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context): path = context.codingPath
        case let .keyNotFound(key, context): path = context.codingPath + [key]
        @unknown default: path = []
        }
        guard !path.isEmpty else { return "(top level)" }
        return path.reduce("") { key, element in
            element.intValue.map { key + "[\($0)]" } ?? (key.isEmpty ? element.stringValue : key + "." + element.stringValue)
        }
    }

    static func reason(of error: DecodingError) -> String {
        switch error {
        case let .typeMismatch(type, context): return "expected \(type): \(context.debugDescription)"
        case let .valueNotFound(type, context): return "expected \(type): \(context.debugDescription)"
        case let .keyNotFound(key, _): return "missing key \(key.stringValue)"
        case let .dataCorrupted(context): return context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
