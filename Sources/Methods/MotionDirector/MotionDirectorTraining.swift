import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// A MotionDirector run (showlab/MotionDirector `MotionDirector_train.py`, as METHODS.md states
/// it): from a few clips of one motion, a temporal LoRA that carries the motion and one spatial LoRA
/// per clip (or one shared) that absorbs each clip's look, trained by the two paths of
/// `MotionDirectorStep`.
///
/// The run folder holds:
/// - motion_run.json: the resolved config, the clips (name, caption, spatial file) and the base model;
/// - latents.safetensors: the cached latents (the VAE encodes each clip once);
/// - checkpoint-NNNNNN/ and loss.csv (see `AdapterTraining`): `--resume` continues from the newest
///   checkpoint and loses at most one checkpoint interval;
/// - temporal.safetensors and spatial-<clip>.safetensors: PEFT-style LoRA files
///   (`unet.<path>.lora_A.weight`, with rank, alpha, targets, base model, method and settings in
///   the metadata), rewritten at every checkpoint and at the end.
public final class MotionDirectorTraining {
    public static let runFile = "motion_run.json"
    public static let cacheFile = "latents.safetensors"
    public static let temporalFile = "temporal.safetensors"

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public private(set) var config: MotionDirectorConfig
    public let clips: [MotionTrainingClip]
    public let baseModel: BaseModelIdentity
    public let adapters: MotionDirectorAdapters
    public let training: AdapterTraining
    /// The spatial LoRA files' names, one per spatial adapter.
    public let spatialFiles: [String]
    /// Called with each preview's samples (one per validation prompt) and the step.
    public var onPreview: ((Int, [PreviewSample]) throws -> Void)?

    private let textStates: [Tensor]
    private let step: MotionDirectorStep
    private var previewPrior: Tensor?

    /// What motion_run.json holds.
    struct RunRecord: Codable {
        static let motionDirectorMethod = "motiondirector"

        var method = motionDirectorMethod
        var config: MotionDirectorConfig
        var clips: [Clip]
        var baseModel: BaseModelIdentity

        struct Clip: Codable, Equatable {
            var name: String
            var caption: String
        }

        enum CodingKeys: String, CodingKey {
            case method, config, clips
            case baseModel = "base_model"
        }
    }

    /// Starts a new run in `folder` (absent or empty) on `clips`, whose latents are cached there.
    public convenience init(newRunIn folder: String, pipeline: TextToVideoPipeline, config: MotionDirectorConfig,
                            clips: [MotionTrainingClip], baseModel: BaseModelIdentity) throws {
        let record = RunRecord(config: config, clips: clips.map { .init(name: $0.name, caption: $0.caption) }, baseModel: baseModel)
        try MotionRunFolder.create(folder, runFile: Self.runFile, what: Self.runDescription, record: record, clips: clips, pipeline: pipeline)
        try self.init(folder: folder, pipeline: pipeline, config: config, clips: clips, baseModel: baseModel)
    }

    /// Opens the run in `folder` to continue it. `adjust` may change the step count, the intervals and
    /// the previews; the adapters, data and seed stay as the run started.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout MotionDirectorConfig) -> Void = { _ in }) throws {
        let (record, clips) = try MotionRunFolder.reopen(folder, runFile: Self.runFile, what: Self.runDescription,
                                                         method: RunRecord.motionDirectorMethod, pipeline: pipeline,
                                                         baseModel: baseModel, adjust: adjust)
        try self.init(folder: folder, pipeline: pipeline, config: record.config, clips: clips, baseModel: record.baseModel)
    }

    /// The config recorded in the run folder `folder` (what `train-motion` resolved when it started).
    public static func recordedConfig(in folder: String) throws -> MotionDirectorConfig {
        try MotionRunFolder.read(folder, runFile: runFile, what: runDescription).config
    }

    /// The clips (file name and caption, in training order) recorded in the run folder `folder`.
    public static func recordedClips(in folder: String) throws -> [(name: String, caption: String)] {
        try MotionRunFolder.read(folder, runFile: runFile, what: runDescription).clips.map { ($0.name, $0.caption) }
    }

    static let runDescription = "MotionDirector run"

    private init(folder: String, pipeline: TextToVideoPipeline, config: MotionDirectorConfig, clips: [MotionTrainingClip],
                 baseModel: BaseModelIdentity) throws {
        self.folder = folder
        self.pipeline = pipeline
        self.config = config
        self.clips = clips
        self.baseModel = baseModel
        let spatialCount = config.singleSpatialLoRA ? 1 : clips.count
        adapters = try MotionDirectorAdapters(
            unet: pipeline.unet, spatialCount: spatialCount, temporal: config.trainTemporalLoRA,
            config: LoRAConfig(rank: config.loraRank, dropout: config.loraDropout),
            generator: RandomGenerator(seed: config.seed).derived(0x10_BA_1717))
        spatialFiles = config.singleSpatialLoRA ? ["spatial-shared.safetensors"] : Self.spatialFileNames(clips.map(\.name))
        training = try AdapterTraining(folder: folder, adapters: adapters.set, trainedAdapters: adapters.trainedNames,
                                       options: config.trainerOptions(clips: clips.count))
        textStates = try clips.map { try pipeline.encodePrompt($0.caption) }
        step = MotionDirectorStep(unet: pipeline.unet, adapters: adapters, scheduler: DDPMScheduler(config: pipeline.schedulerConfig),
                                  config: config)
        try training.resume()
    }

    /// Steps already done (from the checkpoint resumed, or 0).
    public var completedSteps: Int { training.step }

    /// Trains the remaining steps, then writes the adapter files; returns their paths.
    @discardableResult
    public func run() throws -> [String] {
        training.onCheckpoint = { [weak self] _ in _ = try self?.saveAdapters() }
        let previewing = config.validationData.samplePreview && config.validationSteps > 0 && onPreview != nil
        training.previewEvery = previewing ? config.validationSteps : 0
        training.preview = { [weak self] step in
            guard let self, let onPreview = self.onPreview else { return }
            try onPreview(step, try self.previewSamples())
        }
        try training.run { [unowned self] step, random in
            try self.loss(step: step, random: &random).loss
        }
        return try saveAdapters()
    }

    /// Step `step`'s loss (0-based): its clip, chosen by a per-epoch shuffle of the clips.
    func loss(step index: Int, random: inout RandomGenerator) throws -> MotionDirectorStep.Outcome {
        let clipIndex = clipOrder(step: index)
        let spatial = adapters.spatialNames[config.singleSpatialLoRA ? 0 : clipIndex]
        return try step.run(clip: clips[clipIndex], spatialAdapter: spatial, textStates: textStates[clipIndex], step: index,
                            random: &random)
    }

    /// The clip of step `step`: every epoch (one pass over the clips) visits each clip once, in an
    /// order shuffled from (seed, epoch) — the reference's shuffled data loader with batch size 1.
    public func clipOrder(step: Int) -> Int {
        MotionRunFolder.clipOrder(step: step, count: clips.count, seed: config.seed)
    }

    /// Writes temporal.safetensors (when trained) and the spatial files; returns their paths.
    @discardableResult
    public func saveAdapters(dtype: SafeTensors.DType = .f32) throws -> [String] {
        var written: [String] = []
        let clipNames: JSONValue = .array(clips.map { .string($0.name) })
        if adapters.hasTemporal {
            let path = Self.path(folder, Self.temporalFile)
            var training = trainingSettings()
            training["clips"] = clipNames
            training["captions"] = .array(clips.map { .string($0.caption) })
            try adapters.set.save(MotionDirectorAdapters.temporalName, to: path, metadata: LoRAFileMetadata(
                method: "motiondirector-temporal", baseModel: baseModel, training: training), dtype: dtype)
            written.append(path)
        }
        for (index, name) in adapters.spatialNames.enumerated() {
            let path = Self.path(folder, spatialFiles[index])
            var training = trainingSettings()
            if config.singleSpatialLoRA {
                training["clips"] = clipNames
            } else {
                training["clip"] = .string(clips[index].name)
                training["caption"] = .string(clips[index].caption)
            }
            try adapters.set.save(name, to: path, metadata: LoRAFileMetadata(
                method: "motiondirector-spatial", baseModel: baseModel, training: training), dtype: dtype)
            written.append(path)
        }
        return written
    }

    /// The settings a file's metadata records.
    func trainingSettings() -> [String: JSONValue] {
        [
            "steps": .number(Double(training.step)),
            "max_train_steps": .number(Double(config.maxTrainSteps)),
            "learning_rate": .number(config.learningRate),
            "adam_weight_decay": .number(config.weightDecay(clips: clips.count)),
            "lora_rank": .number(Double(config.loraRank)),
            "lora_unet_dropout": .number(config.loraDropout),
            "debias_beta": .number(config.debiasBeta),
            "spatial_lora_off_probability": .number(config.spatialLoRAOffProbability),
            "random_hflip_img": .number(config.randomHorizontalFlip),
            "single_spatial_lora": .bool(config.singleSpatialLoRA),
            "n_sample_frames": .number(Double(clips.first?.latents.shape[2] ?? 0)),
            "seed": .number(Double(config.seed)),
        ]
    }

    // MARK: Previews

    /// The validation prompts rendered with the temporal LoRA at 1 and the spatial LoRAs at
    /// `spatial_scale`, from the noise prior of the first clip when `noise_prior` > 0.
    func previewSamples() throws -> [PreviewSample] {
        defer { try? adapters.restoreTrainingStrengths() }
        return try MotionPreviews.render(
            pipeline: pipeline, validation: config.validationData, clip: clips[0], inversion: &previewPrior,
            adaptersOff: { for name in adapters.trainedNames { try adapters.set.setEnabled(false, for: name) } },
            adaptersOn: { try adapters.configureInference(spatialScale: config.validationData.spatialScale) })
    }

    // MARK: Helpers

    /// `spatial-<clip stem>.safetensors`, with characters outside [A-Za-z0-9._-] replaced and clashes numbered.
    static func spatialFileNames(_ clipNames: [String]) -> [String] {
        var used: Set<String> = []
        return clipNames.map { name in
            let stem = (name as NSString).deletingPathExtension
            let cleaned = String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
            var candidate = "spatial-\(cleaned.isEmpty ? "clip" : cleaned)"
            var number = 2
            while used.contains(candidate) {
                candidate = "spatial-\(cleaned)-\(number)"
                number += 1
            }
            used.insert(candidate)
            return candidate + ".safetensors"
        }
    }

    /// Every clip has the run's frame count, one latent size and the model's latent channels.
    static func check(_ clips: [MotionTrainingClip], config: MotionDirectorConfig, pipeline: TextToVideoPipeline) throws {
        guard let first = clips.first else {
            throw MethodError.noTrainingData(what: "MotionDirector", reason: "no clips to train on")
        }
        let channels = pipeline.unet.inChannels
        for clip in clips {
            let shape = clip.latents.shape
            guard shape.count == 5, shape[0] == 1, shape[1] == channels else {
                throw MethodError.badItem(name: clip.name, reason: "latents must be [1, \(channels), frames, h, w], got \(shape)")
            }
            guard shape[2] == config.trainData.sampleFrames else {
                throw MethodError.badItem(name: clip.name, reason: "has \(shape[2]) frames, the run samples \(config.trainData.sampleFrames)")
            }
            guard shape[3...] == first.latents.shape[3...] else {
                throw MethodError.badItem(name: clip.name, reason: "latent size \(Array(shape[3...])) differs from \(first.name)'s \(Array(first.latents.shape[3...]))")
            }
            if config.randomHorizontalFlip > 0 {
                guard clip.flippedLatents?.shape == shape else {
                    throw MethodError.badItem(name: clip.name, reason: "the spatial path flips, but no flipped latents of shape \(shape) were given")
                }
            }
        }
    }

    static func path(_ folder: String, _ name: String) -> String { MotionRunFolder.path(folder, name) }
}
