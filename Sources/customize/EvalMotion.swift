import ArgumentParser
import Diffusion
import Evaluation

/// `customize eval motion`: does a MotionDirector adapter carry the clips' motion to subjects that
/// look nothing like them, better than a plain LoRA and than the base model? (Issue 6's evaluation.)
struct EvalMotion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "motion",
        abstract: "Compare MotionDirector, a plain LoRA and the base model on new subjects doing the clips' motion.",
        discussion: """
        Trains MotionDirector's adapters and the plain LoRA baseline (train-motion --plain: one LoRA on \
        the same layers, whole clips, plain MSE) on the clips with the same settings, into \
        <out>/motiondirector and <out>/plain — or takes them from --motion-adapters (a train-motion \
        run folder) and --plain-adapter. Runs found under --out are continued, not retrained.

        Then renders --prompts prompts "a <size> <colour> <shape> <motion> on a <colour> background" \
        whose object colour, shape and background colour appear in none of the clips (by their \
        captions and by the probes), with the clips' motion phrase; prompt i uses seed --seed + i. \
        Each is rendered three ways: with MotionDirector's temporal LoRA only (its inference default), \
        with the plain LoRA, and with the base model alone.

        Scores per row, read by the world's probes:
          motion fidelity  Pearson correlation of the main object's per-frame displacements \
        (dx's then dy's) with the clips' mean; mean over prompts; a render where the object is found \
        in fewer than half of the frames counts 0
          leakage          share of renders whose colour or shape is a clip's instead of the prompt's
          adherence        share of renders whose colour and shape are both the prompt's
          s/clip           seconds per rendered clip
        The training clips' own fidelity against the reference is shown as the probes' sanity check (≈ 1).

        Bars (--require-bars exits with status 1 when one is missed): MotionDirector's motion fidelity \
        ≥ 0.8, at least 0.2 above the plain LoRA's and the base model's, and its leakage at most 0.1.

        Examples:
          customize eval motion --clips samples/clips
          customize eval motion --clips samples/clips --motion-adapters motions/zigzag --json
        """)

    @Option(help: "The folder of training clips (captions in .txt files beside them).") var clips: String
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The shape classifier (default: <model>/probes/shape-classifier.safetensors).") var probe: String?
    @Option(help: "A train-motion run folder to take temporal.safetensors (and its settings) from instead of training.")
    var motionAdapters: String?
    @Option(help: "A plain LoRA file (train-motion --plain's plain.safetensors) instead of training one.") var plainAdapter: String?
    @Option(help: "Training steps of both adapters (default: MotionDirector's 1500, or the --motion-adapters run's).")
    var trainSteps: Int?
    @Option(help: "LoRA rank of both adapters (default: MotionDirector's 32, or the --motion-adapters run's).") var rank: Int?
    @Option(help: "Prompts to render (each three ways).") var prompts = 12
    @Option(help: "Seed of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "The motion words of the prompts (default: the clips' captions' most common, e.g. \"zigzagging quickly\").")
    var motionPhrase: String?
    @Option(help: "Where trained adapters, the sheet and report.json go (default motions/eval-<clips folder name>).") var out: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when MotionDirector misses a bar.") var requireBars = false
    @OptionGroup var world: EvalWorldOption
    @OptionGroup var threadOptions: ThreadOptions

    var evaluation: MotionEvaluation {
        var evaluation = MotionEvaluation(clips: clips, model: model)
        (evaluation.probe, evaluation.motionAdapters, evaluation.plainAdapter) = (probe, motionAdapters, plainAdapter)
        (evaluation.trainSteps, evaluation.rank, evaluation.prompts, evaluation.seed) = (trainSteps, rank, prompts, seed)
        (evaluation.steps, evaluation.guidance, evaluation.motionPhrase, evaluation.out) = (steps, guidance, motionPhrase, out)
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
