import Adapters
import Checkpoints
import Diffusion
import Foundation
import Methods

/// What every Break-for-Make run shares (train-content, train-style, make): the file, the run
/// folder, the model and a new run's settings (unset ones are `BreakForMakeConfig`'s defaults). A
/// resumed run keeps its own settings and takes only `steps` and `checkpointEvery`. The settings are
/// taken as checked (the command line checks them as options).
public struct BreakForMakeRunSettings {
    /// The adapter file to write (.safetensors).
    public var out: String
    public var steps: Int?
    public var gradientAccumulationSteps: Int?
    public var learningRate: Float?
    public var cropJitter: Int?
    public var checkpointEvery: Int?
    /// Content and style runs must share it.
    public var seed: UInt64?
    /// The run folder (default `<out without extension>-run`).
    public var runDirectory: String?
    /// How the adapter file stores its tensors.
    public var dtype: SafeTensors.DType = .f32
    /// Continue the run in the run folder from its newest checkpoint.
    public var resume = false
    /// A diffusers text-to-video folder, and a MotionAdapter folder to join with it.
    public var model: String
    public var motionAdapter: String?

    public init(out: String, model: String) {
        self.out = out
        self.model = model
    }

    public var runFolder: String { AdapterRun.runFolder(runDirectory, out: out) }

    /// The settings of a new run.
    public func config(rank: Int?) -> BreakForMakeConfig {
        var config = BreakForMakeConfig()
        if let rank { config.rank = rank }
        if let steps { config.maxTrainSteps = steps }
        if let learningRate { config.learningRate = learningRate }
        if let gradientAccumulationSteps { config.gradientAccumulationSteps = gradientAccumulationSteps }
        if let cropJitter { config.cropJitter = cropJitter }
        if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
        if let seed { config.seed = seed }
        return config
    }

    /// What a resumed run may change.
    public func adjust(_ config: inout BreakForMakeConfig) {
        if let steps { config.maxTrainSteps = steps }
        if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
    }

    func loadPipeline() throws -> (TextToVideoPipeline, BaseModelIdentity) {
        try AdapterRun.loadModel(model, motionAdapter: motionAdapter)
    }
}

/// One Break-for-Make "break" run (`BreakTraining`): the content adapter learnt apart from the
/// auxiliary styles (`train-content`), or the style adapter apart from the auxiliary contents
/// (`train-style`).
public struct BreakRun {
    public var role: BreakTraining.Role
    /// The folder of the run's own images.
    public var images: String
    /// The word that names the object or the style.
    public var token: String
    /// The partner sets: auxiliary style folders for content, content folders for style.
    public var auxiliary: [String]
    public var rank: Int?
    /// A preview every N steps (0: none).
    public var previewEvery: Int?
    public var settings: BreakForMakeRunSettings

    public init(role: BreakTraining.Role, images: String, token: String, auxiliary: [String], settings: BreakForMakeRunSettings) {
        self.role = role
        self.images = images
        self.token = token
        self.auxiliary = auxiliary
        self.settings = settings
    }

    /// The command's name, as progress lines and warnings say it.
    public var label: String { role == .content ? "train-content" : "train-style" }

    /// Trains (or continues) the run and writes the adapter; progress and warnings go to standard error.
    public func run() throws -> AdapterRunResult {
        try OutputFile.checkWritable(settings.out, option: "--out")
        let folder = settings.runFolder
        let (pipeline, baseModel) = try settings.loadPipeline()
        let training: BreakTraining
        if settings.resume {
            training = try BreakTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { config in
                settings.adjust(&config)
                if let previewEvery { config.validationSteps = previewEvery }
            }
        } else {
            try RunFolder.requireFresh(folder)
            var config = settings.config(rank: rank)
            if let previewEvery { config.validationSteps = previewEvery }
            let ownCaption = role == .content ? "a \(token)" : "a picture in \(token) style"
            let own = try BreakForMakeImages.read(images, fallbackCaption: ownCaption, pipeline: pipeline,
                                                  jitter: config.cropJitter, command: label)
            for source in own where !source.caption.contains(token) {
                FileHandle.standardError.write("customize \(label): warning: the caption of '\(source.name)' does not name \(token): \"\(source.caption)\"\n")
            }
            var partners: [MotionClipSource] = []
            for folder in auxiliary {
                let name = BreakForMakeImages.setName(folder)
                let caption = role == .content ? "a picture in \(name) style" : "a \(name)"
                partners += try BreakForMakeImages.read(folder, fallbackCaption: caption, prefix: name + "/", pipeline: pipeline,
                                                        jitter: config.cropJitter, command: label)
            }
            let cachedOwn = try BreakForMakeImages.encode(own, pipeline: pipeline, config: config, label: "\(label): encoding images")
            let cachedPartners = try BreakForMakeImages.encode(partners, pipeline: pipeline, config: config,
                                                               label: "\(label): encoding auxiliary images")
            training = try BreakTraining(newRunIn: folder, role: role, pipeline: pipeline, config: config, images: cachedOwn,
                                         auxiliary: cachedPartners, token: token, baseModel: baseModel)
        }
        FileHandle.standardError.write("\(label): \(training.images.count) image\(training.images.count == 1 ? "" : "s"), "
                                       + "\(training.auxiliary.count) auxiliary, \(training.config.maxTrainSteps) steps, rank \(training.config.rank)\n")
        AdapterTrainingReport.attach(training.training, label: label)
        training.onPreview = { step, samples in try AdapterTrainingReport.writePreview(samples, step: step, folder: folder) }
        let started = Date()
        try training.run(output: settings.out, dtype: settings.dtype)
        return AdapterRunResult(output: settings.out, runFolder: folder, seconds: Date().timeIntervalSince(started), verb: "trained")
    }
}

/// Break-for-Make's second stage (`MakeTraining`, `customize make`): a content and a style adapter
/// combined and fine-tuned together on both image sets.
public struct MakeRun {
    /// The train-content and train-style adapters.
    public var content: String
    public var style: String
    /// The image folders they were trained on.
    public var contentImages: String
    public var styleImages: String
    public var settings: BreakForMakeRunSettings

    public init(content: String, style: String, contentImages: String, styleImages: String, settings: BreakForMakeRunSettings) {
        self.content = content
        self.style = style
        self.contentImages = contentImages
        self.styleImages = styleImages
        self.settings = settings
    }

    /// Makes (or continues) the adapter and writes it; progress goes to standard error.
    public func run() throws -> AdapterRunResult {
        try OutputFile.checkWritable(settings.out, option: "--out")
        let folder = settings.runFolder
        let (pipeline, baseModel) = try settings.loadPipeline()
        let training: MakeTraining
        if settings.resume {
            training = try MakeTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { settings.adjust(&$0) }
        } else {
            try RunFolder.requireFresh(folder)
            let config = settings.config(rank: nil)
            let contentToken = try Self.token(of: content), styleToken = try Self.token(of: style)
            let contentSources = try BreakForMakeImages.read(contentImages, fallbackCaption: "a \(contentToken)", pipeline: pipeline,
                                                             jitter: config.cropJitter, command: "make")
            let styleSources = try BreakForMakeImages.read(styleImages, fallbackCaption: "a picture in \(styleToken) style",
                                                           pipeline: pipeline, jitter: config.cropJitter, command: "make")
            training = try MakeTraining(newRunIn: folder, pipeline: pipeline, config: config, contentAdapter: content, styleAdapter: style,
                                        contentImages: BreakForMakeImages.encode(contentSources, pipeline: pipeline, config: config,
                                                                                 label: "make: encoding content images"),
                                        styleImages: BreakForMakeImages.encode(styleSources, pipeline: pipeline, config: config,
                                                                               label: "make: encoding style images"),
                                        baseModel: baseModel)
        }
        FileHandle.standardError.write("make: \(training.contentImages.count) content and \(training.styleImages.count) style images, "
                                       + "\(training.config.maxTrainSteps) steps\n")
        AdapterTrainingReport.attach(training.training, label: "make")
        let started = Date()
        try training.run(output: settings.out, dtype: settings.dtype)
        return AdapterRunResult(output: settings.out, runFolder: folder, seconds: Date().timeIntervalSince(started), verb: "made")
    }

    /// The token a Break-for-Make adapter file recorded.
    public static func token(of file: String) throws -> String {
        let metadata = LoRAFileMetadata(raw: try SafeTensorsFile(path: file).metadata)
        guard case let .string(token)? = metadata.training["token"] else {
            throw EvaluationError("'\(file)' records no token; is it a train-content or train-style adapter?")
        }
        return token
    }
}
