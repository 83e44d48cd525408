import Adapters
import Diffusion
import Foundation
import Media
import Methods
import Tensor
import World

/// `eval onestep`: does HiPA's one step come close to the many-step teacher, keep its detail, and
/// save the time? Held-out world images are rendered (the same noise for every row) by the teacher
/// (many DDIM steps), by one step without adaptors and by one step with the HiPA adaptors.
public struct OnestepEvaluation {
    /// The one-step adaptors (train-onestep's file).
    public var onestep: String
    /// A diffusers text-to-video folder.
    public var model: String
    /// The shape classifier (default: `<model>/probes/shape-classifier.safetensors`).
    public var probe: String?
    /// Prompts to render (each three ways).
    public var prompts = 12
    /// Seed of the first prompt's noise (prompt i uses seed + i).
    public var seed: UInt64 = 0
    /// The teacher's DDIM steps and guidance scale.
    public var teacherSteps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// Held-out prompts of the core world (the shipped base's), the default; false: the full world's.
    public var core = true
    /// Where the sheet (eval-onestep.png) and report.json go.
    public var out: String

    public init(onestep: String, model: String, out: String) {
        self.onestep = onestep
        self.model = model
        self.out = out
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard prompts >= 1 else { throw EvaluationError("--prompts must be at least 1, got \(prompts)") }
        guard teacherSteps >= 1 else { throw EvaluationError("--teacher-steps must be at least 1, got \(teacherSteps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
    }

    /// Renders every prompt three ways and scores them; writes `report.json` and `eval-onestep.png`
    /// into `out`. Progress goes to standard error.
    public func run() throws -> EvaluationResult<OnestepEvalReport> {
        try validate()
        let start = Date()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let adapters = AdapterSet(model: pipeline.unet, component: "unet")
        do { try adapters.load(onestep, as: "onestep") } catch {
            throw EvaluationError("--onestep \(onestep): \(describe(error))")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let sampler = WorldSampler(seed: seed, distribution: core ? .core : .full)
        let rows = OnestepEvalReport.rowNames
        var outcomes = [[OnestepEvalReport.Outcome]](repeating: [], count: rows.count)
        var energy = [Double](repeating: 0, count: rows.count)
        var sheetImages = [[RGBImage]](repeating: [], count: rows.count)
        var samples: [OnestepEvalReport.Sample] = []
        let progress = ProgressReporter("eval onestep", total: prompts, unit: "prompt")
        for index in 0..<prompts {
            let sample = sampler.image(.heldout, index: index)
            let frames = sample.spec.frames
            let promptSeed = seed &+ UInt64(index)
            var generator = RandomGenerator(seed: promptSeed)
            let noise = generator.normal(pipeline.latentShape(frames: frames))
            var outputs: [[Tensor]] = [], promptOutcomes: [OnestepEvalReport.Outcome] = []
            for row in rows.indices {
                try adapters.setEnabled(row == 2, for: "onestep")
                let started = Date()
                let video = row == 0
                    ? try pipeline.generate(prompt: sample.caption, frames: frames, steps: teacherSteps, guidance: guidance,
                                            seed: promptSeed, initialLatents: noise)
                    : try OneStepSampler.generate(pipeline: pipeline, prompt: sample.caption, frames: frames, seed: promptSeed,
                                                  initialLatents: noise)
                let seconds = Date().timeIntervalSince(started)
                outputs.append(video.frames)
                let images = try video.frames.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
                var scores = ProbeScores()
                let readings = probes.score(try images.map { try ProbeFrame(side: $0.width, pixels: $0.pixels) }, spec: sample.spec, into: &scores)
                let adheres = zip(sample.spec.objects, readings).allSatisfy { object, reading in
                    guard reading.colour == object.colour else { return false }
                    if case let .shape(shape) = object.kind { return reading.shape == shape }
                    return true
                }
                energy[row] += video.frames.reduce(0) { $0 + HighFrequencyLoss.highFrequencyEnergy($1) }
                promptOutcomes.append(OnestepEvalReport.Outcome(distance: Self.rmsDistance(video.frames, outputs[0]),
                                                                adherent: adheres, seconds: seconds))
                sheetImages[row].append(images[0])
            }
            for row in rows.indices { outcomes[row].append(promptOutcomes[row]) }
            samples.append(OnestepEvalReport.Sample(prompt: sample.caption, seed: promptSeed,
                                                    outcomes: Dictionary(uniqueKeysWithValues: zip(rows.map(\.name), promptOutcomes))))
            progress.update(index + 1)
        }
        let reportRows = rows.indices.map { row in
            OnestepEvalReport.Row(name: rows[row].name, label: rows[row].label, outcomes: outcomes[row],
                                  highFrequencyRatio: energy[0] > 0 ? energy[row] / energy[0] : 0)
        }
        let report = OnestepEvalReport(model: model, onestep: onestep, prompts: prompts, seed: seed, teacherSteps: teacherSteps,
                                       guidance: guidance, rows: reportRows, samples: samples,
                                       seconds: Date().timeIntervalSince(start), speedup: OnestepEvalReport.speedup(of: reportRows))
        return try report.write(to: out, sheetName: "eval-onestep.png", sheetRows: try sheetImages.map { try RGBImage.contactSheet($0, spacing: 2) },
                                captions: rows.map(\.label))
    }

    /// Root mean square of the frames' difference to the teacher's (0 for the teacher itself).
    public static func rmsDistance(_ frames: [Tensor], _ teacher: [Tensor]) -> Double {
        var sum = 0.0, count = 0
        for (frame, teacherFrame) in zip(frames, teacher) {
            for (a, b) in zip(frame.values, teacherFrame.values) { sum += Double(a - b) * Double(a - b); count += 1 }
        }
        return (sum / Double(max(count, 1))).squareRoot()
    }
}

/// What `eval onestep` measured, per row and per prompt, with the bars.
public struct OnestepEvalReport: EvalReport {
    public static let rowNames: [(name: String, label: String)] = [
        ("teacher", "teacher"), ("one_step", "one step"), ("one_step_hipa", "one step + HiPA"),
    ]

    public struct Outcome: Encodable {
        /// RMS of the decoded pixels' difference to the teacher's (pixels in [-1, 1]).
        public var distance: Double
        /// Every object has the prompt's colour and shape by the probes.
        public var adherent: Bool
        public var seconds: Double
    }

    public struct Row: Encodable {
        public var name: String
        public var label: String
        public var distance: Double
        public var adherence: Double
        public var highFrequencyRatio: Double
        public var secondsPerImage: Double

        enum CodingKeys: String, CodingKey {
            case name, label, distance, adherence
            case highFrequencyRatio = "hf_ratio"
            case secondsPerImage = "seconds_per_image"
        }

        init(name: String, label: String, outcomes: [Outcome], highFrequencyRatio: Double) {
            self.name = name
            self.label = label
            distance = outcomes.mean(\.distance)
            adherence = outcomes.share(where: \.adherent)
            self.highFrequencyRatio = highFrequencyRatio
            secondsPerImage = outcomes.mean(\.seconds)
        }
    }

    public typealias Sample = EvalSample<Outcome>

    public var model: String
    public var onestep: String
    public var prompts: Int
    public var seed: UInt64
    public var teacherSteps: Int
    public var guidance: Float
    public var rows: [Row]
    public var samples: [Sample]
    public var seconds: Double
    /// The teacher's seconds per image over HiPA's (`speedup(of:)`).
    public var speedup: Double

    public static let adherenceDropMaximum = 0.10
    public static let highFrequencyRatioMinimum = 0.8
    public static let speedupMinimum = 15.0

    /// The teacher's seconds per image over HiPA's, from the rows in `rowNames`' order.
    public static func speedup(of rows: [Row]) -> Double {
        rows.count == 3 && rows[2].secondsPerImage > 0 ? rows[0].secondsPerImage / rows[2].secondsPerImage : 0
    }

    public var bars: [EvalBar] {
        guard rows.count == 3 else { return [] }
        let teacher = rows[0], hipa = rows[2]
        let drop = teacher.adherence - hipa.adherence
        return [
            EvalBar(name: "adherence_kept", requirement: "teacher adherence − HiPA's ≤ \(Self.adherenceDropMaximum)",
                    value: drop, met: drop <= Self.adherenceDropMaximum + 1e-9),
            EvalBar(name: "detail_kept", requirement: "HiPA hf ratio ≥ \(Self.highFrequencyRatioMinimum)",
                    value: hipa.highFrequencyRatio, met: hipa.highFrequencyRatio >= Self.highFrequencyRatioMinimum),
            EvalBar(name: "speedup", requirement: "teacher s/image ÷ HiPA's ≥ \(Self.speedupMinimum)",
                    value: speedup, met: speedup >= Self.speedupMinimum),
        ]
    }

    enum CodingKeys: String, CodingKey {
        case model, onestep, prompts, seed, guidance, rows, samples, seconds, speedup
        case teacherSteps = "teacher_steps"
    }

    public var summary: String {
        let cells = rows.map { row in
            [row.label, String(format: "%.4f", row.distance), String(format: "%.2f", row.adherence),
             String(format: "%.2f", row.highFrequencyRatio), String(format: "%.3f", row.secondsPerImage)]
        }
        return ["held-out images: \(prompts) prompts, seed \(seed), teacher \(teacherSteps) DDIM steps at guidance \(guidance), "
                + "\(String(format: "%.0f", seconds)) s",
                TextTable(header: ["row", "distance", "adherence", "hf ratio", "s/image"], rows: cells).text,
                String(format: "speed-up of HiPA over the teacher: %.1fx", speedup)].joined(separator: "\n")
    }
}
