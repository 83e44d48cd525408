import ArgumentParser
import Diffusion
import Evaluation

/// `customize eval decor`: does DECOR stop a style LoRA from leaking its reference's content, at
/// little cost to prompt adherence? (Issue 8's DECOR evaluation.)
struct EvalDecor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decor",
        abstract: "Measure a style LoRA's content leakage with and without DECOR, read by the probes.",
        discussion: """
        The style reference is --reference-images world images of one content (--reference, e.g. \
        "red heart") drawn in --style, in varied places, sizes and backgrounds, written to \
        <out>/reference/ with their captions. A style LoRA is trained on them (train-lora --token \
        <style>, --train-steps steps) into <out>/style.safetensors, or taken from --style-lora; a run \
        found under --out is continued, not retrained.

        Then --prompts prompts "a medium <colour> <shape> on a <colour> background in <style> style" \
        whose colour and shape are not the reference's are rendered (prompt i with seed --seed + i) \
        three ways: the style LoRA alone, the style LoRA with DECOR removing the reference's content \
        words from the prompt's text embeddings (--decor-strength), and the base model alone.

        Scores per row, read by the world's probes (in sketch style, drawn in grey whatever the colour \
        asked for, only the shape counts):
          leakage     share of pictures whose colour or shape is the reference's instead of the prompt's
          adherence   share whose colour and shape are both the prompt's
          style       share the style probe reads as --style
          s/image     seconds per picture
        The world's own drawings of the prompts, read the same way, give the probes' accuracy.

        Bars (--require-bars exits with status 1 when one is missed): DECOR's leakage at most half the \
        plain style LoRA's, and its adherence no more than 0.05 below it.

        Examples:
          customize eval decor
          customize eval decor --style neon --reference "yellow star" --json
        """)

    @Option(help: "The style (neon, pixel or sketch).") var style = "sketch"
    @Option(help: "The reference's content, \"<colour> <shape>\".") var reference = "red heart"
    @Option(help: "Reference images to draw.") var referenceImages = 8
    @Option(help: "A style LoRA to evaluate instead of training one on the reference.") var styleLora: String?
    @Option(help: "Training steps of the style LoRA (train-lora's default 2000).") var trainSteps: Int?
    @Option(help: "DECOR's strength α (0…1).") var decorStrength: Float = 1
    @Option(help: "Prompts to render (each three ways).") var prompts = 12
    @Option(help: "Seed of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The shape classifier (default: <model>/probes/shape-classifier.safetensors).") var probe: String?
    @Option(help: "The style classifier (default: <model>/probes/style-classifier.safetensors).") var styleProbe: String?
    @Option(help: "Where the reference, the style LoRA, the sheet and report.json go.") var out = "decor-eval"
    @OptionGroup var world: EvalWorldOption
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when DECOR misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    var evaluation: DecorEvaluation {
        var evaluation = DecorEvaluation(model: model, out: out)
        (evaluation.style, evaluation.reference, evaluation.referenceImages, evaluation.styleLora) = (style, reference, referenceImages, styleLora)
        (evaluation.trainSteps, evaluation.decorStrength, evaluation.prompts, evaluation.seed) = (trainSteps, decorStrength, prompts, seed)
        (evaluation.steps, evaluation.guidance, evaluation.probe, evaluation.styleProbe) = (steps, guidance, probe, styleProbe)
        evaluation.core = world.isCore
        return evaluation
    }

    func validate() throws {
        try validating(evaluation.validate)
    }

    func run() throws {
        try threadOptions.apply()
        try printResult(try evaluation.run(), json: json, requireBars: requireBars)
    }
}
