import ArgumentParser
import Diffusion
import Foundation
import Media
import Tensor
import World

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
    @Flag(help: "Measure on the core world's held-out compositions, swapping words within its vocabulary (the base's pretraining distribution).")
    var core = false
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        guard images >= 1 else { throw ValidationError("--images must be at least 1, got \(images)") }
        guard clips >= 0 else { throw ValidationError("--clips must be 0 or more, got \(clips)") }
        _ = try parsedTimesteps(trainTimesteps: Int.max)
    }

    func parsedTimesteps(trainTimesteps: Int) throws -> [Int] {
        let parts = timesteps.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ValidationError("--timesteps must be comma-separated whole numbers, got \"\(timesteps)\"")
        }
        let steps = values.map { $0! }
        if let bad = steps.first(where: { $0 < 0 || $0 >= trainTimesteps }) {
            throw ValidationError("--timesteps: \(bad) is outside the scheduler's 0…\(trainTimesteps - 1)")
        }
        return steps
    }

    func run() throws {
        try threadOptions.apply()
        let pipeline = try motionAdapterOption.load(model)
        let scheduler = DDPMScheduler(config: pipeline.schedulerConfig)
        let steps: [Int]
        do { steps = try parsedTimesteps(trainTimesteps: scheduler.config.numTrainTimesteps) } catch let error as ValidationError {
            throw ExitStatus.Failure(status: .failure, message: "\(model): \(error.message)")
        }
        let scenes = CaptionSwaps.scenes(count: images, seed: seed, core: core)
        let clipScenes = CaptionSwaps.clipScenes(count: clips, seed: seed, core: core)
        let sets = [(scenes, CaptionSwaps.variants(scenes, seed: seed, core: core)),
                    (clipScenes, CaptionSwaps.motionVariants(clipScenes))].filter { !$0.0.isEmpty }
        let renderer = Renderer()
        let size = pipeline.pixelSize
        let start = Date()
        func frames(_ spec: SceneSpec) throws -> Tensor {
            try Tensor.concat(renderer.render(spec).map { pixels -> Tensor in
                var image = try RGBImage(width: renderer.side, height: renderer.side, pixels: pixels)
                if image.width != size.width || image.height != size.height { image = try image.resized(width: size.width, height: size.height) }
                return try Tensor(shape: [1, 3, size.height, size.width], values: image.toCHWFloats())
            }, axis: 0)
        }
        // Per set: latents [N, C, F, h, w] and the text states of each variant.
        let measured = try sets.map { scenes, variants -> (clips: Bool, latents: Tensor, states: [Tensor], variants: [CaptionSwaps.Variant]) in
            let clips = scenes[0].frames > 1
            let latents: Tensor
            if !clips {
                // The images as one clip's frames [1, C, N, h, w], then N one-frame samples [N, C, 1, h, w].
                latents = try pipeline.encodeFrames(Tensor.concat(scenes.map(frames), axis: 0)).permuted([2, 1, 0, 3, 4])
            } else {
                latents = try Tensor.concat(scenes.map { try pipeline.encodeFrames(frames($0)) }, axis: 0)
            }
            let states = try variants.map { variant in
                try Tensor.withoutGrad { try pipeline.textEncoder(variant.captions.map { pipeline.tokenizer($0).ids }) }
            }
            return (clips, latents, states, variants)
        }
        var rows: [CaptionSensitivityReport.Row] = []
        let passes = measured.map(\.variants.count).reduce(0, +)
        let progress = ProgressReporter("eval caption", total: steps.count * passes, unit: "pass")
        var done = 0
        for t in steps {
            var row = CaptionSensitivityReport.Row(timestep: t, loss: 0, rise: [:])
            for set in measured {
                // The images keep the noise they had before clips were measured (comparable figures).
                let timestepRandom = RandomGenerator(seed: seed).derived(UInt64(t) &+ 1)
                var random = set.clips ? timestepRandom.derived(1) : timestepRandom
                let latents = set.latents
                let noise = random.normal(latents.shape)
                let timesteps = Array(repeating: t, count: latents.shape[0])
                let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: timesteps)
                let target: Tensor
                switch scheduler.config.predictionType {
                case .epsilon: target = noise
                case .vPrediction: target = try scheduler.velocity(sample: latents, noise: noise, timesteps: timesteps)
                case .sample: target = latents
                }
                // One loss per variant, in the variants' order (the right captions first).
                let losses = try set.states.map { states -> Double in
                    let prediction = try Tensor.withoutGrad {
                        try pipeline.unet(sample: noisy, timesteps: timesteps.map(Float.init), encoderHiddenStates: states)
                    }
                    done += 1
                    progress.update(done)
                    return Double(try Tensor.mseLoss(prediction, target).values[0])
                }
                let right = losses[0]
                if set.clips { row.clipLoss = right } else { row.loss = right }
                for (variant, loss) in zip(set.variants, losses).dropFirst() { row.rise[variant.name] = (loss / right - 1) * 100 }
            }
            rows.append(row)
        }
        let report = CaptionSensitivityReport(model: model, images: scenes.count, clips: clipScenes.count, seed: seed, rows: rows,
                                              seconds: Date().timeIntervalSince(start))
        if json {
            print(String(decoding: try report.evalJSON(), as: UTF8.self))
        } else {
            print(report.table)
        }
    }
}

/// The scenes `eval caption` measures on and its captions with one word replaced.
enum CaptionSwaps {
    static let right = "right"
    static let swapped = ["shape", "colour", "size", "background"]
    static let empty = "empty"
    static let motion = "motion"
    /// The directions a clip's motion is swapped between.
    static let opposites: [Motion: Motion] = [.left: .right, .right: .left, .up: .down, .down: .up,
                                              .upLeft: .downRight, .downRight: .upLeft, .upRight: .downLeft, .downLeft: .upRight]

    struct Variant {
        var name: String
        var captions: [String]
    }

    /// The first `count` train-split images with exactly one plain shape (`core`: the core world's held-out images).
    static func scenes(count: Int, seed: UInt64, core: Bool = false) -> [SceneSpec] {
        firstOneObjectScenes(count: count, seed: seed, clips: false, core: core) { _ in true }
    }

    /// The first `count` train-split clips with exactly one plain shape moving in a straight direction.
    static func clipScenes(count: Int, seed: UInt64, core: Bool = false) -> [SceneSpec] {
        firstOneObjectScenes(count: count, seed: seed, clips: true, core: core) { opposites[$0.motion] != nil }
    }

    /// The first `count` train-split images or clips of one plain, unstyled shape that `accept`s.
    private static func firstOneObjectScenes(count: Int, seed: UInt64, clips: Bool, core: Bool,
                                             accept: (SceneObject) -> Bool) -> [SceneSpec] {
        let sampler = WorldSampler(seed: seed, distribution: core ? .core : .full)
        let split: Split = core ? .heldout : .train
        var scenes: [SceneSpec] = []
        var index = 0
        while scenes.count < count {
            let spec = (clips ? sampler.clip(split, index: index) : sampler.image(split, index: index)).spec
            index += 1
            if spec.objects.count == 1, case .shape = spec.objects[0].kind, spec.style == nil, accept(spec.objects[0]) {
                scenes.append(spec)
            }
        }
        return scenes
    }

    /// The clips' right captions, then the captions with the opposite direction.
    static func motionVariants(_ scenes: [SceneSpec]) -> [Variant] {
        [Variant(name: right, captions: scenes.map(Captions.caption)),
         Variant(name: motion, captions: scenes.map { spec in
             var changed = spec
             changed.objects[0].motion = opposites[spec.objects[0].motion]!
             return Captions.caption(changed)
         })]
    }

    /// The right captions, then one variant per word in `swapped` (the word replaced by another
    /// value drawn from `seed`), then the empty caption.
    /// `core`: replacement words come from the core world's shapes, colours, sizes and background colours.
    static func variants(_ scenes: [SceneSpec], seed: UInt64, core: Bool = false) -> [Variant] {
        let shapes = core ? CoreWorld.shapes : ObjectShape.allCases, colours = core ? CoreWorld.colours : NamedColour.allCases
        let sizes = core ? CoreWorld.sizes : ObjectSize.allCases, backgrounds = core ? CoreWorld.backgroundColours : NamedColour.allCases
        var random = RandomGenerator(seed: seed).derived(7)
        func other<T: Equatable>(_ value: T, in values: [T]) -> T {
            let others = values.filter { $0 != value }
            return others[(try? random.integer(below: others.count)) ?? 0]
        }
        var result = [Variant(name: right, captions: scenes.map(Captions.caption))]
        for word in swapped {
            result.append(Variant(name: word, captions: scenes.map { spec in
                var changed = spec
                switch word {
                case "shape":
                    if case .shape(let shape) = spec.objects[0].kind {
                        changed.objects[0].kind = .shape(other(shape, in: shapes))
                    }
                case "colour": changed.objects[0].colour = other(spec.objects[0].colour, in: colours)
                case "size": changed.objects[0].size = other(spec.objects[0].size, in: sizes)
                default: changed.background.colour = other(spec.background.colour, in: backgrounds)
                }
                return Captions.caption(changed)
            }))
        }
        result.append(Variant(name: empty, captions: scenes.map { _ in "" }))
        return result
    }
}

struct CaptionSensitivityReport: Encodable {
    struct Row: Encodable {
        var timestep: Int
        /// The loss with the right captions.
        var loss: Double
        /// The clips' loss with their right captions (when clips are measured).
        var clipLoss: Double?
        /// Per variant, the loss's rise in percent of `loss` (`clipLoss` for "motion").
        var rise: [String: Double]

        enum CodingKeys: String, CodingKey { case timestep, loss, clipLoss = "clip_loss", rise }
    }

    var model: String
    var images: Int
    var clips: Int
    var seed: UInt64
    var rows: [Row]
    var seconds: Double

    var table: String {
        var names = CaptionSwaps.swapped + [CaptionSwaps.empty]
        if clips > 0 { names.append(CaptionSwaps.motion) }
        let header = ["timestep", "loss"] + names.map {
            $0 == CaptionSwaps.empty ? "empty caption" : $0 == CaptionSwaps.motion ? "opposite motion (clips)" : "wrong \($0)"
        }
        let cells = rows.map { row in
            ["t = \(row.timestep)", String(format: "%.4f", row.loss)] + names.map { String(format: "%+.1f%%", row.rise[$0] ?? .nan) }
        }
        let clipsNote = clips > 0 ? " and \(clips) one-object clips moving in a straight direction" : ""
        return ["caption sensitivity of \(model): \(images) one-object images\(clipsNote), seed \(seed), \(String(format: "%.0f", seconds)) s",
                "loss rise with one caption word replaced (or the caption empty):",
                TextTable(header: header, rows: cells).text].joined(separator: "\n")
    }
}
