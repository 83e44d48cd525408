import Adapters
import ArgumentParser
import Checkpoints
import Diffusion
import Evaluation
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

        --plain trains the baseline issue 6 compares MotionDirector with instead: one LoRA on the same \
        layers (spatial self-attention and feed-forward, and the temporal transformers), trained on \
        whole clips with plain MSE — no spatial path, no per-clip appearance LoRAs, no debiasing — with \
        the same rank, learning rate and steps. It writes plain.safetensors (apply it with render \
        --lora) and plain_run.json; the default folder is motions/<clips folder name>-plain.

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
          customize train-motion samples/clips --plain --out motions/zigzag-plain
        """)

    @Argument(help: "The folder of clips (captions in .txt files beside them).") var clips: String
    @Option(help: "The caption of clips without a .txt file beside them.") var prompt: String?
    @Option(help: "A YAML config with MotionDirector's keys.") var config: String?
    @Option(help: "The run folder (default motions/<clips folder name>).") var out: String?
    @Option(help: "Training steps (max_train_steps, default 1500).") var steps: Int?
    @Option(help: "LoRA rank (lora_rank, default 32).") var rank: Int?
    @Option(help: "Learning rate (learning_rate, default 1e-3).") var lr: Float?
    @Option(help: "β of the appearance-debiased loss (default 1; 0: plain MSE twice).") var beta: Float?
    @Flag(help: "One spatial LoRA shared by all clips instead of one per clip.") var singleSpatial = false
    @Flag(help: "Train the plain LoRA baseline instead: one LoRA on the same layers, whole clips, plain MSE.") var plain = false
    @Option(help: "A checkpoint every N steps (checkpointing_steps, default 100).") var checkpointEvery: Int?
    @Option(help: "A preview every N steps (validation_steps, default 300; 0: none).") var previewEvery: Int?
    @Option(help: "The seed of every random draw (default 0).") var seed: UInt64?
    @Option(help: "Store the LoRA files as f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Continue the run in --out from its newest checkpoint (with its own config and cached clips).") var resume = false
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        if let steps, steps < 0 { throw ValidationError("--steps must not be negative, got \(steps)") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1, got \(rank)") }
        if let lr, !(lr.isFinite && lr >= 0) { throw ValidationError("--lr must be a number of 0 or more, got \(lr)") }
        if let beta, !(beta.isFinite && beta >= 0) { throw ValidationError("--beta must be a number of 0 or more, got \(beta)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        if let previewEvery, previewEvery < 0 { throw ValidationError("--preview-every must not be negative, got \(previewEvery)") }
        _ = try AdapterFileType.parse(dtype)
        if plain, let given = [("--beta", beta != nil), ("--single-spatial", singleSpatial)].first(where: \.1) {
            throw ValidationError("--plain trains one LoRA on whole clips without MotionDirector's split; leave out \(given.0)")
        }
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
        out ?? "motions/" + (URL(fileURLWithPath: clips).standardizedFileURL.lastPathComponent) + (plain ? "-plain" : "")
    }

    func run() throws {
        try threadOptions.apply()
        let folder = outputFolder
        let pipeline = try motionAdapterOption.load(model)
        let baseModel = try BaseModelIdentity(modelFolder: model, pipeline: pipeline)
        let adjust = { (config: inout MotionDirectorConfig) in
            if let steps { config.maxTrainSteps = steps }
            if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
            if let previewEvery { config.validationSteps = previewEvery }
        }
        var newRun: (config: MotionDirectorConfig, clips: [MotionTrainingClip])?
        if !resume {
            if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
                let what = contents.contains(MotionDirectorTraining.runFile) ? "already holds a MotionDirector run"
                    : contents.contains(PlainMotionLoRATraining.runFile) ? "already holds a plain LoRA run" : "is not empty"
                throw ExitStatus.Failure(status: .failure, message: "\(folder) \(what); pass --resume to continue it, or choose a new --out folder")
            }
            let config = try resolvedConfig()
            newRun = (config, try encodedClips(config, pipeline: pipeline))
        }
        let started = Date()
        let written: [String]
        if plain {
            let training = try newRun.map {
                try PlainMotionLoRATraining(newRunIn: folder, pipeline: pipeline, config: $0.config, clips: $0.clips, baseModel: baseModel)
            } ?? PlainMotionLoRATraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel, adjust: adjust)
            announce(training.clips, steps: training.config.maxTrainSteps, label: "train-motion --plain")
            AdapterTrainingReport.attach(training.training, label: "train-motion --plain")
            training.onPreview = { step, samples in
                try AdapterTrainingReport.writePreview(samples, step: step, folder: folder)
            }
            written = [try training.run(dtype: AdapterFileType.parse(dtype))]
        } else {
            let training = try newRun.map {
                try MotionDirectorTraining(newRunIn: folder, pipeline: pipeline, config: $0.config, clips: $0.clips, baseModel: baseModel)
            } ?? MotionDirectorTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel, adjust: adjust)
            announce(training.clips, steps: training.config.maxTrainSteps, label: "train-motion")
            AdapterTrainingReport.attach(training.training, label: "train-motion")
            training.onPreview = { step, samples in
                try AdapterTrainingReport.writePreview(samples, step: step, folder: folder)
            }
            try training.run()
            written = try training.saveAdapters(dtype: AdapterFileType.parse(dtype))
        }
        print("trained in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); wrote "
              + written.joined(separator: ", "))
    }

    /// The clips of CLIPS_DIR sampled as `config` samples them, encoded by the VAE (cached latents).
    func encodedClips(_ config: MotionDirectorConfig, pipeline: TextToVideoPipeline) throws -> [MotionTrainingClip] {
        let size = try trainingSize(config, pipeline: pipeline)
        let scan = try TrainingMedia.clips(in: clips, frames: config.trainData.sampleFrames, width: size.width, height: size.height,
                                           fps: config.trainData.fps, fallbackCaption: prompt ?? config.trainData.fallbackPrompt)
        TrainingMedia.warnSkipped(scan.skipped, command: "train-motion")
        let encoding = ProgressReporter("train-motion: encoding clips", total: scan.items.count, unit: "clip")
        // The plain LoRA never flips (a flipped clip moves the other way).
        return try MotionTrainingClip.encode(scan.items, pipeline: pipeline, flips: !plain && config.randomHorizontalFlip > 0,
                                             seed: config.seed) { done, _ in encoding.update(done) }
    }

    func announce(_ clips: [MotionTrainingClip], steps: Int, label: String) {
        FileHandle.standardError.write("\(label): \(clips.count) clip\(clips.count == 1 ? "" : "s") ("
                                       + clips.map(\.name).joined(separator: ", ") + "), "
                                       + "\(clips[0].latents.shape[2]) frames each, \(steps) steps\n")
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
