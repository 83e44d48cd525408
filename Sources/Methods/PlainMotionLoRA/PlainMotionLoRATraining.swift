import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// The baseline MotionDirector is measured against (issue 6's "plain single-path LoRA"): one LoRA on
/// every layer MotionDirector adapts — in each spatial transformer the self-attention
/// `attn1.to_q/to_k/to_v/to_out.0` and the feed-forward `ff.net.0.proj`, `ff.net.2`
/// (`ModulePattern.motionDirectorSpatial`), and in each temporal transformer (`…temp_attentions.N`
/// and `transformer_in`) `attn1`, `attn2` and `ff` (`.motionDirectorTemporal`) — trained as diffusers'
/// text-to-video fine-tuning trains: every step noises a whole clip at a uniform timestep and
/// regresses the noise with the clip's caption by plain MSE. No spatial path, no frozen per-clip
/// appearance LoRA, no appearance debiasing: whatever the clips share, look and motion alike, goes
/// into the one adapter.
///
/// It takes MotionDirector's config (rank, dropout, learning rate, AdamW, steps, checkpoints,
/// previews, seed, clip sampling), so a baseline made with a run's config differs from the run only
/// in the method; the keys that concern the split (`single_spatial_lora`, `train_temporal_lora`,
/// `random_hflip_img`, `debias_beta`, `spatial_lora_off_probability`) are set to what this does
/// (`plainConfig`) and recorded so. Clips never flip: a flipped clip moves the other way.
///
/// The run folder holds plain_run.json, latents.safetensors, checkpoint-NNNNNN/, loss.csv (see
/// `AdapterTraining`; `resumingIn` continues from the newest checkpoint, bit for bit) and
/// plain.safetensors (PEFT keys, method "plain-motion-lora"), rewritten at every checkpoint.
public final class PlainMotionLoRATraining {
    public static let runFile = "plain_run.json"
    public static let adapterFile = "plain.safetensors"
    public static let adapterName = "plain"
    public static let method = "plain-motion-lora"
    public static let targets = ModulePattern.motionDirectorSpatial + ModulePattern.motionDirectorTemporal
    static let runDescription = "plain LoRA run"

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public let config: MotionDirectorConfig
    public let clips: [MotionTrainingClip]
    public let baseModel: BaseModelIdentity
    public let adapters: AdapterSet
    public let training: AdapterTraining
    /// Called with each preview's samples (one per validation prompt) and the step.
    public var onPreview: ((Int, [PreviewSample]) throws -> Void)?

    private let textStates: [Tensor]
    private let scheduler: DDPMScheduler
    private var previewPrior: Tensor?

    /// `config` with the keys of MotionDirector's split set to what a single path does: one adapter
    /// trained on whole clips (`train_temporal_lora` true, no shared or per-clip spatial LoRA), no
    /// flips, no debiasing (β = 0), no switching off.
    public static func plainConfig(_ config: MotionDirectorConfig) -> MotionDirectorConfig {
        var plain = config
        plain.singleSpatialLoRA = false
        plain.trainTemporalLoRA = true
        plain.randomHorizontalFlip = -1
        plain.debiasBeta = 0
        plain.spatialLoRAOffProbability = 0
        plain.validationData.spatialScale = 0
        return plain
    }

    /// Starts a new run in `folder` (absent or empty) on `clips` with `plainConfig(config)`.
    public convenience init(newRunIn folder: String, pipeline: TextToVideoPipeline, config: MotionDirectorConfig,
                            clips: [MotionTrainingClip], baseModel: BaseModelIdentity) throws {
        var record = MotionDirectorTraining.RunRecord(config: Self.plainConfig(config),
                                                      clips: clips.map { .init(name: $0.name, caption: $0.caption) },
                                                      baseModel: baseModel)
        record.method = Self.method
        try MotionRunFolder.create(folder, runFile: Self.runFile, what: Self.runDescription, record: record, clips: clips, pipeline: pipeline)
        try self.init(folder: folder, pipeline: pipeline, config: record.config, clips: clips, baseModel: baseModel)
    }

    /// Opens the run in `folder` to continue it; `adjust` may change the step count, the intervals and
    /// the previews.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout MotionDirectorConfig) -> Void = { _ in }) throws {
        let (record, clips) = try MotionRunFolder.reopen(folder, runFile: Self.runFile, what: Self.runDescription, method: Self.method,
                                                         pipeline: pipeline, baseModel: baseModel, adjust: adjust)
        try self.init(folder: folder, pipeline: pipeline, config: record.config, clips: clips, baseModel: record.baseModel)
    }

    private init(folder: String, pipeline: TextToVideoPipeline, config: MotionDirectorConfig, clips: [MotionTrainingClip],
                 baseModel: BaseModelIdentity) throws {
        self.folder = folder
        self.pipeline = pipeline
        self.config = config
        self.clips = clips
        self.baseModel = baseModel
        adapters = AdapterSet(model: pipeline.unet, component: "unet")
        try adapters.inject(Self.adapterName, config: LoRAConfig(rank: config.loraRank, dropout: config.loraDropout),
                            targets: Self.targets, generator: RandomGenerator(seed: config.seed).derived(0x91A1_4))
        training = try AdapterTraining(folder: folder, adapters: adapters, trainedAdapters: [Self.adapterName],
                                       options: config.trainerOptions(clips: clips.count))
        textStates = try clips.map { try pipeline.encodePrompt($0.caption) }
        scheduler = DDPMScheduler(config: pipeline.schedulerConfig)
        try training.resume()
    }

    /// Steps already done (from the checkpoint resumed, or 0).
    public var completedSteps: Int { training.step }

    /// The path of plain.safetensors in the run folder.
    public var adapterPath: String { MotionRunFolder.path(folder, Self.adapterFile) }

    /// Trains the remaining steps, then writes plain.safetensors; returns its path.
    @discardableResult
    public func run(dtype: SafeTensors.DType = .f32) throws -> String {
        training.onCheckpoint = { [weak self] _ in _ = try self?.saveAdapter(dtype: dtype) }
        let previewing = config.validationData.samplePreview && config.validationSteps > 0 && onPreview != nil
        training.previewEvery = previewing ? config.validationSteps : 0
        training.preview = { [weak self] step in
            guard let self, let onPreview = self.onPreview else { return }
            try onPreview(step, try self.previewSamples())
        }
        try training.run { [unowned self] step, random in try self.loss(step: step, random: &random) }
        return try saveAdapter(dtype: dtype)
    }

    /// The clip of step `step`: MotionDirector's order (each clip once per epoch, shuffled from the seed).
    public func clipOrder(step: Int) -> Int {
        MotionRunFolder.clipOrder(step: step, count: clips.count, seed: config.seed)
    }

    /// Step `step`'s loss (0-based): MSE(ε̂, ε) over the whole noisy clip, the plain LoRA on.
    func loss(step: Int, random: inout RandomGenerator) throws -> Tensor {
        let index = clipOrder(step: step)
        let latents = clips[index].latents
        let timestep = try random.integer(below: scheduler.config.numTrainTimesteps)
        var noiseGenerator = random.derived(0), dropout = random.derived(1)
        let noise = noiseGenerator.normal(latents.shape)
        let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: [timestep])
        let prediction = try pipeline.unet(sample: noisy, timesteps: [Float(timestep)], encoderHiddenStates: textStates[index],
                                           dropoutGenerator: &dropout)
        return try Tensor.mseLoss(prediction, MotionDirectorStep.target(scheduler, latents: latents, noise: noise, timestep: timestep))
    }

    /// Writes plain.safetensors (PEFT keys; method, base model and settings in the metadata).
    @discardableResult
    public func saveAdapter(dtype: SafeTensors.DType = .f32) throws -> String {
        let settings: [String: JSONValue] = [
            "steps": .number(Double(training.step)),
            "max_train_steps": .number(Double(config.maxTrainSteps)),
            "learning_rate": .number(config.learningRate),
            "adam_weight_decay": .number(config.weightDecay(clips: clips.count)),
            "lora_rank": .number(Double(config.loraRank)),
            "lora_unet_dropout": .number(config.loraDropout),
            "n_sample_frames": .number(Double(clips.first?.latents.shape[2] ?? 0)),
            "seed": .number(Double(config.seed)),
            "clips": .array(clips.map { .string($0.name) }),
            "captions": .array(clips.map { .string($0.caption) }),
        ]
        try adapters.save(Self.adapterName, to: adapterPath,
                          metadata: LoRAFileMetadata(method: Self.method, baseModel: baseModel, training: settings), dtype: dtype)
        return adapterPath
    }

    /// The validation prompts rendered with the plain LoRA at strength 1.
    func previewSamples() throws -> [PreviewSample] {
        try MotionPreviews.render(
            pipeline: pipeline, validation: config.validationData, clip: clips[0], inversion: &previewPrior,
            adaptersOff: { try adapters.setEnabled(false, for: Self.adapterName) },
            adaptersOn: {
                try adapters.setTraining(generator: nil)
                try adapters.setEnabled(true, for: Self.adapterName)
            })
    }
}
