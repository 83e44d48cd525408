import ArgumentParser
import Checkpoints
import Diffusion
import Foundation
import Media
import Tensor

/// `customize render "PROMPT"`: text → video with a diffusers text-to-video folder (diffusers'
/// `TextToVideoSDPipeline(prompt).frames` followed by `export_to_video`).
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a prompt to a PNG (one frame) or an MP4/GIF with its frames and a contact sheet.",
        discussion: """
        One frame is written as a PNG; several frames as an MP4 (or a GIF, by the extension of
        --out) plus the frames as PNGs in <out>_frames/ and all frames side by side in
        <out>_sheet.png. Every PNG carries the prompt, seed and settings as text metadata. The same
        seed and settings give the same bytes. --latents starts from a safetensors file holding a
        tensor "latents" [1, 4, frames, h, w] instead of seeded noise; --save-latents writes the
        final latents in that form.

        Examples:
          customize render "a red ball bouncing" --frames 8 --steps 25 --seed 1 --out ball.mp4
          customize render "a red ball" --frames 1 --out ball.png --scheduler euler
        """)

    @Argument(help: "The prompt.") var prompt: String
    @Option(help: "The negative prompt (the unconditional side of classifier-free guidance).") var negative = ""
    @Option(help: "A diffusers text-to-video folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).")
    var model = "samples/base"
    @Option(help: "Frames to render (default 8, or as many as --latents holds).") var frames: Int?
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale; 1 or less turns guidance off.") var guidance: Float = 9
    @Option(help: "Seed of the starting noise.") var seed: UInt64 = 0
    @Option(help: "Sampler: ddim or euler.") var scheduler = "ddim"
    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "Output file: .png for one frame; .mp4, .m4v or .gif for several (default render.png / render.mp4).")
    var out: String?
    @Option(help: "Frames per second of the video.") var fps: Double = 8
    @Option(help: "Start from the latents in this safetensors file (tensor \"latents\", [1, 4, frames, h, w]).")
    var latents: String?
    @Option(name: .customLong("save-latents"), help: "Write the final latents to this safetensors file.")
    var saveLatents: String?

    static let schedulers: [String: SchedulerKind] = ["ddim": .ddim, "euler": .eulerDiscrete]

    func validate() throws {
        guard Self.schedulers[scheduler] != nil else {
            throw ValidationError("--scheduler expects ddim or euler, got \"\(scheduler)\"")
        }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        if let frames, frames < 1 { throw ValidationError("--frames must be at least 1, got \(frames)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
        guard fps.isFinite, fps > 0, fps <= 1000 else { throw ValidationError("--fps must be in (0, 1000], got \(fps)") }
    }

    func run() throws {
        try threadOptions.apply()
        let initial = try latents.map(RenderLatents.read)
        if let initial, let frames, frames != initial.shape[2] {
            throw ExitStatus.Failure(status: .failure, message: "--frames \(frames) does not match the \(initial.shape[2]) frames of --latents '\(latents!)'")
        }
        let frameCount = frames ?? initial?.shape[2] ?? 8
        // Every destination is checked before the (long) rendering starts.
        let output = try RenderOutput(out: out ?? (frameCount == 1 ? "render.png" : "render.mp4"), frames: frameCount)
        if let saveLatents { try RenderOutput.checkWritable(saveLatents, option: "--save-latents") }

        let pipeline = try TextToVideoPipeline.load(folder: model)
        for (option, text) in [("prompt", prompt), ("--negative", negative)] where pipeline.tokenizer(text).truncated {
            FileHandle.standardError.write("customize: warning: the \(option) is longer than the text encoder's \(pipeline.tokenizer.maxLength) tokens; the rest is ignored\n")
        }
        let progress = ProgressReporter("render", total: steps, unit: "step")
        let video = try pipeline.generate(prompt: prompt, negative: negative, frames: frameCount, steps: steps, guidance: guidance,
                                          seed: seed, scheduler: Self.schedulers[scheduler]!, initialLatents: initial) { done, _ in
            progress.update(done)
        }
        let images = try video.frames.map { frame in
            try RGBImage(chwFloats: frame.values, width: frame.shape[2], height: frame.shape[1])
        }
        let metadata: [(String, String)] = [
            ("prompt", prompt), ("negative", negative), ("seed", String(seed)), ("steps", String(steps)),
            ("guidance", String(guidance)), ("scheduler", scheduler), ("model", model), ("adapters", "none"),
        ] + (latents.map { [("latents", $0)] } ?? [])
        let written = try output.write(images, metadata: metadata, fps: fps)
        if let saveLatents { try RenderLatents.write(video.latents, to: saveLatents, metadata: Dictionary(uniqueKeysWithValues: metadata)) }
        print("wrote " + (written + (saveLatents.map { [$0] } ?? [])).joined(separator: ", ")
              + " (\(frameCount) frame\(frameCount == 1 ? "" : "s"), \(images[0].width)x\(images[0].height))")
    }
}
