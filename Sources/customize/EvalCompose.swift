import ArgumentParser
import Diffusion
import Evaluation

/// `customize eval compose`: do LoRA-Composer and CLoRA keep two concepts present and in their
/// places, where merging the LoRAs confuses or drops them? (Issue 7's evaluation.)
struct EvalCompose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compose",
        abstract: "Compare LoRA-Composer, CLoRA and weighted merging on pairs of concept LoRAs, read by the concept probe.",
        discussion: """
        For every pair of the --lora concepts and --seeds seeds, renders "a A on the left and a B on \
        the right on a <colour> background" with each method (seed i swaps the sides when odd, and \
        cycles the background colour). LoRA-Composer gets the automatic side-by-side boxes; CLoRA and \
        merging only the prompt. The concept probe (a classifier trained by `eval train-probe --kind \
        concept`) names what stands in each half of the picture: a concept, something else, or nothing.

        Per method:
          placed        share of pictures with each concept read in its own half (the bar's figure)
          present       share with each concept read somewhere (no vanishing)
          vanished      share where a concept is read nowhere
          confused      share with both present but not each in its half (swapped or doubled)
          <concept>     share of its pictures with that concept read in its half
          s/image       seconds per picture
        The world's own drawing of each scene, read the same way, gives the probe's accuracy.

        Bars (--require-bars exits with status 1 when one is missed): composer and clora each placed \
        ≥ 0.7 and at least 0.25 above merge.

        Examples:
          customize eval compose
          customize eval compose --lora cat --lora dog --lora robot --seeds 8 --json
        """)

    @Option(name: .customLong("lora"), help: ArgumentHelp("A concept LoRA, NAME[:SCALE] (repeatable; default cat and dog).", valueName: "name[:scale]"))
    var loras: [String] = []
    @Option(help: "Seeds per pair (each rendered by every method).") var seeds = 6
    @Option(help: "Methods to compare, comma-separated.") var methods = "composer,clora,merge"
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Seed of the first picture (picture i of a pair uses seed + i).") var seed: UInt64 = 0
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The concept classifier (default: <model>/probes/concept-classifier.safetensors).") var probe: String?
    @Option(name: .customLong("lora-dir"), help: "Where a bare --lora NAME is looked for first (then samples/loras).")
    var loraDirectory = "loras"
    @Option(help: "Where the sheet and report.json go.") var out = "compose-eval"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when composer or clora misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    /// The evaluation these options ask for; `methods` nil keeps the library's default.
    func evaluation(methods parsed: [ComposePlan.Method]? = nil) -> ComposeEvaluation {
        var evaluation = ComposeEvaluation(model: model, out: out)
        (evaluation.loras, evaluation.seeds, evaluation.steps, evaluation.guidance) = (loras, seeds, steps, guidance)
        (evaluation.seed, evaluation.probe, evaluation.loraDirectory) = (seed, probe, loraDirectory)
        if let parsed { evaluation.methods = parsed }
        return evaluation
    }

    func validate() throws {
        try validating {
            try evaluation().validate()
            _ = try ComposeEvaluation.parseMethods(methods)
        }
    }

    func run() throws {
        try threadOptions.apply()
        try printResult(try evaluation(methods: try ComposeEvaluation.parseMethods(methods)).run(), json: json, requireBars: requireBars)
    }
}
