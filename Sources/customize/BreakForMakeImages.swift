import ArgumentParser
import Adapters
import Diffusion
import Foundation
import Methods

/// The image folders of the Break-for-Make commands, read as `train-lora` reads its folder: every
/// image centre-cropped to the model's size plus the crop-jitter margin, its caption from the .txt file
/// beside it or else a default, encoded to cached latents (with mirrored copies when flipping).
enum BreakForMakeImages {
    /// The images of `folder` with `fallbackCaption`; names get `prefix` (an auxiliary set's folder name).
    static func read(_ folder: String, fallbackCaption: String, prefix: String = "", pipeline: TextToVideoPipeline,
                     jitter: Int, command: String) throws -> [MotionClipSource] {
        let names = try TrainingMedia.files(in: folder, extensions: TrainingMedia.imageExtensions, kind: "images")
        let margin = 2 * jitter * pipeline.vaeScaleFactor
        let width = pipeline.pixelSize.width + margin, height = pipeline.pixelSize.height + margin
        var sources: [MotionClipSource] = [], skipped: [(name: String, reason: String)] = []
        for name in names {
            let path = (folder as NSString).appendingPathComponent(name)
            do {
                let caption = try TrainingMedia.caption(besides: path) ?? fallbackCaption
                let image = try TrainingMedia.image(path, width: width, height: height)
                sources.append(MotionClipSource(name: prefix + name, caption: caption, frames: try TrainingMedia.tensor([image])))
            } catch {
                skipped.append((prefix + name, describe(error)))
            }
        }
        TrainingMedia.warnSkipped(skipped, command: command)
        guard !sources.isEmpty else {
            throw ExitStatus.Failure(status: .failure, message: "no usable image in '\(folder)':\n"
                                     + skipped.map { "  \($0.name): \($0.reason)" }.joined(separator: "\n"))
        }
        return sources
    }

    /// Reads and encodes, with a progress line.
    static func encode(_ sources: [MotionClipSource], pipeline: TextToVideoPipeline, config: BreakForMakeConfig,
                       label: String) throws -> [MotionTrainingClip] {
        let progress = ProgressReporter(label, total: sources.count, unit: "image")
        return try MotionTrainingClip.encode(sources, pipeline: pipeline, flips: config.randomFlip > 0, seed: config.seed) { done, _ in
            progress.update(done)
        }
    }

    /// A folder's last path component (an auxiliary set's name in default captions).
    static func setName(_ folder: String) -> String {
        (URL(fileURLWithPath: folder).standardizedFileURL.lastPathComponent as NSString).deletingPathExtension
    }
}

/// Options every Break-for-Make command shares.
struct BreakForMakeOptions: ParsableArguments {
    @Option(help: "The file to write (.safetensors).") var out: String
    @Option(help: "Training steps (default 1000).") var steps: Int?
    @Option(help: "Micro-steps whose gradients each step averages (default 4).") var gradientAccumulationSteps: Int?
    @Option(help: "Learning rate (default 1e-4).") var lr: Float?
    @Option(help: "Largest crop offset, in latent pixels each way (default 1; 0: centre crop only).") var cropJitter: Int?
    @Option(help: "A checkpoint every N steps (default 50).") var checkpointEvery: Int?
    @Option(help: "The seed of every random draw (default 0); content and style runs must share it.") var seed: UInt64?
    @Option(help: "The run folder (default <out without extension>-run).") var runDir: String?
    @Option(help: "Store the adapter file as f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Continue the run from its newest checkpoint.") var resume = false
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        if let steps, steps < 0 { throw ValidationError("--steps must not be negative, got \(steps)") }
        if let gradientAccumulationSteps, gradientAccumulationSteps < 1 {
            throw ValidationError("--gradient-accumulation-steps must be at least 1, got \(gradientAccumulationSteps)")
        }
        if let lr, !(lr.isFinite && lr >= 0) { throw ValidationError("--lr must be a number of 0 or more, got \(lr)") }
        if let cropJitter, cropJitter < 0 { throw ValidationError("--crop-jitter must not be negative, got \(cropJitter)") }
        if let checkpointEvery, checkpointEvery < 1 { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        _ = try AdapterFileType.parse(dtype)
        guard (out as NSString).pathExtension.lowercased() == "safetensors" else {
            throw ValidationError("--out names the adapter file to write, ending in .safetensors, got '\(out)'")
        }
        if resume, lr != nil || gradientAccumulationSteps != nil || cropJitter != nil || seed != nil {
            throw ValidationError("--resume continues with the run's own settings; leave out --lr, --gradient-accumulation-steps, --crop-jitter and --seed")
        }
    }

    var runFolder: String { runDir ?? (out as NSString).deletingPathExtension + "-run" }

    /// The settings of a new run from these options.
    func config(rank: Int?) -> BreakForMakeConfig {
        var config = BreakForMakeConfig()
        if let rank { config.rank = rank }
        if let steps { config.maxTrainSteps = steps }
        if let lr { config.learningRate = lr }
        if let gradientAccumulationSteps { config.gradientAccumulationSteps = gradientAccumulationSteps }
        if let cropJitter { config.cropJitter = cropJitter }
        if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
        if let seed { config.seed = seed }
        return config
    }

    /// What a resumed run may change.
    func adjust(_ config: inout BreakForMakeConfig) {
        if let steps { config.maxTrainSteps = steps }
        if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
    }

    func loadPipeline() throws -> (TextToVideoPipeline, BaseModelIdentity) {
        let pipeline = try motionAdapterOption.load(model)
        let identity = try BaseModelIdentity(modelFolder: model, pipeline: pipeline)
        return (pipeline, identity)
    }
}
