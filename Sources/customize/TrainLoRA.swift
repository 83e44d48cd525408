import Adapters
import ArgumentParser
import Diffusion
import Foundation
import Methods

/// `customize train-lora IMAGES_DIR --token "<cat>" --out cat.safetensors`: a subject LoRA from a few
/// images (diffusers' `train_dreambooth_lora.py` without prior preservation; `SubjectLoRATraining`).
struct TrainLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-lora",
        abstract: "Learn a subject or concept LoRA from a folder of images.",
        discussion: """
        Every image in IMAGES_DIR (png, jpg, webp, bmp) is centre-cropped to the model's size plus a \
        margin of --crop-jitter latent pixels on each side, and its latents (and its mirror image's) are \
        cached. Its caption is the .txt file beside it (cat1.png + cat1.txt), else "a <token> <class>"; \
        a caption file should name the token. Each step trains on one image, flipped with probability \
        0.5 and cropped at a random offset, with the LoRA on the spatial transformers' attention and \
        feed-forward layers.

        The LoRA is written to --out (PEFT keys, rewritten at every checkpoint); the run (checkpoints, \
        loss.csv, loss.png, previews/ of "a <token> <class>", latents.safetensors) goes to \
        <out without extension>-run/ unless --run-dir says otherwise. A killed run continues with --resume.

        Examples:
          customize train-lora samples/concepts/cat --token "<cat>" --class cat --out loras/cat.safetensors
          customize render "a <cat> cat moving right on a blue background" --lora loras/cat.safetensors --out cat.mp4
        """)

    @Argument(help: "The folder of images (captions in .txt files beside them).") var images: String
    @Option(help: "The new word that names the subject, e.g. \"<cat>\".") var token: String
    @Option(name: .customLong("class"), help: "The subject's class word, e.g. cat (used in default captions and previews).")
    var className: String?
    @Option(help: "The LoRA file to write.") var out: String
    @Option(help: "LoRA rank (default 16).") var rank: Int?
    @Option(help: "Training steps (default 300).") var steps: Int?
    @Option(help: "Learning rate (default 5e-4).") var lr: Float?
    @Option(help: "Largest crop offset, in latent pixels each way (default 1; 0: centre crop only).") var cropJitter: Int?
    @Option(help: "A checkpoint every N steps (default 50).") var checkpointEvery: Int?
    @Option(help: "A preview every N steps (default 100; 0: none).") var previewEvery: Int?
    @Option(help: "The seed of every random draw (default 0).") var seed: UInt64?
    @Option(help: "The run folder (default <out without extension>-run).") var runDir: String?
    @Option(help: "Store the LoRA file as f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Continue the run from its newest checkpoint.") var resume = false
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @OptionGroup var decorOptions: DECOROptions
    @Flag(name: .customLong("decor-train"), help: "Also apply --decor-remove to the training captions' text embeddings.")
    var decorTrain = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        guard !token.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--token must not be empty") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1, got \(rank)") }
        if let steps, steps < 0 { throw ValidationError("--steps must not be negative, got \(steps)") }
        if let lr, !(lr.isFinite && lr >= 0) { throw ValidationError("--lr must be a number of 0 or more, got \(lr)") }
        if let cropJitter, cropJitter < 0 { throw ValidationError("--crop-jitter must not be negative, got \(cropJitter)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        if let previewEvery, previewEvery < 0 { throw ValidationError("--preview-every must not be negative, got \(previewEvery)") }
        _ = try AdapterFileType.parse(dtype)
        try decorOptions.validate(training: decorTrain)
        guard (out as NSString).pathExtension.lowercased() == "safetensors" else {
            throw ValidationError("--out names the LoRA file to write, ending in .safetensors, got '\(out)'")
        }
        if resume, rank != nil || lr != nil || cropJitter != nil || seed != nil || decorOptions.words != nil {
            throw ValidationError("--resume continues with the run's own settings; leave out --rank, --lr, --crop-jitter, --seed and --decor-remove")
        }
    }

    func run() throws {
        try threadOptions.apply()
        try RenderOutput.checkWritable(out, option: "--out")
        let folder = runDir ?? (out as NSString).deletingPathExtension + "-run"
        let pipeline = try motionAdapterOption.load(model)
        let baseModel = try BaseModelIdentity(modelFolder: model, pipeline: pipeline)
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
            if let lr { config.learningRate = lr }
            if let cropJitter { config.cropJitter = cropJitter }
            if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
            if let previewEvery { config.validationSteps = previewEvery }
            if let seed { config.seed = seed }
            config.decor = decorOptions.setting(training: decorTrain)
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
        try training.run(output: out, dtype: AdapterFileType.parse(dtype))
        print("trained in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); wrote \(out) (run in \(folder))")
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
            throw ExitStatus.Failure(status: .failure, message: "no usable image in '\(images)':\n"
                                     + skipped.map { "  \($0.name): \($0.reason)" }.joined(separator: "\n"))
        }
        return sources
    }
}
