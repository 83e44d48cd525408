import Diffusion
import Foundation
import Media
import Tensor
import World

/// `eval caption`: which caption words a model's U-Net reads, from its denoising loss. One-object
/// world images (and clips moving in a straight direction) are encoded and noised at fixed noise and
/// timesteps; the U-Net's training loss with the right caption is compared with its loss when one
/// word (shape, colour, size, background; the motion's direction for clips) is replaced, and with
/// the empty caption. Rendering is not needed, so it is quick.
public struct CaptionEvaluation {
    /// A diffusers text-to-video folder, and a MotionAdapter folder to join with it.
    public var model: String
    public var motionAdapter: String?
    /// One-object world images to measure on.
    public var images = 48
    /// One-object clips moving in a straight direction, for the wrong-motion rise (0: none).
    public var clips = 16
    /// Timesteps to noise to.
    public var timesteps = [200, 400, 600, 800]
    /// Seed of the image draw, the word swaps and the noise.
    public var seed: UInt64 = 11
    /// Measure on the core world's held-out compositions, swapping words within its vocabulary.
    public var core = false

    public init(model: String) {
        self.model = model
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard images >= 1 else { throw EvaluationError("--images must be at least 1, got \(images)") }
        guard clips >= 0 else { throw EvaluationError("--clips must be 0 or more, got \(clips)") }
        guard !timesteps.isEmpty else { throw EvaluationError("--timesteps names no timestep") }
        try Self.check(timesteps, trainTimesteps: Int.max)
    }

    /// `--timesteps` as written, comma-separated whole numbers (none negative).
    public static func parseTimesteps(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let values = parts.map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw EvaluationError("--timesteps must be comma-separated whole numbers, got \"\(text)\"")
        }
        let steps = values.map { $0! }
        try check(steps, trainTimesteps: Int.max)
        return steps
    }

    /// Every timestep within the scheduler's `0..<trainTimesteps`.
    static func check(_ steps: [Int], trainTimesteps: Int) throws {
        if let bad = steps.first(where: { $0 < 0 || $0 >= trainTimesteps }) {
            throw EvaluationError("--timesteps: \(bad) is outside the scheduler's 0…\(trainTimesteps - 1)")
        }
    }

    /// Measures every timestep; progress goes to standard error.
    public func run() throws -> CaptionSensitivityReport {
        try validate()
        let pipeline = try TextToVideoPipeline.load(folder: model, motionAdapter: motionAdapter)
        let scheduler = DDPMScheduler(config: pipeline.schedulerConfig)
        let steps = timesteps
        do { try Self.check(steps, trainTimesteps: scheduler.config.numTrainTimesteps) } catch let error as EvaluationError {
            throw EvaluationError("\(model): \(error.message)")
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
        return CaptionSensitivityReport(model: model, images: scenes.count, clips: clipScenes.count, seed: seed, rows: rows,
                                        seconds: Date().timeIntervalSince(start))
    }
}

/// The scenes `eval caption` measures on and its captions with one word replaced.
public enum CaptionSwaps {
    public static let right = "right"
    public static let swapped = ["shape", "colour", "size", "background"]
    public static let empty = "empty"
    public static let motion = "motion"
    /// The directions a clip's motion is swapped between.
    public static let opposites: [Motion: Motion] = [.left: .right, .right: .left, .up: .down, .down: .up,
                                              .upLeft: .downRight, .downRight: .upLeft, .upRight: .downLeft, .downLeft: .upRight]

    public struct Variant {
        public var name: String
        public var captions: [String]
    }

    /// The first `count` train-split images with exactly one plain shape (`core`: the core world's held-out images).
    public static func scenes(count: Int, seed: UInt64, core: Bool = false) -> [SceneSpec] {
        firstOneObjectScenes(count: count, seed: seed, clips: false, core: core) { _ in true }
    }

    /// The first `count` train-split clips with exactly one plain shape moving in a straight direction.
    public static func clipScenes(count: Int, seed: UInt64, core: Bool = false) -> [SceneSpec] {
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
    public static func motionVariants(_ scenes: [SceneSpec]) -> [Variant] {
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
    public static func variants(_ scenes: [SceneSpec], seed: UInt64, core: Bool = false) -> [Variant] {
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

public struct CaptionSensitivityReport: Encodable {
    public struct Row: Encodable {
        public var timestep: Int
        /// The loss with the right captions.
        public var loss: Double
        /// The clips' loss with their right captions (when clips are measured).
        public var clipLoss: Double?
        /// Per variant, the loss's rise in percent of `loss` (`clipLoss` for "motion").
        public var rise: [String: Double]

        enum CodingKeys: String, CodingKey { case timestep, loss, clipLoss = "clip_loss", rise }
    }

    public var model: String
    public var images: Int
    public var clips: Int
    public var seed: UInt64
    public var rows: [Row]
    public var seconds: Double

    /// What `eval caption` prints without --json.
    public var table: String {
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
