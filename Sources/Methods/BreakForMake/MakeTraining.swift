import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// Break-for-Make's second stage ("make", ICTMCG/Break-for-make `train_second_stage.py` with
/// `--exchange_finetune`): the assembled adapter (`PLPAssembly`) fine-tuned jointly. Each step's
/// loss is a style image's with its caption plus a content image's with its caption; both learnable
/// halves train at `learning_rate`, the frozen halves stay masked, and the gradients go through the
/// Riemannian preconditioner (`RiemannianPreconditioner`) before AdamW's moments. The loaded weights
/// are the start: nothing is re-initialised.
///
/// The run folder keeps the assembled adapter (assembled.safetensors), so a resumed run needs
/// neither input file again, plus the image caches, make_run.json, checkpoints and loss.csv.
public final class MakeTraining {
    public static let runFile = "make_run.json"
    public static let assembledFile = "assembled.safetensors"
    public static let contentCacheFile = "content-latents.safetensors"
    public static let styleCacheFile = "style-latents.safetensors"
    public static let adapterName = "made"

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public let config: BreakForMakeConfig
    public let contentImages: [MotionTrainingClip]
    public let styleImages: [MotionTrainingClip]
    public let baseModel: BaseModelIdentity
    /// The content and style adapter files the run was assembled from, as given.
    public let contentAdapter: String
    public let styleAdapter: String
    public let adapters: AdapterSet
    public let loras: [LoRA]
    public let preconditioners: [RiemannianPreconditioner]
    public let training: AdapterTraining

    private let contentStates: [Tensor]
    private let styleStates: [Tensor]
    private let denoising: ImageDenoisingLoss

    struct RunRecord: Codable {
        var method = "break-for-make-make"
        var config: BreakForMakeConfig
        var contentAdapter: String
        var styleAdapter: String
        var contentImages: [MotionDirectorTraining.RunRecord.Clip]
        var styleImages: [MotionDirectorTraining.RunRecord.Clip]
        var baseModel: BaseModelIdentity

        enum CodingKeys: String, CodingKey {
            case method, config
            case contentAdapter = "content_adapter"
            case styleAdapter = "style_adapter"
            case contentImages = "content_images"
            case styleImages = "style_images"
            case baseModel = "base_model"
        }
    }

    /// Starts a new run in `folder` (absent or empty) from a content and a style adapter file.
    public convenience init(newRunIn folder: String, pipeline: TextToVideoPipeline, config: BreakForMakeConfig,
                            contentAdapter: String, styleAdapter: String, contentImages: [MotionTrainingClip],
                            styleImages: [MotionTrainingClip], baseModel: BaseModelIdentity) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            let what = contents.contains(Self.runFile) ? "already holds a make run" : "is not empty"
            throw MethodError.badRun(folder: folder, reason: "\(what); resume it or choose another output")
        }
        try config.validate(file: "options")
        try BreakTraining.check(contentImages, what: "content images", config: config, pipeline: pipeline)
        try BreakTraining.check(styleImages, what: "style images", config: config, pipeline: pipeline)
        let loras = try PLPAssembly.assemble(content: contentAdapter, style: styleAdapter, model: pipeline.unet,
                                             adapterName: Self.adapterName)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MethodError.badRun(folder: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let scratch = AdapterSet(model: pipeline.unet, component: "unet")
        try scratch.add(Self.adapterName, loras: loras)
        defer { try? scratch.remove(Self.adapterName) }
        try scratch.save(Self.adapterName, to: MotionDirectorTraining.path(folder, Self.assembledFile),
                         metadata: LoRAFileMetadata(method: "break-for-make", baseModel: baseModel))
        try MotionTrainingClip.writeCache(contentImages, to: MotionDirectorTraining.path(folder, Self.contentCacheFile))
        try MotionTrainingClip.writeCache(styleImages, to: MotionDirectorTraining.path(folder, Self.styleCacheFile))
        let record = RunRecord(config: config, contentAdapter: contentAdapter, styleAdapter: styleAdapter,
                               contentImages: contentImages.map { .init(name: $0.name, caption: $0.caption) },
                               styleImages: styleImages.map { .init(name: $0.name, caption: $0.caption) }, baseModel: baseModel)
        try RunRecordFile.write(record, to: MotionDirectorTraining.path(folder, Self.runFile))
        try self.init(folder: folder, pipeline: pipeline, record: record, contentImages: contentImages, styleImages: styleImages)
    }

    /// Opens the run in `folder` to continue it; `adjust` may change the step count and the intervals.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout BreakForMakeConfig) -> Void = { _ in }) throws {
        let path = MotionDirectorTraining.path(folder, Self.runFile)
        var record: RunRecord = try RunRecordFile.read(path, folder: folder, what: "make run")
        try baseModel.requireSameModel(as: record.baseModel, folder: folder)
        record.config = try record.config.adjustedForResume(folder: folder, adjust: adjust)
        try record.config.validate(file: path)
        let contentImages = try MotionTrainingClip.readCache(MotionDirectorTraining.path(folder, Self.contentCacheFile))
        let styleImages = try MotionTrainingClip.readCache(MotionDirectorTraining.path(folder, Self.styleCacheFile))
        try RunRecordFile.write(record, to: path)
        try self.init(folder: folder, pipeline: pipeline, record: record, contentImages: contentImages, styleImages: styleImages)
    }

    private init(folder: String, pipeline: TextToVideoPipeline, record: RunRecord, contentImages: [MotionTrainingClip],
                 styleImages: [MotionTrainingClip]) throws {
        self.folder = folder
        self.pipeline = pipeline
        config = record.config
        self.contentImages = contentImages
        self.styleImages = styleImages
        baseModel = record.baseModel
        contentAdapter = record.contentAdapter
        styleAdapter = record.styleAdapter
        adapters = AdapterSet(model: pipeline.unet, component: "unet")
        try adapters.load(MotionDirectorTraining.path(folder, Self.assembledFile), as: Self.adapterName)
        try adapters.setTrainable(true, for: Self.adapterName)
        loras = try adapters.loras(of: Self.adapterName)
        for lora in loras { PLPAdapter.installMasks(lora) }
        preconditioners = try loras.map { try RiemannianPreconditioner(lora: $0, delta: record.config.preconditionerDelta) }
        for preconditioner in preconditioners { preconditioner.install() }
        training = try AdapterTraining(folder: folder, adapters: adapters, trainedAdapters: [Self.adapterName],
                                       options: config.trainerOptions)
        contentStates = try contentImages.map { try pipeline.encodePrompt($0.caption) }
        styleStates = try styleImages.map { try pipeline.encodePrompt($0.caption) }
        denoising = ImageDenoisingLoss(unet: pipeline.unet, scheduler: DDPMScheduler(config: pipeline.schedulerConfig),
                                       randomFlip: config.randomFlip, cropJitter: config.cropJitter)
        try training.resume()
    }

    /// Trains the remaining steps and writes the made adapter to `output`.
    public func run(output: String, dtype: SafeTensors.DType = .f32) throws {
        training.onCheckpoint = { [weak self] _ in try self?.save(to: output, dtype: dtype) }
        try training.run { [unowned self] step, random in try self.loss(step: step, random: &random) }
        try save(to: output, dtype: dtype)
    }

    /// Step `step`'s loss (0-based): a style image's plus a content image's, averaged over
    /// `gradient_accumulation_steps` micro-steps. The preconditioners take their Gram matrices now,
    /// before the update, from the factors as the step sees them.
    func loss(step: Int, random: inout RandomGenerator) throws -> Tensor {
        for preconditioner in preconditioners { try preconditioner.refresh() }
        return try GradientAccumulation.step(step, count: config.gradientAccumulationSteps, random: &random) { sample, _, random in
            let style = ImageDenoisingLoss.index(step: sample, count: styleImages.count, seed: config.seed, stream: 0x57_71E)
            let content = ImageDenoisingLoss.index(step: sample, count: contentImages.count, seed: config.seed, stream: 0xC0_7E47)
            var styleRandom = random.derived(0x57), contentRandom = random.derived(0xC0)
            let styleLoss = try denoising.loss(image: styleImages[style], textStates: styleStates[style], random: &styleRandom)
            let contentLoss = try denoising.loss(image: contentImages[content], textStates: contentStates[content], random: &contentRandom)
            return try styleLoss + contentLoss
        }
    }

    /// Writes the made adapter (PEFT keys; renders with `--lora`).
    public func save(to output: String, dtype: SafeTensors.DType = .f32) throws {
        let training: [String: JSONValue] = [
            "content_adapter": .string((contentAdapter as NSString).lastPathComponent),
            "style_adapter": .string((styleAdapter as NSString).lastPathComponent),
            "rank": .number(Double(loras.first?.rank ?? 0)), "seed": .number(Double(config.seed)),
            "steps": .number(Double(self.training.step)), "max_train_steps": .number(Double(config.maxTrainSteps)),
            "gradient_accumulation_steps": .number(Double(config.gradientAccumulationSteps)),
            "learning_rate": .number(Double(config.learningRate)), "preconditioner_delta": .number(Double(config.preconditionerDelta)),
            "content_captions": .array(contentImages.map { .string($0.caption) }),
            "style_captions": .array(styleImages.map { .string($0.caption) }),
        ]
        try adapters.save(Self.adapterName, to: output,
                          metadata: LoRAFileMetadata(method: "break-for-make", baseModel: baseModel, training: training), dtype: dtype)
    }
}
