import ArgumentParser
import Evaluation

/// `customize eval caption`: which caption words a model's U-Net reads, from its denoising loss.
struct EvalCaption: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "caption",
        abstract: "Measure which caption words the U-Net reads: its loss with one word wrong.",
        discussion: """
        Draws one-object train-split world images, encodes them (posterior mean) and noises them at \
        fixed noise and fixed timesteps; then computes the U-Net's training loss (to the noise or \
        the velocity, as its scheduler predicts) with the right caption, and with the same caption \
        with the object's shape, colour or size word, or the background's colour, replaced by \
        another (the caption rebuilt from the changed scene), and with the empty caption. A model \
        that draws a word's meaning loses more when that word is wrong: each rise is printed in \
        percent of the right caption's loss. With --clips, one-object train clips moving in a \
        straight direction are measured the same way with the opposite direction in their caption \
        ("moving left" for "moving right"): the rise says whether the U-Net reads the motion words. \
        Rendering is not needed, so it is quick (48 images at 4 timesteps: 6 U-Net passes of 48 \
        images each per timestep; 16 clips add 2 passes of 16 eight-frame clips).

        Examples:
          customize eval caption
          customize eval caption --model runs/base/model --images 96 --timesteps 400,600 --json
        """)

    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "One-object world images to measure on.") var images = 48
    @Option(help: "One-object clips moving in a straight direction, for the wrong-motion rise (0: none).") var clips = 16
    @Option(help: "Timesteps to noise to, comma-separated.") var timesteps = "200,400,600,800"
    @Option(help: "Seed of the image draw, the word swaps and the noise.") var seed: UInt64 = 11
    @OptionGroup var world: EvalWorldOption
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    /// The evaluation these options ask for; `timesteps` nil keeps the library's default.
    func evaluation(timesteps parsed: [Int]? = nil) -> CaptionEvaluation {
        var evaluation = CaptionEvaluation(model: model)
        (evaluation.motionAdapter, evaluation.images, evaluation.clips, evaluation.seed, evaluation.core)
            = (motionAdapterOption.motionAdapter, images, clips, seed, world.isCore)
        if let parsed { evaluation.timesteps = parsed }
        return evaluation
    }

    func validate() throws {
        try validating {
            try evaluation().validate()
            _ = try CaptionEvaluation.parseTimesteps(timesteps)
        }
    }

    func run() throws {
        try threadOptions.apply()
        let report = try evaluation(timesteps: try CaptionEvaluation.parseTimesteps(timesteps)).run()
        if json {
            print(String(decoding: try report.evalJSON(), as: UTF8.self))
        } else {
            print(report.table)
        }
    }
}
