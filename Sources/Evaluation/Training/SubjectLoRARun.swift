import Adapters
import Checkpoints
import Diffusion
import Foundation
import Methods

/// A subject or concept LoRA trained on a folder of images (`SubjectLoRATraining`): what
/// `customize train-lora` runs, and what `eval decor` and `eval b4m` train into their `--out`.
/// Unset settings are `SubjectLoRAConfig`'s defaults; a resumed run keeps its own settings and takes
/// only `steps`, `checkpointEvery` and `previewEvery`. The settings are taken as checked (the
/// command line checks them as options).
public struct SubjectLoRARun {
    /// The folder of images (captions in .txt files beside them).
    public var images: String
    /// The new word that names the subject, e.g. "<cat>".
    public var token: String
    public var className: String?
    /// The LoRA file to write (.safetensors).
    public var out: String
    public var rank: Int?
    public var steps: Int?
    public var learningRate: Float?
    public var cropJitter: Int?
    public var checkpointEvery: Int?
    /// A preview every N steps (0: none).
    public var previewEvery: Int?
    public var seed: UInt64?
    /// The run folder (default `<out without extension>-run`).
    public var runDirectory: String?
    /// How the LoRA file stores its tensors.
    public var dtype: SafeTensors.DType = .f32
    /// Continue the run in the run folder from its newest checkpoint.
    public var resume = false
    /// A diffusers text-to-video folder, and a MotionAdapter folder to join with it.
    public var model: String
    public var motionAdapter: String?
    /// DECOR on the training captions' text embeddings (`--decor-remove` with `--decor-train`).
    public var decor: DECORSetting?

    public init(images: String, token: String, out: String, model: String) {
        self.images = images
        self.token = token
        self.out = out
        self.model = model
    }

    public var runFolder: String { AdapterRun.runFolder(runDirectory, out: out) }

    /// Trains (or continues) the run and writes the LoRA; progress and warnings go to standard error.
    public func run() throws -> AdapterRunResult {
        try OutputFile.checkWritable(out, option: "--out")
        let folder = runFolder
        let (pipeline, baseModel) = try AdapterRun.loadModel(model, motionAdapter: motionAdapter)
        let training: SubjectLoRATraining
        if resume {
            training = try SubjectLoRATraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { config in
                if let steps { config.maxTrainSteps = steps }
                if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
                if let previewEvery { config.validationSteps = previewEvery }
            }
        } else {
            try RunFolder.requireFresh(folder)
            var config = SubjectLoRAConfig()
            if let rank { config.rank = rank }
            if let steps { config.maxTrainSteps = steps }
            if let learningRate { config.learningRate = learningRate }
            if let cropJitter { config.cropJitter = cropJitter }
            if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
            if let previewEvery { config.validationSteps = previewEvery }
            if let seed { config.seed = seed }
            config.decor = decor
            let sources = try readImages(pipeline: pipeline, jitter: config.cropJitter)
            let encoding = ProgressReporter("train-lora: encoding images", total: sources.count, unit: "image")
            let cached = try MotionTrainingClip.encode(sources, pipeline: pipeline, flips: config.randomFlip > 0, seed: config.seed) { done, _ in
                encoding.update(done)
            }
            training = try SubjectLoRATraining(newRunIn: folder, pipeline: pipeline, config: config, images: cached, token: token,
                                               className: className, baseModel: baseModel)
        }
        FileHandle.standardError.write("train-lora: \(training.images.count) image\(training.images.count == 1 ? "" : "s"), "
                                       + "\(training.config.maxTrainSteps) steps; subject prompt \"\(training.subjectPrompt)\"\n")
        AdapterTrainingReport.attach(training.training, label: "train-lora")
        training.onPreview = { step, samples in try AdapterTrainingReport.writePreview(samples, step: step, folder: folder) }
        let started = Date()
        try training.run(output: out, dtype: dtype)
        return AdapterRunResult(output: out, runFolder: folder, seconds: Date().timeIntervalSince(started), verb: "trained")
    }

    /// The images at the model's size plus the jitter margin, with their captions; unreadable ones skipped.
    func readImages(pipeline: TextToVideoPipeline, jitter: Int) throws -> [MotionClipSource] {
        let names = try TrainingMedia.files(in: images, extensions: TrainingMedia.imageExtensions, kind: "images")
        let margin = 2 * jitter * pipeline.vaeScaleFactor
        let width = pipeline.pixelSize.width + margin, height = pipeline.pixelSize.height + margin
        let fallback = "a \(token)" + (className.map { " \($0)" } ?? "")
        var sources: [MotionClipSource] = [], skipped: [(name: String, reason: String)] = []
        for name in names {
            let path = (images as NSString).appendingPathComponent(name)
            do {
                let caption = try TrainingMedia.caption(besides: path) ?? fallback
                if !caption.contains(token) {
                    FileHandle.standardError.write("customize train-lora: warning: the caption of '\(name)' does not name \(token): \"\(caption)\"\n")
                }
                let image = try TrainingMedia.image(path, width: width, height: height)
                sources.append(MotionClipSource(name: name, caption: caption, frames: try TrainingMedia.tensor([image])))
            } catch {
                skipped.append((name, describe(error)))
            }
        }
        TrainingMedia.warnSkipped(skipped, command: "train-lora")
        guard !sources.isEmpty else {
            throw EvaluationError("no usable image in '\(images)':\n" + skipped.map { "  \($0.name): \($0.reason)" }.joined(separator: "\n"))
        }
        return sources
    }
}
