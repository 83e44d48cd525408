import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Media
import Methods
import Tensor

/// `customize compose "PROMPT" --lora cat --lora dog`: several concept LoRAs in one picture or clip,
/// by LoRA-Composer, CLoRA or weighted merging (Sources/Methods/Composition).
struct Compose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compose several concept LoRAs in one picture or clip (LoRA-Composer, CLoRA or weighted merging).",
        discussion: """
        --lora NAME[:SCALE] (repeatable, one per concept) is a file, or a bare name looked up in \
        --lora-dir (default ./loras) and then samples/loras: NAME.safetensors, or the file whose \
        metadata stores NAME as its token (train-lora --token "<cat>" is found as cat or <cat>).

        --method composer (default): LoRA-Composer. Each concept gets a box (--region \
        NAME=x0,y0,x1,y1, fractions of the image from the top left; without --region the boxes \
        stand side by side, full columns from 10% to 90% of the height). Boxes must lie inside the \
        image and must not overlap; every LoRA needs one. Its concept is injected in every \
        cross-attention inside the box with its region prompt (--concept-prompt NAME="...", \
        default "a <token> <class>" from the file's metadata, else "a NAME", then the global prompt's \
        "on a … background" phrase when it has one), isolated from the \
        other boxes in self-attention, and its attention pulled into the box by latent guidance.

        --method clora: CLoRA. One U-Net pass per prompt each step: the global prompt without \
        LoRAs, and each LoRA with its prompt (--concept-prompt, default the global prompt with the \
        LoRA's token before the concept's word); a contrastive loss on their attention maps moves \
        the latent, and masks from the maps fuse the passes' noise predictions. The global prompt \
        must name every concept (by its token, class word or name).

        --method merge: the LoRAs' weighted deltas merged into the model (diffusers' set_adapters), \
        then a plain render of the global prompt: the baseline.

        The token positions each method reads are printed. --save-attention DIR writes each concept \
        token's attention, averaged over the steps, as a heat map over the picture (one PNG per \
        token; clips side by side). Outputs are written like render's: one frame as a PNG, several \
        as a video with <out>_frames/ and <out>_sheet.png; every PNG carries the settings.

        --decor-remove "WORDS" [--decor-strength A] projects every conditional prompt (global and \
        per concept) away from WORDS, as in render (DECOR).

        Without a prompt the concepts stand side by side in --lora order and the prompt names them \
        so (printed): "a cat on the left and a dog on the right" (three: "… a dog in the middle …"); \
        each concept is named by its class word from the file's metadata, else by its name (by \
        its name when two share a class word). With --region the prompt names them without \
        places: "a cat and a dog".

        Examples:
          customize compose --lora cat --lora dog
          customize compose "a cat on the left and a dog on the right" --lora cat --lora dog
          customize compose "a cat and a dog" --lora cat --lora dog --region cat=0,0.2,0.45,0.9 --region dog=0.55,0.2,1,0.9
          customize compose "a cat and a dog" --lora cat --lora dog --method clora --save-attention maps/
          customize compose "a cat and a dog" --lora cat:0.8 --lora dog:0.8 --method merge --out merged.png
        """)

    @Argument(help: ArgumentHelp("The global prompt (default: the concepts side by side, e.g. \"a cat on the left and a dog on the right\").",
                                 valueName: "prompt"))
    var prompt: String?
    @Option(name: .customLong("lora"), help: ArgumentHelp("A concept LoRA, NAME[:SCALE] (repeatable).", valueName: "name[:scale]"))
    var loras: [String] = []
    @Option(help: "composer, clora or merge.") var method = "composer"
    @Option(name: .customLong("region"), help: ArgumentHelp("A concept's box for --method composer (repeatable).", valueName: "name=x0,y0,x1,y1"))
    var regions: [String] = []
    @Option(name: .customLong("concept-prompt"), help: ArgumentHelp("A concept's own prompt (repeatable).", valueName: "name=prompt"))
    var conceptPrompts: [String] = []
    @Option(help: "The negative prompt (the unconditional side of classifier-free guidance).") var negative = ""
    @Option(help: "Frames to render (1: a picture).") var frames = 1
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale; 1 or less turns guidance off.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Seed of the starting noise.") var seed: UInt64 = 0
    @Option(help: "Sampler: ddim or euler.") var scheduler = "ddim"
    @Option(help: "Output file: .png for one frame; .mp4, .m4v or .gif for several (default compose.png / compose.mp4).")
    var out: String?
    @Option(name: .customLong("save-attention"), help: "Write each concept token's attention as a heat-map PNG into this folder.")
    var saveAttention: String?
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(name: .customLong("lora-dir"), help: "Where a bare --lora NAME is looked for first (then samples/loras).")
    var loraDirectory = "loras"
    @Option(help: "Frames per second of the video.") var fps: Double = 8
    @OptionGroup var decorOptions: DECOROptions
    @Flag(name: .customLong("allow-partial"), help: "Load the parts of a LoRA file that fit the model and skip the rest, with a warning, instead of failing.")
    var allowPartial = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        guard ComposePlan.Method(rawValue: method) != nil else {
            throw ValidationError("--method expects composer, clora or merge, got \"\(method)\"")
        }
        guard Render.schedulers[scheduler] != nil else {
            throw ValidationError("--scheduler expects ddim or euler, got \"\(scheduler)\"")
        }
        guard loras.count >= 2 else {
            throw ValidationError(loras.isEmpty ? "give two or more --lora NAME[:SCALE], one per concept"
                : "compose puts two or more concepts in one picture: give another --lora (to render with one LoRA: customize render --lora '\(loras[0])' \"PROMPT\")")
        }
        if let prompt, prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw ValidationError("the prompt is empty: give one, or leave it out for the concepts side by side")
        }
        try decorOptions.validate(training: false)
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1, got \(frames)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
        guard fps.isFinite, fps > 0, fps <= 1000 else { throw ValidationError("--fps must be in (0, 1000], got \(fps)") }
        for lora in loras {
            do { _ = try LoRARequest(parsing: lora) } catch { throw ValidationError("--lora \(describe(error))") }
        }
        for region in regions {
            do { _ = try ComposePlan.parseRegion(region) } catch { throw ValidationError(describe(error)) }
        }
        for conceptPrompt in conceptPrompts {
            do { _ = try ComposePlan.parseConceptPrompt(conceptPrompt) } catch { throw ValidationError(describe(error)) }
        }
    }

    func run() throws {
        try threadOptions.apply()
        // 1. Everything that can be checked without the model.
        let plan: ComposePlan
        do {
            let choices = try loras.map { try LoRARequest(parsing: $0).resolve(loraFolder: loraDirectory) }
            plan = try ComposePlan(method: ComposePlan.Method(rawValue: method)!, prompt: prompt, choices: choices,
                                   regions: try regions.map(ComposePlan.parseRegion),
                                   conceptPrompts: try conceptPrompts.map(ComposePlan.parseConceptPrompt))
        } catch let error as LoRARequestError {
            throw ExitStatus.Failure(status: .failure, message: "--lora \(error)")
        } catch {
            throw ExitStatus.Failure(status: .failure, message: describe(error))
        }
        let output = try RenderOutput(out: out ?? (frames == 1 ? "compose.png" : "compose.mp4"), frames: frames)
        if let saveAttention { try AttentionMapWriter.checkFolder(saveAttention) }

        // 2. The model and the LoRAs (each file checked against the model before rendering).
        let pipeline = try motionAdapterOption.load(model)
        try DECORSetting.install(decorOptions.setting, on: pipeline)
        let (adapters, concepts) = try ComposeRunner.load(plan, on: pipeline, allowPartial: allowPartial)
        if prompt == nil { print("prompt (from the concepts' names; give one to change it): \"\(plan.prompt)\"") }
        let settings = CompositionSettings(prompt: plan.prompt, negative: negative, frames: frames, steps: steps, guidance: guidance,
                                           seed: seed, scheduler: Render.schedulers[scheduler]!)

        // 3. The method; token positions are shown before the long part starts.
        let progress = ProgressReporter("compose", total: steps, unit: "step")
        let result = try ComposeRunner.run(plan.method, pipeline: pipeline, adapters: adapters, concepts: concepts, settings: settings,
                                           recordsAttention: saveAttention != nil, tokens: printTokens) { done, _, note in
            progress.update(done, note: note)
        }
        for note in result.notes { FileHandle.standardError.write("customize: \(note)\n") }

        // 4. Outputs.
        let images = try result.frames.map { frame in
            try RGBImage(chwFloats: frame.values, width: frame.shape[2], height: frame.shape[1])
        }
        let metadata = metadataEntries(plan)
        var written = try output.write(images, metadata: metadata, fps: fps)
        if let saveAttention {
            written += try AttentionMapWriter.write(result.attention, frames: result.frames, to: saveAttention, metadata: metadata)
        }
        print("wrote " + written.joined(separator: ", ")
              + " (\(frames) frame\(frames == 1 ? "" : "s"), \(images[0].width)x\(images[0].height), \(plan.method.rawValue))")
    }

    func printTokens(_ choices: [ConceptTokenChoice]) {
        for choice in choices {
            print("tokens of \(choice.concept) in \"\(choice.prompt)\": \(choice.positions.isEmpty ? "none" : choice.description)")
        }
    }
    /// The PNG text of every output: render's keys plus the method and each concept's settings.
    func metadataEntries(_ plan: ComposePlan) -> [(String, String)] {
        let concepts = plan.concepts.map { concept -> String in
            var parts = ["\(concept.name) = \(concept.choice.label)"]
            if let box = concept.box { parts.append("region \(box)") }
            if plan.method != .merge { parts.append("prompt \"\(concept.prompt)\"") }
            return parts.joined(separator: ", ")
        }
        return [("prompt", plan.prompt), ("negative", negative), ("seed", String(seed)), ("steps", String(steps)),
                ("guidance", String(guidance)), ("scheduler", scheduler), ("model", model),
                ("adapters", LoRAChoice.metadataLabel(plan.concepts.map(\.choice))), ("method", plan.method.rawValue),
                ("concepts", concepts.joined(separator: "; "))] + (decorOptions.setting.map { [("decor", $0.label)] } ?? [])
    }
}
