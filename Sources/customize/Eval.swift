import ArgumentParser
import Diffusion
import Evaluation
import Foundation

/// `customize eval …`: measure what a model or a method achieves on the synthetic world.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure models and methods on the synthetic world with pixel probes.",
        discussion: """
        Examples:
          customize eval base --prompts 40 --json
          customize eval train-probe --out samples/base/probes/shape-classifier.safetensors
          customize eval motion --clips samples/clips
        """,
        subcommands: [EvalBase.self, EvalCaption.self, EvalTrainProbe.self, EvalMotion.self, EvalCompose.self, EvalDecor.self, EvalB4M.self, EvalOnestep.self])
}

/// `--kind shape|concept|style` of `eval train-probe`.
extension ProbeKind: ExpressibleByArgument {}

/// Runs a library's check of its settings as this command's validation: its message becomes the
/// usage error ArgumentParser prints (status 64).
func validating(_ check: () throws -> Void) throws {
    do { try check() } catch let error as EvaluationError { throw ValidationError(error.message) }
}

/// What every evaluation with an output folder prints: its JSON, or its table and the two files it
/// wrote; with `requireBars`, exit status 1 when a bar is missed.
func printResult<Report: EvalReport>(_ result: EvaluationResult<Report>, json: Bool, requireBars: Bool) throws {
    if json {
        print(String(decoding: try result.report.json(), as: UTF8.self))
    } else {
        print(result.report.table)
        print("wrote \(result.reportPath) and \(result.sheetPath)")
    }
    if requireBars && !result.report.passesBars { throw ExitCode(1) }
}

/// `customize eval train-probe`: trains one of the probes' classifiers.
struct EvalTrainProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-probe",
        abstract: "Train one of the probes' classifiers on world renders and save it beside a model.",
        discussion: """
        shape: reads an object's silhouette (found by the probes' segmentation) and names its \
        shape; trains on the world's train split and reports accuracy on the held-out split. \
        concept: names the reserved concept (cat, dog, robot, or other) in one half of a two-thing \
        render, cut out as eval compose cuts a region. style: names the style a frame is drawn in \
        (none, neon, pixel, sketch). Each trains on renders of which half are roughened with noise \
        and blur, as decoded latents are.

        Examples:
          customize eval train-probe --out samples/base/probes/shape-classifier.safetensors
          customize eval train-probe --kind concept --out samples/base/probes/concept-classifier.safetensors
          customize eval train-probe --kind style --out samples/base/probes/style-classifier.safetensors
        """)

    @Option(help: "Which classifier: shape, concept or style.") var kind: ProbeKind = .shape
    @Option(help: "Where to write the classifier (default: samples/base/probes/<kind>-classifier.safetensors).") var out: String?
    @Option(help: "World images to train on (default: shape 6000, concept 3000, style 3000).") var images: Int?
    @Option(help: "Optimizer steps (default: shape 8000, concept 6000, style 4000).") var steps: Int?
    @Option(help: "World and initialisation seed.") var seed: UInt64 = 0
    @OptionGroup var threadOptions: ThreadOptions

    var training: ProbeTrainingRun {
        var training = ProbeTrainingRun(kind: kind, out: out ?? kind.defaultPath(model: "samples/base"))
        (training.images, training.steps, training.seed) = (images, steps, seed)
        return training
    }

    func validate() throws {
        try validating(training.validate)
    }

    func run() throws {
        try threadOptions.apply()
        let result = try training.run()
        let report = result.report
        print(String(format: "%@: %d examples, accuracy train %.4f, held-out %.4f, held-out roughened %.4f (%.0f s)",
                     kind.title, report.examples, report.trainAccuracy, report.validationAccuracy, report.degradedValidationAccuracy,
                     result.seconds))
        print("held-out roughened, by true label (rows) and reading (columns):")
        print(ConfusionTable(labels: report.network.labels, counts: report.degradedConfusion).text)
        print("wrote \(result.out)")
    }
}

/// `customize eval base`: how well a base model composes held-out attribute combinations.
struct EvalBase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base",
        abstract: "Render held-out-composition prompts and score them with the probes.",
        discussion: """
        Prompts come from the core world's held-out split (colour–shape pairs never seen in \
        pretraining; --full: the full world's), alternating images and 8-frame clips. Each is rendered by the model and also \
        drawn by the world's own renderer; the probes read colour, shape, size, position (two-object \
        scenes) and motion from both. The true renders' scores are the probes' own accuracy: the \
        figures for the model can be trusted as far as those are near 1. The true renders passed \
        through the model's autoencoder (posterior mean, decoded) give a third column: the most the \
        U-Net can reach through this autoencoder.

        Bars for the shipped model: colour ≥ 0.9, shape ≥ 0.8, motion direction ≥ 0.8 \
        (--require-bars exits with status 1 when one is missed).

        Examples:
          customize eval base --prompts 40
          customize eval base --model runs/base/model --json --out eval/
        """)

    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The shape classifier (default: <model>/probes/shape-classifier.safetensors).") var probe: String?
    @Option(help: "Prompts to render (half images, half clips).") var prompts = 40
    @Option(help: "Seed of the prompt draw and of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = TextToVideoPipeline.defaultGuidance
    @Option(help: "Write a sheet into this folder: per prompt the model's frames, the true render's and the true render's through the autoencoder.")
    var out: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when the model misses a bar.") var requireBars = false
    @OptionGroup var world: EvalWorldOption
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    var evaluation: BaseEvaluation {
        var evaluation = BaseEvaluation(model: model)
        (evaluation.motionAdapter, evaluation.probe, evaluation.prompts, evaluation.seed) = (motionAdapterOption.motionAdapter, probe, prompts, seed)
        (evaluation.steps, evaluation.guidance, evaluation.out, evaluation.core) = (steps, guidance, out, world.isCore)
        return evaluation
    }

    func validate() throws {
        try validating(evaluation.validate)
    }

    func run() throws {
        try threadOptions.apply()
        let report = try evaluation.run()
        if json {
            print(String(decoding: try report.json(), as: UTF8.self))
        } else {
            print(report.table)
        }
        if requireBars && !report.passesBars { throw ExitCode(1) }
    }
}
