import Diffusion
import Foundation
import Media
import Tensor
import World

/// `eval base`: how well a base model composes held-out attribute combinations. Prompts come from
/// the world's held-out split, alternating images and 8-frame clips; each is rendered by the model
/// and drawn by the world's renderer (also passed through the model's autoencoder), and the probes
/// read all three.
public struct BaseEvaluation {
    /// A diffusers text-to-video folder, and a MotionAdapter folder to join with it.
    public var model: String
    public var motionAdapter: String?
    /// The shape classifier (default: `<model>/probes/shape-classifier.safetensors`).
    public var probe: String?
    /// Prompts to render (half images, half clips).
    public var prompts = 40
    /// Seed of the prompt draw and of the first prompt's noise (prompt i uses seed + i).
    public var seed: UInt64 = 0
    public var steps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// A folder for the sheet `eval-base.png` (none: no sheet).
    public var out: String?
    /// Prompts of the core world's held-out compositions instead of the full world's.
    public var core = false

    public init(model: String) {
        self.model = model
    }

    /// The bars of the shipped model, on the model's accuracy per attribute.
    public static let bars: [(key: KeyPath<ProbeScores, ProbeScore>, name: String, minimum: Double)] = [
        (\.colour, "colour", 0.9), (\.shape, "shape", 0.8), (\.motionDirection, "motion_direction", 0.8),
    ]

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard prompts >= 1 else { throw EvaluationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
    }

    /// Renders and reads every prompt; progress goes to standard error.
    public func run() throws -> EvalBaseReport {
        try validate()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        if let out { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
        let pipeline = try TextToVideoPipeline.load(folder: model, motionAdapter: motionAdapter)
        let sampler = WorldSampler(seed: seed, distribution: core ? .core : .full)
        let renderer = Renderer()
        var generated = ProbeScores(), truth = ProbeScores(), autoencoded = ProbeScores()
        var rows: [RGBImage] = [], captions: [String] = [], samples: [EvalBaseReport.Sample] = []
        let progress = ProgressReporter("eval base", total: prompts, unit: "prompt")
        let start = Date()
        for index in 0..<prompts {
            let sample = index % 2 == 0 ? sampler.image(.heldout, index: index / 2) : sampler.clip(.heldout, index: index / 2)
            captions.append(sample.caption)
            let video = try pipeline.generate(prompt: sample.caption, frames: sample.spec.frames, steps: steps, guidance: guidance,
                                              seed: seed &+ UInt64(index))
            let images = try video.frames.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
            let rendered = try images.map { image -> ProbeFrame in
                guard image.width == image.height else {
                    throw EvaluationError("\(model) renders \(image.width)x\(image.height) frames; the probes read square frames")
                }
                return try ProbeFrame(side: image.width, pixels: image.pixels)
            }
            let generatedReadings = probes.score(rendered, spec: sample.spec, into: &generated)
            let trueFrames = renderer.render(sample.spec)
            let trueReadings = probes.score(try trueFrames.map { try ProbeFrame(side: renderer.side, pixels: $0) }, spec: sample.spec, into: &truth)
            let trueImages = try trueFrames.map { try RGBImage(width: renderer.side, height: renderer.side, pixels: $0) }
            let roundTrip = try Self.autoencode(trueImages, pipeline: pipeline)
            let roundTripReadings = probes.score(try roundTrip.map { try ProbeFrame(side: $0.width, pixels: $0.pixels) }, spec: sample.spec,
                                                 into: &autoencoded)
            samples.append(EvalBaseReport.Sample(prompt: sample.caption, seed: seed &+ UInt64(index),
                                                 outcomes: ["generated": generatedReadings, "true_render": trueReadings,
                                                            "autoencoded_true_render": roundTripReadings]))
            if out != nil {
                let side = renderer.side
                rows.append(try RGBImage.contactSheet(images.map { try $0.resized(width: side, height: side) } + trueImages
                                                      + roundTrip.map { try $0.resized(width: side, height: side) }, spacing: 2))
            }
            progress.update(index + 1)
        }
        let seconds = Date().timeIntervalSince(start)
        if let out {
            try EvalSheet.write(rows, captions: captions, to: (out as NSString).appendingPathComponent("eval-base.png"))
        }
        return EvalBaseReport(model: model, prompts: prompts, seed: seed, steps: steps, guidance: guidance,
                              generated: generated, trueRenders: truth, autoencodedTrueRenders: autoencoded, samples: samples,
                              seconds: seconds)
    }

    /// `images` through the pipeline's autoencoder: encoded to the posterior mean, decoded, at the
    /// pipeline's picture size (the probes' frames must be square, as the true renders are).
    public static func autoencode(_ images: [RGBImage], pipeline: TextToVideoPipeline) throws -> [RGBImage] {
        let size = pipeline.pixelSize
        let frames = try images.map { image -> Tensor in
            let sized = image.width == size.width && image.height == size.height ? image : try image.resized(width: size.width, height: size.height)
            return try Tensor(shape: [1, 3, size.height, size.width], values: sized.toCHWFloats())
        }
        let decoded = try pipeline.decode(pipeline.encodeFrames(Tensor.concat(frames, axis: 0)))
        return try decoded.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
    }
}

/// What `eval base` measured: the probes' scores of the model's renders, of the true renders and of
/// the true renders through the autoencoder, with every prompt's readings and the bars.
public struct EvalBaseReport: EvalReport {
    public var model: String
    public var prompts: Int
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    public var generated: ProbeScores
    public var trueRenders: ProbeScores
    /// The true renders through the model's autoencoder: the U-Net's ceiling.
    public var autoencodedTrueRenders: ProbeScores
    /// What the probes read of each object, per prompt, from the model's render, the true render
    /// and the autoencoded true render.
    public var samples: [Sample]
    public var seconds: Double

    public typealias Sample = EvalSample<[WorldProbes.ObjectReading]>

    /// An attribute no drawn prompt measured counts as missed.
    public var bars: [EvalBar] {
        BaseEvaluation.bars.map { bar in
            let value = generated[keyPath: bar.key].accuracy
            return EvalBar(name: bar.name, requirement: "\(bar.name.replacingOccurrences(of: "_", with: " ")) accuracy ≥ \(bar.minimum)",
                           value: value, met: (value ?? 0) >= bar.minimum)
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, prompts, seed, steps, guidance, generated, samples, seconds
        case trueRenders = "true_renders", autoencodedTrueRenders = "autoencoded_true_renders"
    }

    public var summary: String {
        let cells = zip(generated.rows, zip(trueRenders.rows, autoencodedTrueRenders.rows)).map { row, truths in
            [row.0, Self.cell(row.1), Self.cell(truths.0.1), Self.cell(truths.1.1)]
        }
        return ["held-out compositions: \(prompts) prompts (\((prompts + 1) / 2) images, \(prompts / 2) clips), seed \(seed), "
                + "\(steps) steps, guidance \(guidance), \(String(format: "%.0f", seconds)) s",
                TextTable(header: ["attribute", "model", "probes on true renders", "true renders autoencoded"], rows: cells).text]
            .joined(separator: "\n")
    }

    static func cell(_ score: ProbeScore) -> String {
        guard let accuracy = score.accuracy else { return "-" }
        return String(format: "%.3f (%d/%d)", accuracy, score.correct, score.total)
    }
}
