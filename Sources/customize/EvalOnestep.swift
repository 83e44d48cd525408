import ArgumentParser
import Diffusion
import Evaluation

/// `customize eval onestep --onestep FILE`: does HiPA's one step come close to the many-step teacher,
/// keep its detail, and save the time? (Issue 8's evaluation.)
struct EvalOnestep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onestep",
        abstract: "Compare the teacher (many DDIM steps), one step without adaptors and one step with HiPA.",
        discussion: """
        Renders --prompts held-out images of the core world (--full: the full world's; prompt i from \
        seed --seed + i, the same noise for every \
        row) three ways: the base model with --teacher-steps DDIM steps at --guidance, one step at the \
        last timestep without adaptors, and one step with the --onestep adaptors.

        Scores per row:
          distance    root mean square of the decoded pixels' difference to the teacher's (pixels in [-1, 1])
          adherence   share of renders whose objects all have the prompt's colour and shape (world probes)
          hf ratio    high-frequency energy (FFT high-pass beyond half the Nyquist radius, decoded \
        pixels) summed over prompts, relative to the teacher's
          s/image     seconds per render
        Bars (--require-bars exits with status 1 when one is missed): HiPA's adherence within 0.10 of \
        the teacher's, its hf ratio at least 0.8, and at least 15x faster than the teacher.

        The sheet (one row per way, first frames) and report.json, with every prompt's outcomes, go \
        to --out.

        Example:
          customize eval onestep --onestep onestep.safetensors --json
        """)

    @Option(help: "The one-step adaptors (train-onestep's file).") var onestep: String
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The shape classifier (default: <model>/probes/shape-classifier.safetensors).") var probe: String?
    @Option(help: "Prompts to render (each three ways).") var prompts = 12
    @Option(help: "Seed of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(name: .customLong("teacher-steps"), help: "The teacher's DDIM steps.") var teacherSteps = 25
    @Option(help: "The teacher's guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Where the sheet (eval-onestep.png) and report.json go.") var out = "onestep-eval"
    @OptionGroup var world: EvalWorldOption
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when HiPA misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    var evaluation: OnestepEvaluation {
        var evaluation = OnestepEvaluation(onestep: onestep, model: model, out: out)
        (evaluation.probe, evaluation.prompts, evaluation.seed, evaluation.teacherSteps, evaluation.guidance)
            = (probe, prompts, seed, teacherSteps, guidance)
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
