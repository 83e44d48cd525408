import Adapters
import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Methods
import Tensor

/// `customize animate IMAGE "PROMPT" --motion FILE`: MotionDirector's image animation. A spatial LoRA
/// learns the image's look (the spatial path alone, one LoRA, random flips: the reference's
/// `config_single_image.yaml`), then the prompt is rendered with it and the motion's temporal LoRA,
/// starting from a noise prior built from the image's latent repeated over the frames, so the frames
/// stay close to the image while they move.
struct Animate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Animate an image with a learned motion (MotionDirector image animation).",
        discussion: """
        Without --spatial, a spatial LoRA is first trained on IMAGE (captioned with --caption, default \
        PROMPT) for --train-steps steps into --work (default <out stem>_appearance/; an existing run there \
        is continued, so a second call reuses it). The render then uses --motion (a temporal LoRA from \
        train-motion) and that spatial LoRA, from sqrt(P)·z_inv + sqrt(1−P)·ε with z_inv the DDIM \
        inversion of the image's latent repeated over the frames (P = --noise-prior).

        Examples:
          customize animate star.png "a red star zigzagging on a gray background" --motion motions/zigzag/temporal.safetensors
          customize animate car.png "a car driving" --motion run/temporal.safetensors:0.9 --spatial car/spatial-shared.safetensors --out car.mp4
        """)

    @Argument(help: "The image to animate (png, jpg, webp, bmp).") var image: String
    @Argument(help: "The prompt of the render.") var prompt: String
    @Option(help: ArgumentHelp("The temporal LoRA, FILE[:SCALE].", valueName: "file[:scale]")) var motion: String
    @Option(help: ArgumentHelp("A spatial LoRA to use instead of training one, FILE[:SCALE].", valueName: "file[:scale]"))
    var spatial: String?
    @Option(help: "Denoising steps (also the DDIM inversion's).") var steps = 25
    @Option(help: "Steps of the image's spatial LoRA.") var trainSteps = 300
    @Option(help: "Rank of the image's spatial LoRA.") var rank = 32
    @Option(help: "The caption the spatial LoRA learns the image with (default: PROMPT).") var caption: String?
    @Option(help: "Frames to render.") var frames = 8
    @Option(name: .customLong("noise-prior"), help: "Strength of the image's noise prior, 0…1.") var noisePrior: Float = 0.3
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Seed of the starting noise and of the spatial LoRA's training.") var seed: UInt64 = 0
    @Option(help: "Output video (.mp4, .m4v or .gif).") var out = "animation.mp4"
    @Option(help: "Folder of the spatial LoRA's run (default <out stem>_appearance).") var work: String?
    @Option(help: "Frames per second of the video.") var fps: Double = 8
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Flag(name: .customLong("allow-partial"), help: "Load the parts of a LoRA file that fit the model and skip the rest, with a warning, instead of failing.")
    var allowPartial = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard trainSteps >= 0 else { throw ValidationError("--train-steps must not be negative, got \(trainSteps)") }
        guard rank >= 1 else { throw ValidationError("--rank must be at least 1, got \(rank)") }
        guard frames >= 2 else { throw ValidationError("--frames must be at least 2 for an animation, got \(frames)") }
        guard noisePrior.isFinite, (0...1).contains(noisePrior) else { throw ValidationError("--noise-prior must lie in [0, 1], got \(noisePrior)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number") }
        guard fps.isFinite, fps > 0, fps <= 1000 else { throw ValidationError("--fps must be in (0, 1000], got \(fps)") }
        for (option, value) in [("--motion", motion), ("--spatial", spatial)] {
            guard let value else { continue }
            do { _ = try LoRARequest(parsing: value) } catch { throw ValidationError("\(option) \(describe(error))") }
        }
    }

    func run() throws {
        try threadOptions.apply()
        let output = try RenderOutput(out: out, frames: frames)
        var motionChoice = try resolve(motion, option: "--motion")
        motionChoice.role = .motion
        let pipeline = try motionAdapterOption.load(model)
        let size = pipeline.pixelSize
        let picture = try TrainingMedia.image(image, width: size.width, height: size.height)
        let pixels = try TrainingMedia.tensor([picture])

        var spatialChoice: LoRAChoice
        if let spatial {
            spatialChoice = try resolve(spatial, option: "--spatial")
        } else {
            spatialChoice = LoRAChoice(name: "appearance", path: try trainAppearance(pipeline: pipeline, pixels: pixels), scale: 1)
        }
        spatialChoice.role = .spatial

        let latent = try pipeline.encodeFrames(pixels)
        let inversion = ProgressReporter("animate: DDIM inversion", total: steps, unit: "step")
        let start = try NoisePrior.startingLatents(pipeline: pipeline, latents: NoisePrior.repeatedOverFrames(latent, frames: frames),
                                                   strength: noisePrior, steps: steps, seed: seed) { done, _ in inversion.update(done) }
        let settings = RenderSettings(prompt: prompt, negative: "", frames: frames, steps: steps, guidance: guidance, seed: seed,
                                      scheduler: "ddim", loras: [motionChoice, spatialChoice])
        let renderer = PromptRenderer(pipeline: pipeline, model: model, fps: fps, allowPartial: allowPartial)
        let result = try renderer.render(settings, initialLatents: start, latentsSource: "noise prior \(noisePrior) from \(image)",
                                         to: output)
        print("wrote " + result.written.joined(separator: ", ") + " (\(frames) frames, \(result.images[0].width)x\(result.images[0].height))")
    }

    func resolve(_ text: String, option: String) throws -> LoRAChoice {
        do { return try LoRARequest(parsing: text).resolve(loraFolder: "loras") } catch {
            throw ExitStatus.Failure(status: .failure, message: "\(option) \(describe(error))")
        }
    }

    /// Trains (or finishes) the image's spatial LoRA in the work folder; returns its file. The
    /// training adapters are taken off the U-Net afterwards, so the render sees only the files.
    func trainAppearance(pipeline: TextToVideoPipeline, pixels: Tensor) throws -> String {
        let folder = work ?? (out as NSString).deletingPathExtension + "_appearance"
        let baseModel = try BaseModelIdentity(modelFolder: model, pipeline: pipeline)
        let training: MotionDirectorTraining
        if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(MotionDirectorTraining.runFile)) {
            training = try MotionDirectorTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { $0.maxTrainSteps = trainSteps }
            guard training.clips.first?.caption == (caption ?? prompt), training.clips.first?.name == (image as NSString).lastPathComponent else {
                throw ExitStatus.Failure(status: .failure, message: "\(folder) holds the appearance run of another image or caption; pass another --work folder")
            }
        } else {
            var config = MotionDirectorConfig.singleImage
            config.maxTrainSteps = trainSteps
            config.loraRank = rank
            config.seed = seed
            let source = MotionClipSource(name: (image as NSString).lastPathComponent, caption: caption ?? prompt, frames: pixels)
            let cached = try MotionTrainingClip.encode([source], pipeline: pipeline, flips: true, seed: seed)
            training = try MotionDirectorTraining(newRunIn: folder, pipeline: pipeline, config: config, clips: cached, baseModel: baseModel)
        }
        AdapterTrainingReport.attach(training.training, label: "animate: learning the image's look")
        let files = try training.run()
        for name in training.adapters.trainedNames { try training.adapters.set.remove(name) }
        return files[0]
    }
}
