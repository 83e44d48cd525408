import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// A subject (or concept) LoRA from a few images: diffusers' `train_dreambooth_lora.py` without
/// prior preservation, on the 3-D U-Net with one frame. Each step draws an image (every image once
/// per epoch, in a shuffled order), flips it with probability `random_flip`, crops its cached latents
/// at a random offset of up to `crop_jitter` latent pixels, noises it at a uniform timestep and
/// regresses the noise with the caption (MSE), training only the LoRA.
///
/// The LoRA goes on the spatial transformers: self-attention, cross-attention (so the caption's new
/// token can bind to the subject) and feed-forward. Temporal layers are left alone: with one frame
/// they would still learn (a one-frame attention is its value projection) and would then disturb
/// motion.
///
/// The run folder (checkpoints, loss.csv, latents.safetensors, subject_run.json, previews) sits beside
/// the output file; `resume` continues it as `AdapterTraining` does.
public final class SubjectLoRATraining {
    public static let runFile = "subject_run.json"
    public static let cacheFile = "latents.safetensors"
    public static let adapterName = "subject"
    public static let targets: [ModulePattern] = [
        "*.attentions.*.transformer_blocks.*.attn1.*",
        "*.attentions.*.transformer_blocks.*.attn2.*",
        "*.attentions.*.transformer_blocks.*.ff.*",
    ]

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public let config: SubjectLoRAConfig
    /// The cached images: one-frame latents of the jittered size, with flipped copies.
    public let images: [MotionTrainingClip]
    public let token: String
    public let className: String?
    public let baseModel: BaseModelIdentity
    public let adapters: AdapterSet
    public let training: AdapterTraining
    /// Called with each preview's samples and the step.
    public var onPreview: ((Int, [PreviewSample]) throws -> Void)?

    private let textStates: [Tensor]
    private let scheduler: DDPMScheduler

    struct RunRecord: Codable {
        var method = "subject-lora"
        var config: SubjectLoRAConfig
        var token: String
        var className: String?
        var images: [MotionDirectorTraining.RunRecord.Clip]
        var baseModel: BaseModelIdentity

        enum CodingKeys: String, CodingKey {
            case method, config, token, images
            case className = "class"
            case baseModel = "base_model"
        }
    }

    /// Starts a new run in `folder` (absent or empty). `images` hold one-frame latents
    /// `[1, C, 1, h + 2·crop_jitter, w + 2·crop_jitter]`, with flipped copies when `random_flip` > 0.
    public convenience init(newRunIn folder: String, pipeline: TextToVideoPipeline, config: SubjectLoRAConfig,
                            images: [MotionTrainingClip], token: String, className: String?, baseModel: BaseModelIdentity) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            let what = contents.contains(Self.runFile) ? "already holds a subject LoRA run" : "is not empty"
            throw MethodError.badRun(folder: folder, reason: "\(what); resume it or choose another output")
        }
        try config.validate(file: "options")
        try Self.check(images, config: config, pipeline: pipeline)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MethodError.badRun(folder: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        try MotionTrainingClip.writeCache(images, to: MotionDirectorTraining.path(folder, Self.cacheFile))
        let record = RunRecord(config: config, token: token, className: className,
                               images: images.map { .init(name: $0.name, caption: $0.caption) }, baseModel: baseModel)
        try Self.writeRecord(record, folder: folder)
        try self.init(folder: folder, pipeline: pipeline, record: record, images: images)
    }

    /// Opens the run in `folder` to continue it; `adjust` may change the step count and the intervals.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout SubjectLoRAConfig) -> Void = { _ in }) throws {
        let path = MotionDirectorTraining.path(folder, Self.runFile)
        guard FileManager.default.fileExists(atPath: path) else {
            throw MethodError.badRun(folder: folder, reason: "holds no subject LoRA run to resume (no \(Self.runFile))")
        }
        var record: RunRecord
        do { record = try JSONDecoder().decode(RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw MethodError.badRun(folder: path, reason: "cannot read the run record: \(error)")
        }
        try baseModel.requireSameModel(as: record.baseModel, folder: folder)
        var config = record.config
        adjust(&config)
        var comparable = config
        comparable.maxTrainSteps = record.config.maxTrainSteps
        comparable.checkpointingSteps = record.config.checkpointingSteps
        comparable.validationSteps = record.config.validationSteps
        guard comparable == record.config else {
            throw MethodError.badRun(folder: folder, reason: "a resumed run keeps its adapter, data and seed; only the step count and intervals may change")
        }
        try config.validate(file: path)
        record.config = config
        let images = try MotionTrainingClip.readCache(MotionDirectorTraining.path(folder, Self.cacheFile))
        try Self.check(images, config: config, pipeline: pipeline)
        try Self.writeRecord(record, folder: folder)
        try self.init(folder: folder, pipeline: pipeline, record: record, images: images)
    }

    private init(folder: String, pipeline: TextToVideoPipeline, record: RunRecord, images: [MotionTrainingClip]) throws {
        self.folder = folder
        self.pipeline = pipeline
        config = record.config
        self.images = images
        token = record.token
        className = record.className
        baseModel = record.baseModel
        adapters = AdapterSet(model: pipeline.unet, component: "unet")
        try adapters.inject(Self.adapterName, config: LoRAConfig(rank: config.rank, dropout: config.loraDropout), targets: Self.targets,
                            generator: RandomGenerator(seed: config.seed).derived(0x5B_1EC7))
        training = try AdapterTraining(folder: folder, adapters: adapters, trainedAdapters: [Self.adapterName],
                                       options: config.trainerOptions)
        // DECOR (when asked) projects the previews' prompts, and with `applies_to_training` the captions too.
        try DECORSetting.install(config.decor, on: pipeline)
        let captionStates = try images.map { try pipeline.encodePrompt($0.caption) }
        if let decor = config.decor, decor.appliesToTraining {
            let projection = try decor.projection(for: pipeline)
            textStates = try captionStates.map { try projection.apply($0) }
        } else {
            textStates = captionStates
        }
        scheduler = DDPMScheduler(config: pipeline.schedulerConfig)
        try training.resume()
    }

    /// The prompt that names the subject: "a <token> <class>", or "a <token>".
    public var subjectPrompt: String { "a \(token)" + (className.map { " \($0)" } ?? "") }

    /// Trains the remaining steps and writes the LoRA to `output`.
    public func run(output: String, dtype: SafeTensors.DType = .f32) throws {
        training.onCheckpoint = { [weak self] _ in try self?.save(to: output, dtype: dtype) }
        training.previewEvery = onPreview == nil ? 0 : config.validationSteps
        training.preview = { [weak self] step in
            guard let self, let onPreview = self.onPreview else { return }
            let prompts = self.config.validationPrompts.isEmpty ? [self.subjectPrompt] : self.config.validationPrompts
            let samples = try prompts.map { prompt in
                PreviewSample(prompt: prompt, frames: try self.pipeline.generate(
                    prompt: prompt, frames: 1, steps: self.config.validationInferenceSteps,
                    guidance: self.config.validationGuidance, seed: self.config.seed).frames)
            }
            try onPreview(step, samples)
        }
        try training.run { [unowned self] step, random in try self.loss(step: step, random: &random) }
        try save(to: output, dtype: dtype)
    }

    /// Step `step`'s loss (0-based).
    func loss(step: Int, random: inout RandomGenerator) throws -> Tensor {
        let count = images.count
        var order = RandomGenerator(seed: config.seed).derived(0xC11_905).derived(UInt64(step / count))
        let index = order.shuffled(Array(0..<count))[step % count]
        let image = images[index]
        let flip = random.uniformValues(count: 1)[0] < config.randomFlip
        let source = flip ? (image.flippedLatents ?? image.latents) : image.latents
        let jitter = config.cropJitter
        let top = try random.integer(below: 2 * jitter + 1), left = try random.integer(below: 2 * jitter + 1)
        let height = source.shape[3] - 2 * jitter, width = source.shape[4] - 2 * jitter
        let latents = try source.slice(axis: 3, top ..< top + height).slice(axis: 4, left ..< left + width)
        let timestep = try random.integer(below: scheduler.config.numTrainTimesteps)
        var noiseGenerator = random.derived(0), dropout = random.derived(1)
        let noise = noiseGenerator.normal(latents.shape)
        let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: [timestep])
        let prediction = try pipeline.unet(sample: noisy, timesteps: [Float(timestep)], encoderHiddenStates: textStates[index],
                                           dropoutGenerator: &dropout)
        return try Tensor.mseLoss(prediction, MotionDirectorStep.target(scheduler, latents: latents, noise: noise, timestep: timestep))
    }

    /// Writes the LoRA (PEFT keys, method "subject-lora", token, class and settings in the metadata).
    public func save(to output: String, dtype: SafeTensors.DType = .f32) throws {
        var training: [String: JSONValue] = [
            "steps": .number(Double(self.training.step)), "max_train_steps": .number(Double(config.maxTrainSteps)),
            "learning_rate": .number(config.learningRate), "rank": .number(Double(config.rank)),
            "adam_weight_decay": .number(config.adamWeightDecay), "random_flip": .number(config.randomFlip),
            "crop_jitter": .number(Double(config.cropJitter)), "seed": .number(Double(config.seed)),
            "token": .string(token), "images": .array(images.map { .string($0.name) }),
            "captions": .array(images.map { .string($0.caption) }),
        ]
        if let className { training["class"] = .string(className) }
        if let decor = config.decor {
            training["decor"] = .object(["words": .string(decor.words), "strength": .number(decor.strength),
                                         "applies_to_training": .bool(decor.appliesToTraining)])
        }
        try adapters.save(Self.adapterName, to: output,
                          metadata: LoRAFileMetadata(method: "subject-lora", baseModel: baseModel, training: training), dtype: dtype)
    }

    static func check(_ images: [MotionTrainingClip], config: SubjectLoRAConfig, pipeline: TextToVideoPipeline) throws {
        guard let first = images.first else {
            throw MethodError.noTrainingData(what: "subject LoRA", reason: "no images to train on")
        }
        let channels = pipeline.unet.inChannels
        for image in images {
            let shape = image.latents.shape
            guard shape.count == 5, shape[0] == 1, shape[1] == channels, shape[2] == 1 else {
                throw MethodError.badItem(name: image.name, reason: "latents must be [1, \(channels), 1, h, w], got \(shape)")
            }
            guard shape == first.latents.shape else {
                throw MethodError.badItem(name: image.name, reason: "latent size \(shape) differs from \(first.name)'s \(first.latents.shape)")
            }
            guard shape[3] > 2 * config.cropJitter, shape[4] > 2 * config.cropJitter else {
                throw MethodError.badItem(name: image.name, reason: "latents \(shape) are too small for a crop jitter of \(config.cropJitter)")
            }
            if config.randomFlip > 0, image.flippedLatents?.shape != shape {
                throw MethodError.badItem(name: image.name, reason: "the run flips, but no flipped latents of shape \(shape) were given")
            }
        }
    }

    static func writeRecord(_ record: RunRecord, folder: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let path = MotionDirectorTraining.path(folder, runFile)
        do { try encoder.encode(record).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw MethodError.badRun(folder: path, reason: "cannot write the run record: \(error.localizedDescription)")
        }
    }
}
