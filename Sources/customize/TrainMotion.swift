import Adapters
import ArgumentParser
import Checkpoints
import Diffusion
import Foundation
import Methods

/// `customize train-motion CLIPS_DIR`: MotionDirector (showlab/MotionDirector `MotionDirector_train.py`)
/// on a folder of clips showing one motion: a temporal LoRA that carries the motion, and spatial
/// LoRAs that take up the clips' look so the temporal one does not.
struct TrainMotion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-motion",
        abstract: "Learn a motion from a folder of clips (MotionDirector): a temporal LoRA plus per-clip spatial LoRAs.",
        discussion: """
        Every clip in CLIPS_DIR (mp4, mov, webm, mkv, avi, gif, …; any length, size and frame rate) is \
        sampled to the run's frame count (default 8, spread evenly over the clip; train_data.fps samples \
        at that rate from the start instead) and centre-cropped to the model's size. Its caption is the \
        .txt file beside it (clip.mp4 + clip.txt), else --prompt. A clip that cannot be decoded, or has \
        fewer frames than the run samples, is named and skipped (frames are never repeated: a repeated \
        frame would teach a pause).

        Each step trains the spatial path (one random frame, only that clip's spatial LoRA on) and the \
        temporal path (the whole clip, the temporal LoRA on and the clip's spatial LoRA on but frozen, \
        all spatial LoRAs off with probability 0.2) with the appearance-debiased loss \
        MSE(ε̂, ε) + MSE(φ(ε̂), φ(ε)), φ(e) = sqrt(β²+1)·e − β·e[anchor frame].

        The run folder gets temporal.safetensors, spatial-<clip>.safetensors (PEFT keys; both rewritten at \
        every checkpoint), loss.csv and loss.png, previews/ (the validation prompts rendered with the \
        motion every --preview-every steps), checkpoint-NNNNNN/, latents.safetensors (the VAE encodes each \
        clip once) and motion_run.json. A killed run continues with --resume and loses at most one \
        checkpoint interval.

        --config reads a YAML file with the keys of MotionDirector's configs (lora_rank, learning_rate, \
        adam_weight_decay, max_train_steps, checkpointing_steps, validation_steps, train_data: \
        {n_sample_frames, width, height, fps, fallback_prompt}, validation_data: {prompt, num_inference_steps, \
        guidance_scale, spatial_scale, noise_prior}, …) plus ours: debias_beta, spatial_lora_off_probability, \
        seed. Options on the command line override the file.

        Examples:
          customize train-motion samples/clips --out motions/zigzag
          customize train-motion clips/ --prompt "a ball zigzagging" --steps 150 --beta 1 --out motions/ball
          customize train-motion clips/ --config motion.yaml --out motions/ball
          customize train-motion clips/ --out motions/ball --resume --steps 400
        """)

    @Argument(help: "The folder of clips (captions in .txt files beside them).") var clips: String
    @Option(help: "The caption of clips without a .txt file beside them.") var prompt: String?
    @Option(help: "A YAML config with MotionDirector's keys.") var config: String?
    @Option(help: "The run folder (default motions/<clips folder name>).") var out: String?
    @Option(help: "Training steps (max_train_steps, default 300).") var steps: Int?
    @Option(help: "LoRA rank (lora_rank, default 32).") var rank: Int?
    @Option(help: "Learning rate (learning_rate, default 5e-4).") var lr: Float?
    @Option(help: "β of the appearance-debiased loss (default 1; 0: plain MSE twice).") var beta: Float?
    @Flag(help: "One spatial LoRA shared by all clips instead of one per clip.") var singleSpatial = false
    @Option(help: "A checkpoint every N steps (checkpointing_steps, default 50).") var checkpointEvery: Int?
    @Option(help: "A preview every N steps (validation_steps, default 100; 0: none).") var previewEvery: Int?
    @Option(help: "The seed of every random draw (default 0).") var seed: UInt64?
    @Option(help: "Store the LoRA files as f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Continue the run in --out from its newest checkpoint (with its own config and cached clips).") var resume = false
    @Option(help: "A diffusers text-to-video folder.") var model = "samples/base"
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        if let steps, steps < 0 { throw ValidationError("--steps must not be negative, got \(steps)") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1, got \(rank)") }
        if let lr, !(lr.isFinite && lr >= 0) { throw ValidationError("--lr must be a number of 0 or more, got \(lr)") }
        if let beta, !(beta.isFinite && beta >= 0) { throw ValidationError("--beta must be a number of 0 or more, got \(beta)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        if let previewEvery, previewEvery < 0 { throw ValidationError("--preview-every must not be negative, got \(previewEvery)") }
        _ = try AdapterFileType.parse(dtype)
        if resume {
            let fixed: [(String, Bool)] = [("--config", config != nil), ("--prompt", prompt != nil), ("--rank", rank != nil),
                                           ("--lr", lr != nil), ("--beta", beta != nil), ("--single-spatial", singleSpatial),
                                           ("--seed", seed != nil)]
            if let given = fixed.first(where: \.1) {
                throw ValidationError("--resume continues with the run's own settings and cached clips; leave out \(given.0)")
            }
        }
    }

    var outputFolder: String {
        out ?? "motions/" + (URL(fileURLWithPath: clips).standardizedFileURL.lastPathComponent)
    }

    func run() throws {
        try threadOptions.apply()
        let folder = outputFolder
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let baseModel = try BaseModelIdentity(name: URL(fileURLWithPath: model).standardizedFileURL.lastPathComponent,
                                              unetConfig: pipeline.unet.config)
        let training: MotionDirectorTraining
        if resume {
            training = try MotionDirectorTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { config in
                if let steps { config.maxTrainSteps = steps }
                if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
                if let previewEvery { config.validationSteps = previewEvery }
            }
        } else {
            if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
                let what = contents.contains(MotionDirectorTraining.runFile) ? "already holds a MotionDirector run" : "is not empty"
                throw ExitStatus.Failure(status: .failure, message: "\(folder) \(what); pass --resume to continue it, or choose a new --out folder")
            }
            let config = try resolvedConfig()
            let size = try trainingSize(config, pipeline: pipeline)
            let scan = try TrainingMedia.clips(in: clips, frames: config.trainData.sampleFrames, width: size.width, height: size.height,
                                               fps: config.trainData.fps, fallbackCaption: prompt ?? config.trainData.fallbackPrompt)
            TrainingMedia.warnSkipped(scan.skipped, command: "train-motion")
            let encoding = ProgressReporter("train-motion: encoding clips", total: scan.items.count, unit: "clip")
            let cached = try MotionTrainingClip.encode(scan.items, pipeline: pipeline, flips: config.randomHorizontalFlip > 0,
                                                       seed: config.seed) { done, _ in encoding.update(done) }
            training = try MotionDirectorTraining(newRunIn: folder, pipeline: pipeline, config: config, clips: cached, baseModel: baseModel)
        }
        FileHandle.standardError.write("train-motion: \(training.clips.count) clip\(training.clips.count == 1 ? "" : "s") ("
                                       + training.clips.map(\.name).joined(separator: ", ") + "), "
                                       + "\(training.clips[0].latents.shape[2]) frames each, \(training.config.maxTrainSteps) steps\n")
        AdapterTrainingReport.attach(training.training, label: "train-motion")
        training.onPreview = { step, samples in
            try AdapterTrainingReport.writePreview(samples, step: step, folder: folder)
        }
        let started = Date()
        try training.run()
        let written = try training.saveAdapters(dtype: AdapterFileType.parse(dtype))
        print("trained in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); wrote "
              + written.joined(separator: ", "))
    }

    /// The config file (or the defaults) with the command line's options on top.
    func resolvedConfig() throws -> MotionDirectorConfig {
        var config = MotionDirectorConfig()
        if let path = self.config {
            let loaded = try MotionConfigFile.load(path)
            config = loaded.config
            if !loaded.unused.isEmpty {
                FileHandle.standardError.write("train-motion: \(path): not used here: \(loaded.unused.joined(separator: ", "))\n")
            }
            if !loaded.unknown.isEmpty {
                FileHandle.standardError.write("customize train-motion: warning: \(path): unknown keys ignored: \(loaded.unknown.joined(separator: ", "))\n")
            }
        }
        if let steps { config.maxTrainSteps = steps }
        if let rank { config.loraRank = rank }
        if let lr { config.learningRate = lr }
        if let beta { config.debiasBeta = beta }
        if singleSpatial { config.singleSpatialLoRA = true }
        if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
        if let previewEvery { config.validationSteps = previewEvery }
        if let seed { config.seed = seed }
        try config.validate(file: self.config ?? "options")
        return config
    }

    /// The training frames' pixel size: train_data.width/height, else the model's render size; both
    /// must be multiples of the VAE's downsampling.
    func trainingSize(_ config: MotionDirectorConfig, pipeline: TextToVideoPipeline) throws -> (width: Int, height: Int) {
        let width = config.trainData.width ?? pipeline.pixelSize.width
        let height = config.trainData.height ?? pipeline.pixelSize.height
        let factor = pipeline.vaeScaleFactor
        guard width % factor == 0, height % factor == 0 else {
            throw TrainingError.badOptions(file: self.config ?? "options", key: "train_data.width/height",
                                           reason: "\(width)x\(height) must be multiples of the VAE's downsampling \(factor)")
        }
        return (width, height)
    }
}

/// `--dtype` of the LoRA-writing commands.
enum AdapterFileType {
    static func parse(_ text: String) throws -> SafeTensors.DType {
        switch text.lowercased() {
        case "f32", "float32": return .f32
        case "f16", "float16": return .f16
        case "bf16", "bfloat16": return .bf16
        default: throw ValidationError("--dtype expects f32, f16 or bf16, got \"\(text)\"")
        }
    }
}
