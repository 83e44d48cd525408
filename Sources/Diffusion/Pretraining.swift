import Checkpoints
import Foundation
import Models
import Tensor

/// The stages of pretraining, in order.
public enum PretrainingStage: String, Sendable {
    case vae
    case textEncoderWarmup = "text_encoder_warmup"
    /// The 3-D U-Net; in an animatediff run the image U-Net on images.
    case unet
    /// An animatediff run's motion stage: the motion modules (and `motion_training.trainable`) on clips.
    case motion
}

/// One preview prompt's result: frames `[3, H, W]` in [-1, 1].
public struct PreviewSample {
    public var prompt: String
    public var frames: [Tensor]

    public init(prompt: String, frames: [Tensor]) {
        self.prompt = prompt
        self.frames = frames
    }
}

/// Trains the base model from scratch (issue 5): stage 1 the autoencoder on images; stage 1b the
/// CLIP text encoder alone on captions (`TextEncoderWarmupObjective`, unless its steps are 0);
/// stage 2, with the autoencoder frozen, the 3-D U-Net (and the text encoder, unless
/// `unet_training.train_text_encoder` is false) on images and clips, with caption dropout and a
/// moving average; then saves a diffusers folder with the averaged weights in F16.
///
/// An `animatediff` run (`architecture`) trains AnimateDiff's layout in the same stages, the U-Net
/// stage training the image U-Net (`image_unet`) on images only, then adds stage 3, the motion
/// stage: a `UNetMotionModel` made of the averaged image U-Net and fresh motion modules
/// (`motion_adapter`), trained on clips with what `motion_training.trainable` names, everything
/// else frozen; model/ is then an `AnimateDiffPipeline` folder.
///
/// A run folder holds:
/// - pretrain_config.json: the resolved config (the text encoder's vocabulary size filled in);
/// - tokenizer/: vocab.json and merges.txt with one token per world word (CLIP's format);
/// - vae/, text_encoder_warmup/, unet/ (and motion/ in an animatediff run): each stage's checkpoints (`checkpoint-NNNNNN/`, the
///   last two kept) and loss.csv;
/// - model/: the finished diffusers folder (model_index.json, unet/, vae/, text_encoder/,
///   tokenizer/, scheduler/).
/// Everything is resumable: `run()` continues each stage from its newest complete checkpoint.
public final class Pretraining {
    public static let configFile = "pretrain_config.json"
    public let folder: String
    public private(set) var config: PretrainConfig
    public let data: PretrainingData
    /// The part of `data` the motion stage's first `motion_training.focus.steps` steps draw from.
    private var focusedData: PretrainingData?
    public let tokenizer: CLIPTokenizer
    /// Called when a stage starts or resumes, with the steps already done and the stage's total.
    public var onStageStart: ((PretrainingStage, Int, Int) -> Void)?
    public var onStep: ((PretrainingStage, TrainingStepReport) -> Void)?
    /// Called when a stage's loss.csv has been rewritten (to draw the loss curve beside it).
    public var onLog: ((PretrainingStage, String, [LossRecord]) throws -> Void)?
    /// Called with each preview grid's samples, the stage and its step: for the autoencoder each
    /// sample is a fixed image and its reconstruction; for the U-Net each is a preview prompt's frames.
    public var onPreview: ((PretrainingStage, Int, [PreviewSample]) throws -> Void)?
    /// Also save model/ at every U-Net checkpoint (not only at the end); in an animatediff run's
    /// image stage, model/ is then the image U-Net's folder (`UNet2DConditionModel`).
    public var saveModelAtCheckpoints = false

    public var vaeFolder: String { path("vae") }
    public var textEncoderWarmupFolder: String { path("text_encoder_warmup") }
    public var unetFolder: String { path("unet") }
    public var motionFolder: String { path("motion") }
    /// The samples (images, captions or clips) of the step just taken, for a samples-per-second rate.
    public private(set) var lastStepSamples = 0
    /// The warm-up's slot accuracy at its latest step (see `TextEncoderWarmupObjective`).
    public private(set) var warmupSlotAccuracy: Float?
    public var tokenizerFolder: String { path("tokenizer") }
    public var modelFolder: String { path("model") }
    static let initFolderName = "init"
    /// The copy of the model a run started from (`init(newRunIn:config:data:startingFrom:)`).
    public var initFolder: String { Self.initFolder(in: folder) }
    static func initFolder(in folder: String) -> String { (folder as NSString).appendingPathComponent(initFolderName) }
    /// Whether this run started from a model rather than from scratch (its `init/` holds one).
    public let startsFromModel: Bool
    /// Whether this animatediff run started from a UNet3D model: it keeps the model's autoencoder,
    /// tokenizer, text encoder and scheduler and draws a fresh image U-Net (`image_unet`) and fresh
    /// motion modules (`motion_adapter`).
    public let drawsFreshDenoiser: Bool

    /// Whether an animatediff `config` starting from the diffusers folder `model` draws its U-Net fresh.
    static func drawsFreshDenoiser(config: PretrainConfig, model: String) throws -> Bool {
        guard config.architecture == .animatediff else { return false }
        return try DiffusersFolder(path: model).index.components["unet"]?.className == "UNet3DConditionModel"
    }

    /// The model the run started from, read from `init/`.
    private func initModel() throws -> DiffusersFolder { try DiffusersFolder(path: initFolder) }

    /// Starts a new run in `folder`, which must be absent or empty: writes the tokenizer and the
    /// resolved config. The top-level seed seeds both stages.
    ///
    /// With `model` (a diffusers folder, as diffusers' `--pretrained_model_name_or_path`), the run
    /// starts from that model instead of from scratch: its autoencoder, text encoder, U-Net,
    /// scheduler and tokenizer replace the config's, a copy of it is kept in `init/` (so a resumed
    /// run needs nothing outside its folder), the autoencoder stage is skipped (its steps set to 0),
    /// the warm-up trains only its head on the frozen encoder, and the U-Net stage starts from the
    /// model's weights with a fresh optimizer and schedule. The model's layout decides the run's
    /// (`adoptArchitecture`): from an AnimateDiff folder the image stage starts from its image U-Net
    /// and the motion stage from its motion modules; from an image U-Net alone the motion stage
    /// starts from fresh motion modules (`motion_adapter`). A UNet3D model cannot continue into
    /// AnimateDiff's layout, so an animatediff config with a UNet3D model stays animatediff: the run
    /// takes the model's autoencoder, tokenizer, text encoder and scheduler and draws a fresh image
    /// U-Net and fresh motion modules from the config (`drawsFreshDenoiser`).
    public init(newRunIn folder: String, config: PretrainConfig, data: PretrainingData, startingFrom model: String? = nil) throws {
        let fileManager = FileManager.default
        if let contents = try? fileManager.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            throw TrainingError.checkpoint(path: folder, reason: "the folder is not empty (it holds \(contents.sorted().prefix(3).joined(separator: ", "))); resume the run in it or choose a new folder")
        }
        self.folder = folder
        self.data = data
        startsFromModel = model != nil
        var config = config
        let start = try model.map { try TextToVideoPipeline.load(folder: $0) }
        if let start, let model {
            config.vae = start.vae.config
            try Self.adoptArchitecture(ofModel: model, into: &config)
            switch start.unet {
            case is UNet3DConditionModel where config.architecture == .animatediff:
                break // a fresh image U-Net and motion modules: the config's image_unet and motion_adapter
            case let unet as UNet3DConditionModel:
                config.architecture = .unet3d
                config.unet = unet.config
            case let unet as UNetMotionModel:
                config.architecture = .animatediff
                config.imageUNet = try unet.imageUNet().config
                config.motionAdapter = try unet.motionAdapter().config
            case let unet as UNet2DConditionModel:
                // An image U-Net alone: the motion stage starts from fresh motion modules (motion_adapter).
                config.architecture = .animatediff
                config.imageUNet = unet.config
            default:
                throw TrainingError.checkpoint(path: model, reason: "pretraining continues UNet3DConditionModel, UNetMotionModel and UNet2DConditionModel models; this one's U-Net is a \(start.unet.className)")
            }
            config.textEncoder = start.textEncoder.config
            config.scheduler = start.schedulerConfig
            config.vaeTraining.trainer.steps = 0
            guard start.tokenizer.vocabulary.count == config.textEncoder.vocabSize else {
                throw TrainingError.checkpoint(path: model, reason: "its tokenizer has \(start.tokenizer.vocabulary.count) tokens, its text encoder \(config.textEncoder.vocabSize)")
            }
        }
        try config.validate(file: "config")
        focusedData = try Self.focusedPart(of: data, config: config, file: "config")
        do { try fileManager.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw TrainingError.checkpoint(path: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        let tokenizerFolder = (folder as NSString).appendingPathComponent("tokenizer")
        if let start {
            try start.save(to: Self.initFolder(in: folder), dtype: .f32)
            try Self.writeFiles(start.tokenizerFiles, to: tokenizerFolder)
        } else {
            try CLIPTokenizer.writeVocabulary(words: data.vocabularyWords, to: tokenizerFolder,
                                              maxLength: config.textEncoder.maxPositionEmbeddings)
        }
        drawsFreshDenoiser = try model.map { try Self.drawsFreshDenoiser(config: config, model: $0) } ?? false
        tokenizer = try CLIPTokenizer(folder: tokenizerFolder)
        config.textEncoder.vocabSize = tokenizer.vocabulary.count
        config.textEncoder.bosTokenId = tokenizer.beginId
        config.textEncoder.eosTokenId = tokenizer.endId
        config.textEncoder.padTokenId = tokenizer.padId
        config.vaeTraining.trainer.seed = config.seed
        config.textEncoderWarmup.trainer.seed = config.seed &+ 2
        config.unetTraining.trainer.seed = config.seed &+ 1
        config.motionTraining.trainer.seed = config.seed &+ 3
        self.config = config
        try checkData()
        try saveConfig()
    }

    /// Sets `config.architecture` to the layout of the diffusers folder `model` (a run from a model
    /// trains the model's layout): animatediff for a `UNetMotionModel` or an image U-Net, unet3d for
    /// a `UNet3DConditionModel` — except that an animatediff config stays animatediff with a UNet3D
    /// model (its U-Net is then drawn fresh, `drawsFreshDenoiser`). An animatediff U-Net stage trains
    /// on images only, so a config written for UNet3D gets `unet_training.clip_fraction` 0.
    public static func adoptArchitecture(ofModel model: String, into config: inout PretrainConfig) throws {
        let unetClass = try DiffusersFolder(path: model).index.components["unet"]?.className
        let architecture: PretrainConfig.Architecture = unetClass == "UNet3DConditionModel" && config.architecture == .unet3d
            ? .unet3d : .animatediff
        if config.architecture == .unet3d, architecture == .animatediff { config.unetTraining.clipFraction = 0 }
        config.architecture = architecture
    }

    /// Opens the run in `folder` to continue it; `adjust` may change step counts and intervals
    /// (the models and data stream stay as they were).
    public init(resumingIn folder: String, data: PretrainingData, adjust: (inout PretrainConfig) -> Void = { _ in }) throws {
        let file = (folder as NSString).appendingPathComponent(Self.configFile)
        guard FileManager.default.fileExists(atPath: file) else {
            throw TrainingError.checkpoint(path: folder, reason: "holds no pretraining run (no \(Self.configFile)) to resume")
        }
        var config = try PretrainConfig.load(path: file)
        let models = (config.vae, config.unet, config.textEncoder, config.scheduler, config.seed)
        let layout = (config.architecture, config.imageUNet, config.motionAdapter, config.world)
        adjust(&config)
        guard models == (config.vae, config.unet, config.textEncoder, config.scheduler, config.seed),
              layout == (config.architecture, config.imageUNet, config.motionAdapter, config.world) else {
            throw TrainingError.checkpoint(path: file, reason: "a resumed run keeps its models, scheduler, seed and world; only steps and intervals may change")
        }
        try config.validate(file: file)
        focusedData = try Self.focusedPart(of: data, config: config, file: file)
        self.folder = folder
        startsFromModel = FileManager.default.fileExists(
            atPath: (Self.initFolder(in: folder) as NSString).appendingPathComponent("model_index.json"))
        drawsFreshDenoiser = try startsFromModel && Self.drawsFreshDenoiser(config: config, model: Self.initFolder(in: folder))
        self.data = data
        self.config = config
        tokenizer = try CLIPTokenizer(folder: (folder as NSString).appendingPathComponent("tokenizer"))
        guard tokenizer.vocabulary.count == config.textEncoder.vocabSize else {
            throw TrainingError.checkpoint(path: tokenizerFolder, reason: "has \(tokenizer.vocabulary.count) tokens, the text encoder \(config.textEncoder.vocabSize)")
        }
        try checkData()
        try saveConfig()
    }

    /// Runs whatever is left of the stages, saves model/ and returns its path.
    @discardableResult
    public func run() throws -> String {
        try trainDenoiser(vae: trainAutoencoder())
    }

    // MARK: Stage 1

    /// Trains (or finishes training) the autoencoder and returns it with its final weights.
    public func trainAutoencoder() throws -> AutoencoderKL {
        if startsFromModel { return try initModel().loadVAE() }
        let vae = try AutoencoderKL(config: config.vae)
        let options = config.vaeTraining.trainer
        let latest = TrainerCheckpoint.latest(in: vaeFolder)
        if (latest?.step ?? -1) < options.steps {
            if let unetStarted = TrainerCheckpoint.latest(in: unetFolder) {
                throw TrainingError.checkpoint(path: unetStarted.path, reason: "the U-Net stage has started, so the autoencoder's steps cannot grow to \(options.steps)")
            }
            let trainer = try Trainer(folder: vaeFolder, parameters: vae.namedParameters(), options: options,
                                      optionsFile: "vae_training.trainer")
            if try trainer.resume() == nil {
                try vae.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(1))
                if let logvar = config.vaeTraining.initialLogvar { vae.setInitialLogVariance(logvar) }
            }
            let training = config.vaeTraining
            let preview = config.preview
            trainer.afterStep = { [weak self] report in
                guard let self else { return }
                self.onStep?(.vae, report)
                if preview.every > 0, report.step % preview.every == 0 || report.step == report.totalSteps, let onPreview = self.onPreview {
                    try onPreview(.vae, report.step, self.reconstructions(vae))
                }
            }
            trainer.afterLogWrite = { [weak self] records in
                guard let self else { return }
                try self.onLog?(.vae, self.vaeFolder, records)
            }
            let objectWeightKey = "vae_training.object_weight"
            let objectWeight = try activeObjectWeight(training.objectWeight, key: objectWeightKey)
            onStageStart?(.vae, trainer.step, options.steps)
            try trainer.train { step, random in
                self.lastStepSamples = training.batchSize
                let (pixels, _, masks) = try self.batch(index: step, count: training.batchSize, frames: 1,
                                                        masksFor: objectWeight == nil ? nil : objectWeightKey)
                var weights: Tensor?
                if let objectWeight, let masks { weights = masks * objectWeight + 1 }
                return try PretrainingObjectives.autoencoderLoss(vae, pixels: pixels, random: &random, l1Weight: training.l1Weight,
                                                                 l2Weight: training.l2Weight, klWeight: training.klWeight,
                                                                 pixelWeights: weights)
            }
        }
        guard let final = TrainerCheckpoint.latest(in: vaeFolder) else {
            throw TrainingError.checkpoint(path: vaeFolder, reason: "no autoencoder checkpoint after its stage")
        }
        try vae.loadWeights(from: InMemoryWeights(TrainerCheckpoint.finalWeights(final.path), location: final.path))
        return vae
    }

    // MARK: Stage 1b

    /// Trains (or finishes training) the text encoder alone on the data's captions; returns the
    /// final weights of the encoder (under `text_encoder.`) and its head (`head.`), or nil when the
    /// stage is off (0 steps). In a run that starts from a model the encoder is that model's and
    /// stays frozen: only the head trains (only the head is returned), and only when the U-Net
    /// stage keeps the warm-up's objective.
    @discardableResult
    public func warmUpTextEncoder() throws -> [String: Tensor]? {
        let warmup = config.textEncoderWarmup
        let options = warmup.trainer
        guard options.steps > 0 else { return nil }
        let fromModel = startsFromModel
        if fromModel, !keepsWarmupObjective { return nil }
        let folder = textEncoderWarmupFolder
        if (TrainerCheckpoint.latest(in: folder)?.step ?? -1) < options.steps {
            if let unetStarted = TrainerCheckpoint.latest(in: unetFolder) {
                throw TrainingError.checkpoint(path: unetStarted.path,
                    reason: "the U-Net stage has started, so the text-encoder warm-up cannot grow to \(options.steps) steps (text_encoder_warmup.trainer.max_train_steps)")
            }
            let textEncoder = try fromModel ? initModel().loadTextEncoder() : CLIPTextModel(config: config.textEncoder)
            let head = warmupHead()
            var parameters = head.namedParameters(prefix: "head.")
            if fromModel {
                textEncoder.setRequiresGrad(false)
            } else {
                parameters = textEncoder.namedParameters(prefix: "text_encoder.") + parameters
            }
            let trainer = try Trainer(folder: folder, parameters: parameters, options: options,
                                      optionsFile: "text_encoder_warmup.trainer")
            if try trainer.resume() == nil {
                if !fromModel { try initializeFresh(textEncoder: textEncoder) }
                try initializeFresh(head: head)
            }
            trainer.afterStep = { [weak self] report in self?.onStep?(.textEncoderWarmup, report) }
            trainer.afterLogWrite = { [weak self] records in
                guard let self else { return }
                try self.onLog?(.textEncoderWarmup, folder, records)
            }
            onStageStart?(.textEncoderWarmup, trainer.step, options.steps)
            try trainer.train { step, random in
                self.lastStepSamples = warmup.batchSize
                let captions = try self.data.captions(index: step, count: warmup.batchSize)
                let (loss, accuracy) = try TextEncoderWarmupObjective.loss(textEncoder: textEncoder, head: head, tokenizer: self.tokenizer,
                                                                           captions: captions, random: &random)
                self.warmupSlotAccuracy = accuracy
                return loss
            }
        }
        guard let final = TrainerCheckpoint.latest(in: folder) else {
            throw TrainingError.checkpoint(path: folder, reason: "no text-encoder warm-up checkpoint after its stage")
        }
        return try TrainerCheckpoint.finalWeights(final.path)
    }

    // MARK: Stage 2

    /// Finishes the text-encoder warm-up, then trains (or finishes training) the U-Net, and the text
    /// encoder when `unet_training.train_text_encoder`, over the frozen `vae`; in an animatediff run
    /// then the motion stage (`trainMotion`). Saves model/ and returns its path.
    public func trainDenoiser(vae trainedVAE: AutoencoderKL) throws -> String {
        let stage = try trainUNetStage(vae: trainedVAE)
        switch config.architecture {
        case .unet3d:
            try stage.trainer.withAveragedWeights { try stage.pipeline().save(to: modelFolder, dtype: .f16, overwrite: true) }
            return modelFolder
        case .animatediff:
            // The motion stage starts from the stage's averaged weights, read back from its last
            // checkpoint (so a resumed run starts it from the same bytes).
            guard let final = TrainerCheckpoint.latest(in: unetFolder), let image = stage.unet as? UNet2DConditionModel else {
                throw TrainingError.checkpoint(path: unetFolder, reason: "no U-Net checkpoint after its stage")
            }
            let weights = InMemoryWeights(try TrainerCheckpoint.finalWeights(final.path), location: final.path)
            try image.loadWeights(from: weights, prefix: "unet.")
            if config.unetTraining.trainTextEncoder { try stage.textEncoder.loadWeights(from: weights, prefix: "text_encoder.") }
            return try trainMotion(vae: stage.vae, image: image, textEncoder: stage.textEncoder)
        }
    }

    /// The U-Net stage: trains (or finishes training) the U-Net of the config's architecture (the
    /// 3-D U-Net, or the image U-Net on images) and returns the models and the trainer.
    private func trainUNetStage(vae trainedVAE: AutoencoderKL) throws
        -> (vae: AutoencoderKL, unet: any Denoiser, textEncoder: CLIPTextModel, trainer: Trainer, pipeline: () throws -> TextToVideoPipeline) {
        // The scaling factor is measured on a fixed batch, so a resumed run finds the same one.
        var vaeConfig = config.vae
        let fromModel = startsFromModel
        if !fromModel {
            let (probe, _) = try data.batch(index: 0, count: 32, frames: 1)
            vaeConfig.scalingFactor = try PretrainingObjectives.scalingFactor(trainedVAE, pixels: probe)
        }
        let vae = try AutoencoderKL(config: vaeConfig)
        try vae.loadWeights(from: InMemoryWeights(Dictionary(uniqueKeysWithValues: trainedVAE.stateDict())))
        vae.setRequiresGrad(false)

        // A run from a model starts from its U-Net and encoder (replaced by the checkpoint on resume).
        let start = try fromModel ? initModel() : nil
        let animateDiff = config.architecture == .animatediff
        let unet: any Denoiser
        switch (start, animateDiff) {
        case (_?, true) where drawsFreshDenoiser: unet = try UNet2DConditionModel(config: config.imageUNet)
        case (let start?, false): unet = try start.loadUNet()
        case (let start?, true):
            let loaded = try start.loadUNet()
            guard let image = try (loaded as? UNetMotionModel)?.imageUNet() ?? (loaded as? UNet2DConditionModel) else {
                throw TrainingError.checkpoint(path: initFolder, reason: "holds a \(loaded.className), not an AnimateDiff U-Net")
            }
            unet = image
        case (nil, false): unet = try UNet3DConditionModel(config: config.unet)
        case (nil, true): unet = try UNet2DConditionModel(config: config.imageUNet)
        }
        let options = config.unetTraining.trainer
        if animateDiff, (TrainerCheckpoint.latest(in: unetFolder)?.step ?? -1) < options.steps,
           let motionStarted = TrainerCheckpoint.latest(in: motionFolder) {
            throw TrainingError.checkpoint(path: motionStarted.path,
                reason: "the motion stage has started, so the U-Net stage cannot grow to \(options.steps) steps (unet_training.trainer.max_train_steps)")
        }
        // The encoder the stage starts from: the model's, the warmed-up one, or a fresh draw when
        // the warm-up is off. A frozen encoder stays so; a trained one is then replaced by its
        // checkpoint on resume.
        let warmed = try warmUpTextEncoder().map { InMemoryWeights($0, location: textEncoderWarmupFolder) }
        warmupSlotAccuracy = nil
        let textEncoder = try start?.loadTextEncoder() ?? CLIPTextModel(config: config.textEncoder)
        if !fromModel {
            if let warmed { try textEncoder.loadWeights(from: warmed, prefix: "text_encoder.") } else { try initializeFresh(textEncoder: textEncoder) }
        }
        var parameters = unet.namedParameters(prefix: "unet.")
        // The warm-up's objective kept as a second loss: its head starts where the warm-up left it.
        var warmupHead: CaptionSlotHead?
        if keepsWarmupObjective {
            let head = self.warmupHead()
            if let warmed { try head.loadWeights(from: warmed, prefix: "head.") } else { try initializeFresh(head: head) }
            parameters += head.namedParameters(prefix: "head.")
            warmupHead = head
        }
        if config.unetTraining.trainTextEncoder {
            parameters += textEncoder.namedParameters(prefix: "text_encoder.")
        } else {
            textEncoder.setRequiresGrad(false)
        }
        let trainer = try Trainer(folder: unetFolder, parameters: parameters, options: options, optionsFile: "unet_training.trainer")
        if try trainer.resume() == nil, !fromModel || drawsFreshDenoiser {
            try unet.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(2))
        }
        let scheduler = DDPMScheduler(config: config.scheduler)
        let training = config.unetTraining
        let tokenizerFiles = try self.tokenizerFiles()
        let pipeline = { [tokenizer, config] in
            try TextToVideoPipeline(tokenizer: tokenizer, textEncoder: textEncoder, unet: unet, vae: vae,
                                    schedulerConfig: config.scheduler, tokenizerFiles: tokenizerFiles)
        }
        // A finished stage of an animatediff run is only read back (no progress bar for it).
        if animateDiff, trainer.isFinished, TrainerCheckpoint.latest(in: unetFolder)?.step == options.steps {
            return (vae, unet, textEncoder, trainer, pipeline)
        }
        // The image U-Net draws pictures: the first frame of each prompt. Its model/ at a checkpoint
        // is a picture model, which eval reads with one frame and --init-from continues; the motion
        // stage replaces it.
        attachDenoiserHooks(trainer, stage: .unet, folder: unetFolder, steps: options.steps,
                            previewFrames: { animateDiff ? 1 : $0.frames }, pipeline: pipeline)
        let objectWeightKey = "unet_training.object_weight"
        let objectWeight = try activeObjectWeight(training.objectWeight, key: objectWeightKey)
        onStageStart?(.unet, trainer.step, options.steps)
        try trainer.train { step, random in
            let clipStep = random.uniformValues(count: 1)[0] < training.clipFraction
            let count = clipStep ? training.clipBatchSize : training.imageBatchSize
            let frames = clipStep ? training.clipFrames : 1
            self.lastStepSamples = count
            let (pixels, captions, masks) = try self.batch(index: step, count: count, frames: frames,
                                                           masksFor: objectWeight == nil ? nil : objectWeightKey)
            var latentRandom = random.derived(2)
            let latents = try PretrainingObjectives.latents(vae, pixels: pixels, frames: frames,
                                                            scalingFactor: vaeConfig.scalingFactor, random: &latentRandom)
            let weights = try PretrainingObjectives.objectCellWeights(masks: masks, frames: frames, latents: latents, objectWeight: objectWeight)
            let loss = try PretrainingObjectives.diffusionLoss(unet: unet, textEncoder: textEncoder, tokenizer: self.tokenizer,
                                                               scheduler: scheduler, latents: latents, captions: captions,
                                                               captionDropout: training.captionDropout, snrGamma: training.snrGamma,
                                                               elementWeights: weights, random: &random)
            guard let warmupHead else { return loss }
            var warmupRandom = random.derived(3)
            let warmup = try TextEncoderWarmupObjective.loss(textEncoder: textEncoder, head: warmupHead, tokenizer: self.tokenizer,
                                                             captions: self.data.captions(index: step, count: training.warmupLossBatchSize),
                                                             random: &warmupRandom)
            self.warmupSlotAccuracy = warmup.slotAccuracy
            return try loss + warmup.loss * training.warmupLossWeight
        }
        return (vae, unet, textEncoder, trainer, pipeline)
    }

    // MARK: Stage 3 (animatediff)

    /// The motion stage of an animatediff run: joins `image` (the U-Net stage's averaged image
    /// U-Net) with motion modules — the starting model's when the run started from an AnimateDiff
    /// folder, else a fresh draw whose output projections (`proj_out`) are zero, so the joined model
    /// first draws exactly what the image U-Net draws (AnimateDiff's `zero_initialize`) — and trains
    /// what `motion_training.trainable` names on clips, the rest frozen. Saves model/ (an
    /// `AnimateDiffPipeline` folder with the averaged weights in F16) and returns its path.
    public func trainMotion(vae: AutoencoderKL, image: UNet2DConditionModel, textEncoder: CLIPTextModel) throws -> String {
        let training = config.motionTraining
        let options = training.trainer
        warmupSlotAccuracy = nil
        let adapter: MotionAdapter
        if startsFromModel, !drawsFreshDenoiser, let motion = try initModel().loadUNet() as? UNetMotionModel {
            adapter = try motion.motionAdapter()
        } else {
            adapter = try MotionAdapter(config: config.motionAdapter, file: path(Self.configFile) + " (motion_adapter)")
            try adapter.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(5))
            for (path, tensor) in adapter.namedParameters() where path.contains(".proj_out.") { try tensor.assign(Tensor(zeros: tensor.shape)) }
        }
        let unet = try UNetMotionModel(image: image, adapter: adapter, adapterFile: path(Self.configFile) + " (motion_adapter)")
        unet.setRequiresGrad(false)
        textEncoder.setRequiresGrad(false)
        var parameters = unet.namedParameters().filter { training.trainable.trainsUNetParameter($0.path) }
            .map { (path: "unet." + $0.path, tensor: $0.tensor) }
        if training.trainable.trainsTextEncoder { parameters += textEncoder.namedParameters(prefix: "text_encoder.") }
        let trainer = try Trainer(folder: motionFolder, parameters: parameters, options: options, optionsFile: "motion_training.trainer")
        try trainer.resume()
        let scheduler = DDPMScheduler(config: config.scheduler)
        let tokenizerFiles = try self.tokenizerFiles()
        let pipeline = { [tokenizer, config] in
            try TextToVideoPipeline(tokenizer: tokenizer, textEncoder: textEncoder, unet: unet, vae: vae,
                                    schedulerConfig: config.scheduler, tokenizerFiles: tokenizerFiles)
        }
        attachDenoiserHooks(trainer, stage: .motion, folder: motionFolder, steps: options.steps,
                            previewFrames: \.frames, pipeline: pipeline)
        onStageStart?(.motion, trainer.step, options.steps)
        let scalingFactor = vae.config.scalingFactor
        let timestepCumulative = training.timestepBias.cumulativeWeights(timesteps: config.scheduler.numTrainTimesteps)
        let objectWeightKey = "motion_training.object_weight"
        let objectWeight = try activeObjectWeight(training.objectWeight, key: objectWeightKey)
        try trainer.train { step, random in
            self.lastStepSamples = training.clipBatchSize
            let source = step < (training.focus?.steps ?? 0) ? self.focusedData : nil
            let (pixels, captions, masks) = try self.batch(index: step, count: training.clipBatchSize, frames: training.clipFrames,
                                                           masksFor: objectWeight == nil ? nil : objectWeightKey, from: source)
            var latentRandom = random.derived(2)
            let latents = try PretrainingObjectives.latents(vae, pixels: pixels, frames: training.clipFrames,
                                                            scalingFactor: scalingFactor, random: &latentRandom)
            let weights = try PretrainingObjectives.objectCellWeights(masks: masks, frames: training.clipFrames, latents: latents,
                                                                      objectWeight: objectWeight)
            return try PretrainingObjectives.diffusionLoss(unet: unet, textEncoder: textEncoder, tokenizer: self.tokenizer,
                                                           scheduler: scheduler, latents: latents, captions: captions,
                                                           captionDropout: training.captionDropout, snrGamma: training.snrGamma,
                                                           elementWeights: weights, timestepCumulative: timestepCumulative, random: &random)
        }
        try trainer.withAveragedWeights { try pipeline().save(to: modelFolder, dtype: .f16, overwrite: true) }
        return modelFolder
    }

    // MARK: Helpers

    /// The hooks of a denoiser stage (the U-Net stage and the motion stage): progress; a preview
    /// grid of the averaged weights when due, `previewFrames` frames per prompt; the loss log; and,
    /// under `saveModelAtCheckpoints`, model/ at every checkpoint before the last.
    func attachDenoiserHooks(_ trainer: Trainer, stage: PretrainingStage, folder: String, steps: Int,
                             previewFrames: @escaping (PretrainConfig.Preview.Prompt) -> Int,
                             pipeline: @escaping () throws -> TextToVideoPipeline) {
        let preview = config.preview
        trainer.afterStep = { [weak self, unowned trainer] report in
            guard let self else { return }
            self.onStep?(stage, report)
            let due = preview.every > 0 && (report.step % preview.every == 0 || report.step == report.totalSteps)
            if due, let onPreview = self.onPreview, !preview.prompts.isEmpty {
                let samples = try trainer.withAveragedWeights {
                    let pipe = try pipeline()
                    return try preview.prompts.map { item in
                        let video = try pipe.generate(prompt: item.prompt, frames: previewFrames(item), steps: preview.steps,
                                                      guidance: preview.guidance, seed: preview.seed)
                        return PreviewSample(prompt: item.prompt, frames: video.frames)
                    }
                }
                try onPreview(stage, report.step, samples)
            }
        }
        trainer.afterLogWrite = { [weak self] records in
            try self?.onLog?(stage, folder, records)
        }
        trainer.afterCheckpoint = { [weak self, unowned trainer] step, _ in
            guard let self, self.saveModelAtCheckpoints, step < steps else { return }
            try trainer.withAveragedWeights { try pipeline().save(to: self.modelFolder, dtype: .f16, overwrite: true) }
        }
    }

    /// Whether the U-Net stage keeps the warm-up's objective as a second loss (and so its head).
    var keepsWarmupObjective: Bool {
        config.unetTraining.trainTextEncoder && config.unetTraining.warmupLossWeight > 0
    }

    /// Writes each file atomically into `folder` (created).
    static func writeFiles(_ files: [String: Data], to folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for (name, contents) in files {
                try contents.write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(name)), options: .atomic)
            }
        } catch {
            throw TrainingError.checkpoint(path: folder, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// The warm-up's caption-slot head for this config's text encoder.
    func warmupHead() -> CaptionSlotHead {
        CaptionSlotHead(hiddenSize: config.textEncoder.hiddenSize, slots: config.warmupSlots, vocabulary: config.textEncoder.vocabSize)
    }

    /// A new run's text encoder: the same draw whether the warm-up starts from it or, with the
    /// warm-up off, the U-Net stage does.
    func initializeFresh(textEncoder: CLIPTextModel) throws {
        try textEncoder.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(3))
    }

    func initializeFresh(head: CaptionSlotHead) throws {
        try head.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(4))
    }

    /// An `object_weight` option's weight when it is on (positive) and the data can tell objects
    /// from background; throws naming `key` when it cannot.
    func activeObjectWeight(_ weight: Float?, key: String) throws -> Float? {
        guard let weight, weight > 0 else { return nil }
        guard data.providesObjectMasks else { throw missingMasks(key: key) }
        return weight
    }

    /// Batch `index` of the data, with its object masks when `key` (the option that needs them)
    /// is given: one render serves both.
    func batch(index: Int, count: Int, frames: Int, masksFor key: String?,
               from source: PretrainingData? = nil) throws -> (pixels: Tensor, captions: [String], masks: Tensor?) {
        let data = source ?? self.data
        guard let key else {
            let (pixels, captions) = try data.batch(index: index, count: count, frames: frames)
            return (pixels, captions, nil)
        }
        let batch = try data.maskedBatch(index: index, count: count, frames: frames)
        guard batch.masks != nil else { throw missingMasks(key: key) }
        return batch
    }

    private func missingMasks(key: String) -> TrainingError {
        .badOptions(file: path(Self.configFile), key: key, reason: "this data cannot tell objects from background; leave the key out")
    }

    /// Four fixed images, each beside its reconstruction from the posterior mean.
    func reconstructions(_ vae: AutoencoderKL) throws -> [PreviewSample] {
        let (pixels, captions) = try data.batch(index: 0, count: 4, frames: 1)
        let decoded = try Tensor.withoutGrad { try vae.decode(vae.encodeDistribution(pixels).mean) }
        return try captions.indices.map { index in
            PreviewSample(prompt: "reconstruction of: " + captions[index],
                          frames: [try pixels.slice(axis: 0, index..<(index + 1)).reshaped(Array(pixels.shape.dropFirst())),
                                   try decoded.slice(axis: 0, index..<(index + 1)).reshaped(Array(decoded.shape.dropFirst()))])
        }
    }

    private func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }

    /// The tokenizer folder's files, saved unchanged into model/tokenizer/.
    func tokenizerFiles() throws -> [String: Data] {
        var files: [String: Data] = [:]
        let names = try FileManager.default.contentsOfDirectory(atPath: tokenizerFolder)
        for name in names where !name.hasPrefix(".") {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: (tokenizerFolder as NSString).appendingPathComponent(name)))
        }
        return files
    }

    private func saveConfig() throws {
        let file = path(Self.configFile)
        do { try config.encoded().write(to: URL(fileURLWithPath: file), options: .atomic) } catch {
            throw TrainingError.checkpoint(path: file, reason: "cannot write the config: \(error.localizedDescription)")
        }
    }

    /// The part of `data` that `config`'s motion-stage focus names (nil without one); throws naming
    /// the focus key the data cannot use. Checked before a new run writes anything.
    static func focusedPart(of data: PretrainingData, config: PretrainConfig, file: String) throws -> PretrainingData? {
        guard let focus = config.motionTraining.focus, config.architecture == .animatediff else { return nil }
        do {
            guard let part = try data.focused(focus) else {
                throw TrainingError.badOptions(file: file, key: "motion_training.focus", reason: "this data has no parts to draw from alone; leave the key out")
            }
            return part
        } catch let error as PretrainingFocusError {
            throw TrainingError.badOptions(file: file, key: "motion_training.focus" + (error.key.isEmpty ? "" : "." + error.key), reason: error.reason)
        }
    }

    /// The U-Net's sample_size must be the latent side of the data's images.
    private func checkData() throws {
        let downsampling = 1 << (config.vae.blockOutChannels.count - 1)
        guard data.imageSide % downsampling == 0 else {
            throw TrainingError.badOptions(file: "config", key: "vae.block_out_channels",
                                           reason: "\(config.vae.blockOutChannels.count) blocks downsample by \(downsampling), which does not divide the \(data.imageSide)-pixel images")
        }
        let latentSide = data.imageSide / downsampling
        let (key, sampleSize) = config.architecture == .animatediff
            ? ("image_unet.sample_size", config.imageUNet.sampleSize) : ("unet.sample_size", config.unet.sampleSize)
        if case .single(let side)? = sampleSize, side != latentSide {
            throw TrainingError.badOptions(file: "config", key: key,
                                           reason: "\(side), but \(data.imageSide)-pixel images give \(latentSide)-latent sides")
        }
    }
}
