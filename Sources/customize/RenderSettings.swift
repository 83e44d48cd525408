import Diffusion
import Evaluation
import Foundation
import Media
import Methods
import Tensor

/// Everything that decides a render's pixels, resolved: what a prompt line or the single-prompt
/// command line comes down to. Both go through `PromptRenderer`, so equal settings give equal bytes.
struct RenderSettings: Equatable, Codable {
    var prompt: String
    var negative: String
    var frames: Int
    var steps: Int
    var guidance: Float
    var seed: UInt64
    /// `ddim` or `euler` (a key of `Render.schedulers`).
    var scheduler: String
    var loras: [LoRAChoice]
    /// DECOR's projection of the prompt's text states (`--decor-remove`), or nil.
    var decor: DECORSetting? = nil

    /// HiPA one-step sampling: an `--onestep` adaptor is among the LoRAs.
    var isOneStep: Bool { loras.contains { $0.role == .onestep } }

    /// Relative cost, for a batch's overall ETA: U-Net passes dominate (two per step with guidance).
    var workUnits: Double {
        Double(frames * steps * (guidance > 1 ? 2 : 1))
    }
}

/// Renders `RenderSettings` with one loaded pipeline and writes them through `RenderOutput`, the PNG
/// text metadata included.
struct PromptRenderer {
    let pipeline: TextToVideoPipeline
    let loras: PipelineLoRAs
    /// The `--model` text, recorded in the metadata.
    let model: String
    let fps: Double

    init(pipeline: TextToVideoPipeline, model: String, fps: Double, allowPartial: Bool = false) {
        self.pipeline = pipeline
        loras = PipelineLoRAs(pipeline, allowPartial: allowPartial)
        self.model = model
        self.fps = fps
    }

    struct Result {
        var written: [String]
        var video: GeneratedVideo
        var images: [RGBImage]
        var metadata: [(String, String)]
    }

    /// Warnings go to standard error with `context` in front (the prompt file and line in a batch).
    func render(_ settings: RenderSettings, initialLatents: Tensor? = nil, latentsSource: String? = nil,
                to output: RenderOutput, context: String = "") throws -> Result {
        for warning in try loras.apply(settings.loras) {
            FileHandle.standardError.write("customize: \(context)warning: \(warning)\n")
        }
        for (what, text) in [("prompt", settings.prompt), ("negative prompt", settings.negative)] where pipeline.tokenizer(text).truncated {
            FileHandle.standardError.write("customize: \(context)warning: the \(what) is longer than the text encoder's \(pipeline.tokenizer.maxLength) tokens; the rest is ignored\n")
        }
        guard let scheduler = Render.schedulers[settings.scheduler] else {
            throw ExitStatus.Failure(status: .usage, message: "the scheduler is ddim or euler, got \"\(settings.scheduler)\"")
        }
        try DECORSetting.install(settings.decor, on: pipeline)
        let progress = ProgressReporter("render", total: settings.steps, unit: "step")
        let video: GeneratedVideo
        if settings.isOneStep {
            // HiPA: one U-Net pass at t = T on the conditional prompt; guidance and sampler do not apply.
            video = try OneStepSampler.generate(pipeline: pipeline, prompt: settings.prompt, frames: settings.frames, seed: settings.seed,
                                                initialLatents: initialLatents)
            progress.update(1)
        } else {
            video = try pipeline.generate(prompt: settings.prompt, negative: settings.negative, frames: settings.frames,
                                          steps: settings.steps, guidance: settings.guidance, seed: settings.seed,
                                          scheduler: scheduler, initialLatents: initialLatents) { done, _ in
                progress.update(done)
            }
        }
        let images = try video.frames.map { frame in
            try RGBImage(chwFloats: frame.values, width: frame.shape[2], height: frame.shape[1])
        }
        let metadata: [(String, String)] = [
            ("prompt", settings.prompt), ("negative", settings.negative), ("seed", String(settings.seed)),
            ("steps", String(settings.steps)), ("guidance", settings.isOneStep ? "1" : String(settings.guidance)),
            ("scheduler", settings.isOneStep ? "onestep" : settings.scheduler),
            ("model", model), ("adapters", LoRAChoice.metadataLabel(settings.loras)),
        ] + (latentsSource.map { [("latents", $0)] } ?? []) + (settings.decor.map { [("decor", $0.label)] } ?? [])
        let written = try output.write(images, metadata: metadata, fps: fps)
        return Result(written: written, video: video, images: images, metadata: metadata)
    }
}
