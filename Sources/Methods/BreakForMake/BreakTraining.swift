import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// Break-for-Make's first stage ("break"): a PLP adapter that learns a content (`train-content`) or
/// a style (`train-style`) apart from its partner (ICTMCG/Break-for-make `train_content.py`,
/// `train_style.py`).
///
/// Content run: A₂ (the down projection's learnable columns) learns from the content images with
/// their captions at `learning_rate`; B₂ (the up projection's learnable rows) learns from auxiliary
/// style sets at `learning_rate · partner_learning_rate_ratio`. The style run mirrors it: B₂ on the
/// style images, A₂ on auxiliary content sets. Multi-correspondence: the partner half sees many
/// partners, so it does not absorb one. Each step averages `gradient_accumulation_steps` micro-steps
/// of one own image and one auxiliary image (ours: drawn from all auxiliary sets pooled; the
/// reference averages one image of each of its three sets); the auxiliary loss's gradient reaches
/// only the partner half (its backward pass runs inside the step with the own half's factors frozen)
/// and the own loss's only the own half. Frozen halves never move.
///
/// The run folder (checkpoints, loss.csv, latents.safetensors, auxiliary-latents.safetensors,
/// break_run.json) sits beside the output file; `resumingIn` continues it bit for bit.
public final class BreakTraining {
    public enum Role: String, Codable, Sendable {
        case content, style

        /// The factor this role's own images train: A (down) for content, B (up) for style.
        var ownFactor: String { self == .content ? "lora_A.weight" : "lora_B.weight" }
        /// The method name written in adapter files.
        public var method: String { "break-for-make-\(rawValue)" }
    }

    public static let runFile = "break_run.json"
    public static let cacheFile = "latents.safetensors"
    public static let auxiliaryCacheFile = "auxiliary-latents.safetensors"
    public static let adapterName = "plp"

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public let role: Role
    public let config: BreakForMakeConfig
    public let images: [MotionTrainingClip]
    public let auxiliary: [MotionTrainingClip]
    public let token: String
    public let baseModel: BaseModelIdentity
    public let adapters: AdapterSet
    public let loras: [LoRA]
    public let training: AdapterTraining
    public var onPreview: ((Int, [PreviewSample]) throws -> Void)?

    private let textStates: [Tensor]
    private let auxiliaryTextStates: [Tensor]
    private let denoising: ImageDenoisingLoss

    struct RunRecord: Codable {
        var method = "break-for-make"
        var role: Role
        var config: BreakForMakeConfig
        var token: String
        var images: [MotionDirectorTraining.RunRecord.Clip]
        var auxiliary: [MotionDirectorTraining.RunRecord.Clip]
        var baseModel: BaseModelIdentity

        enum CodingKeys: String, CodingKey {
            case method, role, config, token, images, auxiliary
            case baseModel = "base_model"
        }
    }

    /// Starts a new run in `folder` (absent or empty). Images and auxiliary images hold one-frame
    /// latents `[1, C, 1, h + 2·crop_jitter, w + 2·crop_jitter]`, with flipped copies when flipping.
    public convenience init(newRunIn folder: String, role: Role, pipeline: TextToVideoPipeline, config: BreakForMakeConfig,
                            images: [MotionTrainingClip], auxiliary: [MotionTrainingClip], token: String,
                            baseModel: BaseModelIdentity) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            let what = contents.contains(Self.runFile) ? "already holds a Break-for-Make run" : "is not empty"
            throw MethodError.badRun(folder: folder, reason: "\(what); resume it or choose another output")
        }
        try config.validate(file: "options")
        try Self.check(images, what: "\(role.rawValue) images", config: config, pipeline: pipeline)
        try Self.check(auxiliary, what: "auxiliary \(role == .content ? "style" : "content") images", config: config, pipeline: pipeline)
        guard images[0].latents.shape == auxiliary[0].latents.shape else {
            throw MethodError.badItem(name: auxiliary[0].name, reason: "latent size \(auxiliary[0].latents.shape) differs from the images' \(images[0].latents.shape)")
        }
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MethodError.badRun(folder: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        try MotionTrainingClip.writeCache(images, to: MotionDirectorTraining.path(folder, Self.cacheFile))
        try MotionTrainingClip.writeCache(auxiliary, to: MotionDirectorTraining.path(folder, Self.auxiliaryCacheFile))
        let record = RunRecord(role: role, config: config, token: token,
                               images: images.map { .init(name: $0.name, caption: $0.caption) },
                               auxiliary: auxiliary.map { .init(name: $0.name, caption: $0.caption) }, baseModel: baseModel)
        try RunRecordFile.write(record, to: MotionDirectorTraining.path(folder, Self.runFile))
        try self.init(folder: folder, pipeline: pipeline, record: record, images: images, auxiliary: auxiliary)
    }

    /// Opens the run in `folder` to continue it; `adjust` may change the step count and the intervals.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout BreakForMakeConfig) -> Void = { _ in }) throws {
        let path = MotionDirectorTraining.path(folder, Self.runFile)
        var record: RunRecord = try RunRecordFile.read(path, folder: folder, what: "Break-for-Make run")
        try baseModel.requireSameModel(as: record.baseModel, folder: folder)
        record.config = try record.config.adjustedForResume(folder: folder, adjust: adjust)
        try record.config.validate(file: path)
        let images = try MotionTrainingClip.readCache(MotionDirectorTraining.path(folder, Self.cacheFile))
        let auxiliary = try MotionTrainingClip.readCache(MotionDirectorTraining.path(folder, Self.auxiliaryCacheFile))
        try RunRecordFile.write(record, to: path)
        try self.init(folder: folder, pipeline: pipeline, record: record, images: images, auxiliary: auxiliary)
    }

    private init(folder: String, pipeline: TextToVideoPipeline, record: RunRecord, images: [MotionTrainingClip],
                 auxiliary: [MotionTrainingClip]) throws {
        self.folder = folder
        self.pipeline = pipeline
        role = record.role
        config = record.config
        self.images = images
        self.auxiliary = auxiliary
        token = record.token
        baseModel = record.baseModel
        adapters = AdapterSet(model: pipeline.unet, component: "unet")
        loras = try PLPAdapter.inject(Self.adapterName, into: adapters, rank: config.rank, seed: config.seed)
        let own = record.role.ownFactor, ratio = config.partnerLearningRateRatio
        training = try AdapterTraining(folder: folder, adapters: adapters, trainedAdapters: [Self.adapterName],
                                       options: config.trainerOptions) { key in key.hasSuffix(own) ? 1 : ratio }
        textStates = try images.map { try pipeline.encodePrompt($0.caption) }
        auxiliaryTextStates = try auxiliary.map { try pipeline.encodePrompt($0.caption) }
        denoising = ImageDenoisingLoss(unet: pipeline.unet, scheduler: DDPMScheduler(config: pipeline.schedulerConfig),
                                       randomFlip: config.randomFlip, cropJitter: config.cropJitter)
        try training.resume()
    }

    /// The prompt previews use: "a <obj>" or "a picture in <sty> style".
    public var previewPrompt: String { role == .content ? "a \(token)" : "a picture in \(token) style" }

    /// Trains the remaining steps and writes the adapter to `output`.
    public func run(output: String, dtype: SafeTensors.DType = .f32) throws {
        training.onCheckpoint = { [weak self] _ in try self?.save(to: output, dtype: dtype) }
        training.previewEvery = onPreview == nil ? 0 : config.validationSteps
        training.preview = { [weak self] step in
            guard let self, let onPreview = self.onPreview else { return }
            let frames = try self.pipeline.generate(prompt: self.previewPrompt, frames: 1, steps: self.config.validationInferenceSteps,
                                                    guidance: self.config.validationGuidance, seed: self.config.seed).frames
            try onPreview(step, [PreviewSample(prompt: self.previewPrompt, frames: frames)])
        }
        defer { setFactors(ownTrainable: true, partnerTrainable: true) }
        try training.run { [unowned self] step, random in try self.loss(step: step, random: &random) }
        try save(to: output, dtype: dtype)
    }

    /// Step `step`'s loss (0-based), averaged over `gradient_accumulation_steps` micro-steps of one
    /// own and one auxiliary image each: the partner half's auxiliary loss is back-propagated here; the
    /// returned tensor is the own loss (whose backward the trainer runs) plus the auxiliary value.
    func loss(step: Int, random: inout RandomGenerator) throws -> Tensor {
        try GradientAccumulation.step(step, count: config.gradientAccumulationSteps, random: &random) { sample, weight, random in
            let own = ImageDenoisingLoss.index(step: sample, count: images.count, seed: config.seed, stream: 0xC11_905)
            let partner = ImageDenoisingLoss.index(step: sample, count: auxiliary.count, seed: config.seed, stream: 0xA0_C5E7)
            var auxiliaryRandom = random.derived(0xA0), ownRandom = random.derived(0x0E)

            setFactors(ownTrainable: false, partnerTrainable: true)
            let auxiliaryLoss = try denoising.loss(image: auxiliary[partner], textStates: auxiliaryTextStates[partner], random: &auxiliaryRandom)
            let auxiliaryValue = auxiliaryLoss.item
            guard auxiliaryValue.isFinite else { throw TrainingError.nonFiniteLoss(step: step, value: auxiliaryValue) }
            try (auxiliaryLoss * weight).backward()

            setFactors(ownTrainable: true, partnerTrainable: false)
            let ownLoss = try denoising.loss(image: images[own], textStates: textStates[own], random: &ownRandom)
            return ownLoss + auxiliaryValue
        }
    }

    /// Marks each LoRA's own and partner factor as receiving gradients or not.
    private func setFactors(ownTrainable: Bool, partnerTrainable: Bool) {
        for lora in loras {
            let (own, partner) = role == .content ? (lora.down, lora.up) : (lora.up, lora.down)
            own.requiresGrad = ownTrainable
            partner.requiresGrad = partnerTrainable
        }
    }

    /// Writes the adapter (PEFT keys; method, role, rank and seed in the metadata: `make` checks them).
    public func save(to output: String, dtype: SafeTensors.DType = .f32) throws {
        let training: [String: JSONValue] = [
            "role": .string(role.rawValue), "token": .string(token),
            "rank": .number(Double(config.rank)), "seed": .number(Double(config.seed)),
            "steps": .number(Double(self.training.step)), "max_train_steps": .number(Double(config.maxTrainSteps)),
            "gradient_accumulation_steps": .number(Double(config.gradientAccumulationSteps)),
            "learning_rate": .number(Double(config.learningRate)),
            "partner_learning_rate_ratio": .number(Double(config.partnerLearningRateRatio)),
            "images": .array(images.map { .string($0.name) }), "captions": .array(images.map { .string($0.caption) }),
            "auxiliary": .array(auxiliary.map { .string($0.name) }),
        ]
        try adapters.save(Self.adapterName, to: output,
                          metadata: LoRAFileMetadata(method: role.method, baseModel: baseModel, training: training), dtype: dtype)
    }

    static func check(_ images: [MotionTrainingClip], what: String, config: BreakForMakeConfig, pipeline: TextToVideoPipeline) throws {
        var subject = SubjectLoRAConfig()
        subject.randomFlip = config.randomFlip
        subject.cropJitter = config.cropJitter
        do { try SubjectLoRATraining.check(images, config: subject, pipeline: pipeline) } catch MethodError.noTrainingData {
            throw MethodError.noTrainingData(what: what, reason: "no images to train on")
        }
    }
}
