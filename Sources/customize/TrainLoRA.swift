import ArgumentParser
import Evaluation
import Foundation

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
    @Option(help: "Training steps (default 2000).") var steps: Int?
    @Option(help: "Learning rate (default 1e-3).") var lr: Float?
    @Option(help: "Largest crop offset, in latent pixels each way (default 1; 0: centre crop only).") var cropJitter: Int?
    @Option(help: "A checkpoint every N steps (default 200).") var checkpointEvery: Int?
    @Option(help: "A preview every N steps (default 500; 0: none).") var previewEvery: Int?
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

    var trainingRun: SubjectLoRARun {
        get throws {
            var run = SubjectLoRARun(images: images, token: token, out: out, model: model)
            (run.className, run.rank, run.steps, run.learningRate, run.cropJitter) = (className, rank, steps, lr, cropJitter)
            (run.checkpointEvery, run.previewEvery, run.seed, run.runDirectory) = (checkpointEvery, previewEvery, seed, runDir)
            (run.dtype, run.resume, run.motionAdapter) = (try AdapterFileType.parse(dtype), resume, motionAdapterOption.motionAdapter)
            run.decor = resume ? nil : decorOptions.setting(training: decorTrain)
            return run
        }
    }

    func run() throws {
        try threadOptions.apply()
        print(try trainingRun.run().summary)
    }
}
