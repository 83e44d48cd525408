import ArgumentParser
import Evaluation
import Foundation

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

    /// The settings of the run these options ask for.
    var settings: BreakForMakeRunSettings {
        get throws {
            var settings = BreakForMakeRunSettings(out: out, model: model)
            (settings.steps, settings.gradientAccumulationSteps, settings.learningRate) = (steps, gradientAccumulationSteps, lr)
            (settings.cropJitter, settings.checkpointEvery, settings.seed, settings.runDirectory) = (cropJitter, checkpointEvery, seed, runDir)
            (settings.dtype, settings.resume, settings.motionAdapter) = (try AdapterFileType.parse(dtype), resume, motionAdapterOption.motionAdapter)
            return settings
        }
    }
}
