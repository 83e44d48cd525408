import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Tensor

/// `customize pretrain`: trains the base model on the synthetic world (autoencoder, then text
/// encoder and U-Net) into a run folder with checkpoints, loss curves, previews and, at the end, a
/// diffusers folder `model/`.
struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pretrain",
        abstract: "Train the base model from scratch on the synthetic world.",
        discussion: """
        Stage 1 trains the autoencoder on world images; stage 1b warms up the text encoder alone, \
        teaching the states after its end marker to tell every caption word (text_encoder_warmup; \
        0 steps turns it off); stage 2, with the autoencoder frozen, trains the U-Net and the text \
        encoder on images and 8-frame clips, keeping the warm-up's objective as a second loss \
        (unet_training.train_text_encoder false freezes the encoder). The run folder gets \
        pretrain_config.json, tokenizer/, vae/, text_encoder_warmup/ and unet/ (checkpoints, \
        loss.csv, loss.png), previews/ (autoencoder \
        reconstructions and U-Net samples of fixed prompts, with the averaged weights) and finally model/ \
        (a diffusers folder with the averaged weights in F16). A killed run continues from its newest \
        complete checkpoint with --resume. --init-from starts a new run from an existing model \
        (its autoencoder frozen, the U-Net stage continuing from its weights) instead of from scratch.

        With "architecture": "animatediff" the run trains AnimateDiff's layout: stage 2 trains the \
        text encoder and the image U-Net (image_unet) on images only, and stage 3, the motion stage \
        (motion_training, folder motion/), trains the motion modules (motion_adapter) on clips, with \
        what motion_training.trainable names ("motion_modules", "motion_modules+text_encoder", \
        "motion_modules+cross_attention", "unet" or "all"); model/ is then an AnimateDiffPipeline folder. \
        --init-from an AnimateDiff folder continues both stages from its weights; --init-from a UNet3D \
        folder (such as samples/base) with --architecture animatediff takes only its autoencoder, \
        tokenizer and text encoder, drawing a fresh image U-Net and fresh motion modules.

        The config is JSON with diffusers' keys; any top-level key may be left out for the built-in \
        compact model (print it with --print-config).

        Examples:
          customize pretrain --out runs/base
          customize pretrain --out runs/base --resume
          customize pretrain --out runs/base-more --init-from samples/base --unet-steps 8000
          customize pretrain --out runs/tiny --config tiny.json --vae-steps 20 --unet-steps 40
          customize pretrain --out runs/ad --config animatediff.json --unet-steps 4000 --motion-steps 2000
          customize pretrain --out runs/ad --architecture animatediff --init-from samples/base --unet-steps 4000
        """)

    @Option(help: "The run folder (created; must be new unless --resume).") var out: String?
    @Option(help: "A JSON config (default: the built-in compact model of --architecture).") var config: String?
    @Option(help: ArgumentHelp("The built-in config to start from: unet3d (full world) or animatediff (core world, two stages).",
                               valueName: "unet3d|animatediff"))
    var architecture: String?
    @Option(help: "Total steps of both stages, split in the config's proportion.") var steps: Int?
    @Option(help: "Autoencoder steps (stage 1).") var vaeSteps: Int?
    @Option(help: "Text-encoder warm-up steps (stage 1b; 0 turns it off).") var warmupSteps: Int?
    @Option(help: "Text encoder and U-Net steps (stage 2; the image stage of an animatediff run).") var unetSteps: Int?
    @Option(help: "Motion-stage steps (stage 3 of an animatediff run).") var motionSteps: Int?
    @Flag(help: "Continue the run in --out from its newest complete checkpoints.") var resume = false
    @Option(help: ArgumentHelp("Start a new run from this diffusers folder instead of from scratch (e.g. samples/base).",
                               discussion: "Its autoencoder stays frozen and its stage is skipped; the warm-up trains only its head; the U-Net stage starts from its weights with a fresh optimizer and schedule. An AnimateDiff folder makes the run an animatediff one, its motion stage starting from the folder's motion modules. A UNet3D folder with --architecture animatediff (or a config whose \"architecture\" is animatediff) keeps only its autoencoder, tokenizer, text encoder and scheduler: the image U-Net and motion modules are drawn fresh from the config."),
            completion: .directory)
    var initFrom: String?
    @Option(help: "A checkpoint every N steps in both stages.") var checkpointEvery: Int?
    @Option(help: "A preview grid every N steps of each stage (0: none).") var previewEvery: Int?
    @Option(help: "The seed of every random draw (new runs only).") var seed: UInt64?
    @Flag(inversion: .prefixedNo,
          help: "Also save model/ at every checkpoint (in an animatediff run's image stage, the image U-Net's folder). The run remembers it: --resume keeps it on until --no-save-model-at-checkpoints.")
    var saveModelAtCheckpoints: Bool?
    @Flag(help: "Print the resolved config as JSON and exit.") var printConfig = false
    @OptionGroup var threadOptions: ThreadOptions

    /// The built-in config of `--architecture` (unet3d when absent).
    var builtInConfig: PretrainConfig {
        architecture == PretrainConfig.Architecture.animatediff.rawValue ? PretrainConfig.animateDiff() : PretrainConfig()
    }

    func validate() throws {
        for (name, value) in [("--steps", steps), ("--vae-steps", vaeSteps), ("--warmup-steps", warmupSteps), ("--unet-steps", unetSteps),
                              ("--motion-steps", motionSteps)] {
            if let value, value < 0 { throw ValidationError("\(name) must not be negative, got \(value)") }
        }
        if steps != nil, vaeSteps != nil || unetSteps != nil || motionSteps != nil {
            throw ValidationError("give either --steps or --vae-steps/--unet-steps/--motion-steps, not both")
        }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        if let previewEvery, previewEvery < 0 { throw ValidationError("--preview-every must not be negative, got \(previewEvery)") }
        if resume, config != nil { throw ValidationError("--resume continues with the run's own config; leave out --config") }
        if let architecture {
            guard PretrainConfig.Architecture(rawValue: architecture) != nil else {
                throw ValidationError("--architecture must be unet3d or animatediff, got \(architecture)")
            }
            if config != nil { throw ValidationError("--architecture picks a built-in config; with --config the file's \"architecture\" decides") }
            if resume { throw ValidationError("--resume continues with the run's own config; leave out --architecture") }
        }
        if resume, seed != nil { throw ValidationError("--resume continues with the run's own seed; leave out --seed") }
        if resume, initFrom != nil { throw ValidationError("--resume continues the run from its own init/ copy; leave out --init-from") }
        if initFrom != nil, vaeSteps != nil { throw ValidationError("--init-from takes the model's autoencoder as it is; leave out --vae-steps") }
        if out == nil, !printConfig { throw ValidationError("give the run folder with --out DIR") }
    }

    func run() throws {
        try threadOptions.apply()
        if printConfig {
            var resolved = try config.map { try PretrainConfig.load(path: $0) } ?? builtInConfig
            adjust(&resolved)
            print(String(decoding: try resolved.encoded(), as: UTF8.self), terminator: "")
            return
        }
        let out = self.out!
        let pretraining: Pretraining
        if resume {
            let file = (out as NSString).appendingPathComponent(Pretraining.configFile)
            guard FileManager.default.fileExists(atPath: file) else {
                throw ExitStatus.Failure(status: .failure, message: "\(out) holds no pretraining run to resume (no \(Pretraining.configFile))")
            }
            let saved = try PretrainConfig.load(path: file)
            pretraining = try Pretraining(resumingIn: out, data: WorldPretrainingData(seed: saved.seed, world: saved.world), adjust: adjust)
        } else {
            if let contents = try? FileManager.default.contentsOfDirectory(atPath: out), !contents.isEmpty {
                let what = contents.contains(Pretraining.configFile) ? "already holds a pretraining run" : "is not empty"
                throw ExitStatus.Failure(status: .failure,
                    message: "\(out) \(what); pass --resume to continue it, or choose a new --out folder")
            }
            var resolved = try config.map { try PretrainConfig.load(path: $0) } ?? builtInConfig
            if let seed { resolved.seed = seed }
            // From a model, the autoencoder is not trained, so --steps all go to the U-Net.
            if let initFrom {
                resolved.vaeTraining.trainer.steps = 0
                try Pretraining.adoptArchitecture(ofModel: initFrom, into: &resolved)
            }
            adjust(&resolved)
            pretraining = try Pretraining(newRunIn: out, config: resolved, data: WorldPretrainingData(seed: resolved.seed, world: resolved.world),
                                          startingFrom: initFrom)
        }
        pretraining.saveModelAtCheckpoints = try rememberSaveModelAtCheckpoints(in: out)
        hookReporting(pretraining, out: out)
        let started = Date()
        let model = try pretraining.run()
        print("pretrained in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); model saved to \(model)")
    }

    /// Marks a run whose model/ is saved at every checkpoint, so --resume keeps doing it.
    static let saveModelMarker = "save_model_at_checkpoints"

    /// --save-model-at-checkpoints as given, else (resuming) as the run remembers it; stored in the
    /// run folder for the next resume.
    func rememberSaveModelAtCheckpoints(in out: String) throws -> Bool {
        let marker = (out as NSString).appendingPathComponent(Self.saveModelMarker)
        let on = saveModelAtCheckpoints ?? (resume && FileManager.default.fileExists(atPath: marker))
        do {
            if on {
                try atomicWrite("model/ is saved at every checkpoint (pretrain --save-model-at-checkpoints)\n", to: marker)
            } else if FileManager.default.fileExists(atPath: marker) {
                try FileManager.default.removeItem(atPath: marker)
            }
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot record --save-model-at-checkpoints in \(out): \(error.localizedDescription)")
        }
        return on
    }

    /// Applies the step and interval options to a config.
    func adjust(_ config: inout PretrainConfig) {
        if let steps {
            // Split in the config's proportion over the autoencoder, U-Net and (animatediff) motion stages.
            let stages: [WritableKeyPath<PretrainConfig, Int>] = [\.vaeTraining.trainer.steps, \.unetTraining.trainer.steps]
                + (config.architecture == .animatediff ? [\.motionTraining.trainer.steps] : [])
            let configured = stages.map { config[keyPath: $0] }
            let total = configured.reduce(0, +)
            var left = steps
            for (index, stage) in stages.enumerated() {
                let share = total > 0 ? Double(configured[index]) / Double(total) : 1 / Double(stages.count)
                let count = index == stages.count - 1 ? left : min(left, Int((Double(steps) * share).rounded()))
                config[keyPath: stage] = count
                left -= count
            }
        }
        if let vaeSteps { config.vaeTraining.trainer.steps = vaeSteps }
        if let warmupSteps { config.textEncoderWarmup.trainer.steps = warmupSteps }
        if let unetSteps { config.unetTraining.trainer.steps = unetSteps }
        if let motionSteps { config.motionTraining.trainer.steps = motionSteps }
        if let checkpointEvery {
            config.vaeTraining.trainer.checkpointingSteps = checkpointEvery
            config.textEncoderWarmup.trainer.checkpointingSteps = checkpointEvery
            config.unetTraining.trainer.checkpointingSteps = checkpointEvery
            config.motionTraining.trainer.checkpointingSteps = checkpointEvery
        }
        if let previewEvery { config.preview.every = previewEvery }
    }

    /// Progress bars per stage, loss.png beside each loss.csv, preview grids under previews/.
    private func hookReporting(_ pretraining: Pretraining, out: String) {
        var reporter: ProgressReporter?
        // Samples (images, captions or clips) and seconds of the stage so far, for its samples/s.
        var stageSamples = 0, stageSeconds = 0.0
        pretraining.onStageStart = { [unowned pretraining] stage, done, total in
            let label: String
            let config = pretraining.config
            let unetName = config.architecture == .animatediff ? "image U-Net" : "U-Net"
            switch stage {
            case .vae: label = "pretrain autoencoder"
            case .textEncoderWarmup: label = "pretrain text encoder warm-up"
            case .unet: label = config.unetTraining.trainTextEncoder ? "pretrain text encoder + \(unetName)" : "pretrain \(unetName)"
            case .motion: label = "pretrain motion stage (\(config.motionTraining.trainable.rawValue))"
            }
            reporter = ProgressReporter(label, total: total, unit: "step", completedBefore: done)
            (stageSamples, stageSeconds) = (0, 0)
            if done > 0 { FileHandle.standardError.write("\(label): resuming at step \(done) of \(total)\n") }
        }
        pretraining.onStep = { [unowned pretraining] stage, report in
            stageSamples += pretraining.lastStepSamples
            stageSeconds += report.secondsPerStep
            var note = String(format: "loss %.4f lr %.2e %.1f samples/s", report.loss, report.learningRate,
                              stageSeconds > 0 ? Double(stageSamples) / stageSeconds : 0)
            if stage != .vae, let accuracy = pretraining.warmupSlotAccuracy {
                note += String(format: " slot accuracy %.3f", accuracy)
            }
            reporter?.update(report.step, note: note)
        }
        pretraining.onLog = { _, folder, records in
            try LossCurvePlot.write(records, to: (folder as NSString).appendingPathComponent("loss.png"))
        }
        let previews = (out as NSString).appendingPathComponent("previews")
        pretraining.onPreview = { stage, step, samples in
            try FileManager.default.createDirectory(atPath: previews, withIntermediateDirectories: true)
            let name = String(format: "\(stage.rawValue)-step-%06d.png", step)
            try PreviewGrid.write(samples, step: step, to: (previews as NSString).appendingPathComponent(name))
        }
    }
}
