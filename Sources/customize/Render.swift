import ArgumentParser
import Checkpoints
import Diffusion
import Evaluation
import Foundation
import Media
import Methods
import Tensor

/// `customize render "PROMPT"` / `customize render --prompts FILE`: text → video with a diffusers
/// text-to-video folder (diffusers' `TextToVideoSDPipeline(prompt).frames` followed by
/// `export_to_video`), optionally with LoRA files fused in (`load_lora_weights` + `fuse_lora`).
struct Render: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a prompt (or every line of a prompt file) to PNGs or MP4/GIFs with frames and contact sheets.",
        discussion: """
        One frame is written as a PNG; several frames as an MP4 (or a GIF, by the extension of \
        --out) plus the frames as PNGs in <out>_frames/ and all frames side by side in \
        <out>_sheet.png. Every PNG carries the prompt, seed and settings as text metadata. The same \
        seed, settings and thread count give the same bytes. --latents starts from a safetensors file \
        holding a tensor "latents" [1, 4, frames, h, w] instead of seeded noise; --save-latents \
        writes the final latents in that form.

        --lora NAME[:SCALE] (repeatable) fuses a LoRA file into the U-Net (and the text encoder when \
        the file holds text_encoder keys) at SCALE (default 1). NAME is a file path, or else \
        <--lora-dir>/NAME.safetensors.

        --motion FILE[:SCALE] adds a MotionDirector temporal LoRA (train-motion's temporal.safetensors) \
        and --spatial FILE[:SCALE] (repeatable) a spatial one (any run's spatial-*.safetensors, or \
        animate's), each at its own strength: a motion with a look of your choice. --noise-prior P \
        --prior-clip CLIP starts from sqrt(P)·z_inv + sqrt(1−P)·ε instead of the seed's noise ε, with \
        z_inv the DDIM inversion (empty prompt, --steps steps, base model) of CLIP sampled to --frames \
        frames (an image is repeated over the frames): the result follows the clip's layout to a \
        degree set by P (0.1–0.5 for a motion learned from one clip, 0 for several).

        --decor-remove "WORDS" projects the prompt's text embeddings (every token, padding included) \
        away from the span of WORDS' own token embeddings (DECOR: X' = X − A·X·V·Vᵀ, V the right \
        singular vectors above 1e-3 of the largest), at --decor-strength A (default 1). Use it when a \
        style LoRA drags its reference's object or colour into the render: remove those words. \
        Comma-separated phrases are encoded one by one; any text encodes.

        --steps 1 --onestep FILE[:SCALE] renders in one step with HiPA adaptors (train-onestep's \
        file): one U-Net pass on seeded noise at the last timestep, turned into the final latents; \
        guidance and --scheduler do not apply (the metadata records guidance 1, scheduler onestep).

        --prompts FILE renders every line of FILE into the folder --out (default renders/<file \
        stem>): one prompt per line; '#' starts a comment; blank lines are skipped. Options follow \
        ' | ' as key=value, separated by '|' or spaces, values with spaces in double quotes: seed=, \
        frames=, steps=, guidance=, negative=, scheduler=, lora=NAME:SCALE (repeatable; replaces \
        --lora for the line; lora=none for none) and out=NAME (default line-007 for line 7). The \
        command line's options are the defaults. A bad line is reported with its line number and \
        skipped; the rest render (exit status 2 when any line failed). The folder gets index.json \
        (every line with its settings, outputs and status) and index.png (one tile per rendered \
        line). A line renders the same bytes alone or in a batch.

        Examples:
          customize render "a red ball bouncing" --frames 8 --steps 25 --seed 1 --out ball.mp4
          customize render "a red ball" --frames 1 --out ball.png --scheduler euler
          customize render "a red ball" --frames 1 --lora style:0.8 --out styled.png
          customize render --prompts prompts/demo.txt --out renders/demo
          customize render "a red star on a gray background" --motion motions/zigzag/temporal.safetensors --out star.mp4
          customize render "a cat" --motion run/temporal.safetensors:0.8 --spatial run/spatial-clip1.safetensors:0.5 \
            --noise-prior 0.3 --prior-clip clips/clip1.mp4 --out cat.mp4
          customize render "a ball in <sty> style" --lora sty.safetensors --decor-remove "star, red" --out ball.png
        """)

    @Argument(help: "The prompt (or give --prompts FILE).") var prompt: String?
    @Option(help: "Render every line of this prompt file into the folder --out.") var prompts: String?
    @Option(help: "The negative prompt (the unconditional side of classifier-free guidance).") var negative = ""
    @Option(help: "A diffusers text-to-video folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).")
    var model = SamplesFolder.path("base")
    @Option(help: "Frames to render (default 8, or as many as --latents holds).") var frames: Int?
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale; 1 or less turns guidance off.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Seed of the starting noise.") var seed: UInt64 = 0
    @Option(help: "Sampler: ddim or euler.") var scheduler = "ddim"
    @Option(name: .customLong("lora"), help: ArgumentHelp("A LoRA file to fuse in, NAME[:SCALE] (repeatable).", valueName: "name[:scale]"))
    var loras: [String] = []
    @Option(name: .customLong("lora-dir"), help: "Where --lora NAME finds NAME.safetensors.") var loraDirectory = "loras"
    @Option(help: ArgumentHelp("A MotionDirector temporal LoRA, FILE[:SCALE].", valueName: "file[:scale]")) var motion: String?
    @Option(name: .customLong("spatial"), help: ArgumentHelp("A MotionDirector spatial LoRA, FILE[:SCALE] (repeatable).", valueName: "file[:scale]"))
    var spatials: [String] = []
    @Option(name: .customLong("noise-prior"), help: "Start from the DDIM inversion of --prior-clip mixed in at this strength (0…1).")
    var noisePrior: Float?
    @Option(name: .customLong("prior-clip"), help: "The clip (or image) whose inversion --noise-prior mixes in.") var priorClip: String?
    @Option(name: .customLong("onestep"), help: ArgumentHelp("HiPA one-step adaptors (train-onestep's file), FILE[:SCALE]; needs --steps 1.",
                                                             valueName: "file[:scale]"))
    var oneStep: String?
    @OptionGroup var decorOptions: DECOROptions
    @Flag(name: .customLong("allow-partial"), help: "Load the parts of a LoRA file that fit the model and skip the rest, with a warning, instead of failing.")
    var allowPartial = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption
    @Option(help: "Output file: .png for one frame; .mp4, .m4v or .gif for several (default render.png / render.mp4). With --prompts: the output folder (default renders/<file stem>).")
    var out: String?
    @Option(help: "Frames per second of the video.") var fps: Double = 8
    @Option(help: "Start from the latents in this safetensors file (tensor \"latents\", [1, 4, frames, h, w]).")
    var latents: String?
    @Option(name: .customLong("save-latents"), help: "Write the final latents to this safetensors file.")
    var saveLatents: String?

    static let schedulers: [String: SchedulerKind] = ["ddim": .ddim, "euler": .eulerDiscrete]

    func validate() throws {
        switch (prompt, prompts) {
        case (nil, nil): throw ValidationError("give a PROMPT or --prompts FILE")
        case (_?, _?): throw ValidationError("give either a PROMPT or --prompts FILE, not both")
        case (nil, _?):
            if latents != nil || saveLatents != nil {
                throw ValidationError("--latents and --save-latents render one prompt; leave them out with --prompts")
            }
        default: break
        }
        guard Self.schedulers[scheduler] != nil else {
            throw ValidationError("--scheduler expects ddim or euler, got \"\(scheduler)\"")
        }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        try decorOptions.validate(training: false)
        if oneStep != nil {
            guard steps == 1 else { throw ValidationError("--onestep renders in one step; give --steps 1") }
            if noisePrior != nil { throw ValidationError("--onestep starts from noise; leave out --noise-prior") }
        }
        if let frames, frames < 1 { throw ValidationError("--frames must be at least 1, got \(frames)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
        guard fps.isFinite, fps > 0, fps <= 1000 else { throw ValidationError("--fps must be in (0, 1000], got \(fps)") }
        for (option, values) in [("--lora", loras), ("--motion", motion.map { [$0] } ?? []), ("--spatial", spatials),
                                 ("--onestep", oneStep.map { [$0] } ?? [])] {
            for value in values {
                do { _ = try LoRARequest(parsing: value) } catch { throw ValidationError("\(option) \(describe(error))") }
            }
        }
        switch (noisePrior, priorClip) {
        case (nil, nil): break
        case (let p?, _?):
            guard p.isFinite, (0...1).contains(p) else { throw ValidationError("--noise-prior must lie in [0, 1], got \(p)") }
            if prompts != nil { throw ValidationError("--noise-prior renders one prompt; leave it out with --prompts") }
            if latents != nil { throw ValidationError("give --latents or --noise-prior, not both") }
        case (nil, _?): throw ValidationError("--prior-clip needs --noise-prior P")
        case (_?, nil): throw ValidationError("--noise-prior needs --prior-clip CLIP")
        }
    }

    /// The command line's settings; with --prompts, the defaults of every line.
    func commandLineSettings(frames frameCount: Int) throws -> RenderSettings {
        var choices: [LoRAChoice] = []
        for (option, values, role) in [("--lora", loras, LoRAChoice.Role.lora), ("--motion", motion.map { [$0] } ?? [], .motion),
                                       ("--spatial", spatials, .spatial), ("--onestep", oneStep.map { [$0] } ?? [], .onestep)] {
            for value in values {
                do {
                    var choice = try LoRARequest(parsing: value).resolve(loraFolder: loraDirectory)
                    choice.role = role
                    choices.append(choice)
                } catch {
                    throw ExitStatus.Failure(status: .failure, message: "\(option) \(describe(error))")
                }
            }
        }
        return RenderSettings(prompt: prompt ?? "", negative: negative, frames: frameCount, steps: steps, guidance: guidance,
                              seed: seed, scheduler: scheduler, loras: choices, decor: decorOptions.setting)
    }

    func run() throws {
        try threadOptions.apply()
        if let prompts {
            let stem = ((prompts as NSString).lastPathComponent as NSString).deletingPathExtension
            try RenderBatch(promptsPath: prompts, folder: out ?? "renders/\(stem)", defaults: commandLineSettings(frames: frames ?? 8),
                            loraFolder: loraDirectory, model: model, motionAdapter: motionAdapterOption.motionAdapter, fps: fps,
                            allowPartial: allowPartial).run()
            return
        }
        let initial = try latents.map(RenderLatents.read)
        if let initial, let frames, frames != initial.shape[2] {
            throw ExitStatus.Failure(status: .failure, message: "--frames \(frames) does not match the \(initial.shape[2]) frames of --latents '\(latents!)'")
        }
        let frameCount = frames ?? initial?.shape[2] ?? 8
        let settings = try commandLineSettings(frames: frameCount)
        // Every destination is checked before the (long) rendering starts.
        let output = try RenderOutput(out: out ?? (frameCount == 1 ? "render.png" : "render.mp4"), frames: frameCount)
        if let saveLatents { try OutputFile.checkWritable(saveLatents, option: "--save-latents") }

        let renderer = PromptRenderer(pipeline: try motionAdapterOption.load(model), model: motionAdapterOption.label(model), fps: fps,
                                      allowPartial: allowPartial)
        try renderer.pipeline.checkFrames(frameCount)
        var start = initial, source = latents
        if let noisePrior, let priorClip {
            // Inverted with the base model, before the render fuses any LoRA in.
            start = try NoisePriorLatents.make(pipeline: renderer.pipeline, clip: priorClip, frames: frameCount, strength: noisePrior,
                                               steps: steps, seed: seed)
            source = "noise prior \(noisePrior) from \(priorClip)"
        }
        let result = try renderer.render(settings, initialLatents: start, latentsSource: source, to: output)
        if let saveLatents {
            try RenderLatents.write(result.video.latents, to: saveLatents, metadata: Dictionary(uniqueKeysWithValues: result.metadata))
        }
        print("wrote " + (result.written + (saveLatents.map { [$0] } ?? [])).joined(separator: ", ")
              + " (\(frameCount) frame\(frameCount == 1 ? "" : "s"), \(result.images[0].width)x\(result.images[0].height))")
    }
}
