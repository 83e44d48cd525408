import ArgumentParser
import Diffusion
import Evaluation

/// `customize eval b4m`: does a Break-for-Make adapter draw its content in its style better than an
/// ordinary content LoRA and style LoRA merged? (Issue 8's Break-for-Make evaluation.)
struct EvalB4M: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "b4m",
        abstract: "Compare a Break-for-Make adapter with a merged content LoRA and style LoRA, read by the concept and style probes.",
        discussion: """
        The content is a reserved concept (--content-images, captions naming cat, dog or robot) and \\
        the style a reserved style (--style-images, captions ending "in <style> style"). Under --out \\
        it trains, or continues when a run is found there: train-content (auxiliary styles: \\
        --aux-styles, default the other samples/styles folders), train-style (auxiliary contents: \\
        --aux-contents, default the other samples/concepts folders), make, and the baseline's two \\
        ordinary LoRAs (train-lora on each set). --train-steps sets every run's steps.

        Then --prompts prompts "a <size> <concept> on a <colour> background in <style> style" \\
        (prompt i with seed --seed + i) are rendered with the made adapter, with the content and the \\
        style adapter each alone (what each half brings before make), with the content and the \\
        style LoRA each alone (what an ordinary LoRA reaches on the model), with the two LoRAs merged \\
        (strength 1 each) and with the base model. Per row:
          content   share of pictures the concept probe reads as the concept
          style     share the style probe reads as the style
          both      share with both
          s/image   seconds per picture
        The world's own drawings of the prompts, read the same way, give the probes' accuracy.

        Bars (--require-bars exits with status 1 when one is missed): the made adapter's content and \\
        style fidelity each ≥ 0.8 and above the merged LoRAs'.

        Examples:
          customize eval b4m
          customize eval b4m --content-images samples/concepts/dog --style-images samples/styles/neon --json
        """)

    @Option(help: "The content images (a reserved concept).") var contentImages = SamplesFolder.path("concepts/cat")
    @Option(help: "The style images (a reserved style).") var styleImages = SamplesFolder.path("styles/sketch")
    @Option(name: .customLong("aux-styles"), parsing: .upToNextOption, help: "Auxiliary style folders for train-content (default: the other samples/styles folders).")
    var auxStyles: [String] = []
    @Option(name: .customLong("aux-contents"), parsing: .upToNextOption, help: "Auxiliary content folders for train-style (default: the other samples/concepts folders).")
    var auxContents: [String] = []
    @Option(help: "Training steps of every adapter (default: each command's own).") var trainSteps: Int?
    @Option(name: .customLong("b4m-lr"), help: "Learning rate of new train-content, train-style and make runs (default: theirs, 1e-4; a run found under --out continues at its own); the baseline LoRAs keep train-lora's.")
    var b4mLearningRate: Float?
    @Option(help: "Prompts to render (each seven ways).") var prompts = 8
    @Option(help: "Seed of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The concept classifier (default: <model>/probes/concept-classifier.safetensors).") var probe: String?
    @Option(help: "The style classifier (default: <model>/probes/style-classifier.safetensors).") var styleProbe: String?
    @Option(help: "Where the adapters, the sheet and report.json go.") var out = "b4m-eval"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when the made adapter misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    var evaluation: B4MEvaluation {
        var evaluation = B4MEvaluation(contentImages: contentImages, styleImages: styleImages, model: model, out: out)
        (evaluation.auxStyles, evaluation.auxContents, evaluation.trainSteps, evaluation.b4mLearningRate) = (auxStyles, auxContents, trainSteps, b4mLearningRate)
        (evaluation.prompts, evaluation.seed, evaluation.steps, evaluation.guidance) = (prompts, seed, steps, guidance)
        (evaluation.probe, evaluation.styleProbe) = (probe, styleProbe)
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
