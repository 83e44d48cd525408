import Adapters
import ArgumentParser
import Diffusion
import Foundation
import Media
import Methods
import Tensor
import World

/// `customize eval onestep --onestep FILE`: does HiPA's one step come close to the many-step teacher,
/// keep its detail, and save the time? (Issue 8's evaluation.)
struct EvalOnestep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "onestep",
        abstract: "Compare the teacher (many DDIM steps), one step without adaptors and one step with HiPA.",
        discussion: """
        Renders --prompts held-out world images (prompt i from seed --seed + i, the same noise for every \
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
    @Option(help: "The teacher's guidance scale.") var guidance: Float = 9
    @Option(help: "Where the sheet (eval-onestep.png) and report.json go.") var out = "onestep-eval"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when HiPA misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard prompts >= 1 else { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
        guard teacherSteps >= 1 else { throw ValidationError("--teacher-steps must be at least 1, got \(teacherSteps)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
    }

    func run() throws {
        try threadOptions.apply()
        let start = Date()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let adapters = AdapterSet(model: pipeline.unet, component: "unet")
        do { try adapters.load(onestep, as: "onestep") } catch {
            throw ExitStatus.Failure(status: .failure, message: "--onestep \(onestep): \(describe(error))")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let sampler = WorldSampler(seed: seed)
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
        try report.publish(to: out, sheetName: "eval-onestep.png", sheetRows: try sheetImages.map { try RGBImage.contactSheet($0, spacing: 2) },
                           captions: rows.map(\.label), json: json, requireBars: requireBars)
    }

    /// Root mean square of the frames' difference to the teacher's (0 for the teacher itself).
    static func rmsDistance(_ frames: [Tensor], _ teacher: [Tensor]) -> Double {
        var sum = 0.0, count = 0
        for (frame, teacherFrame) in zip(frames, teacher) {
            for (a, b) in zip(frame.values, teacherFrame.values) { sum += Double(a - b) * Double(a - b); count += 1 }
        }
        return (sum / Double(max(count, 1))).squareRoot()
    }
}

/// What `eval onestep` measured, per row and per prompt, with the bars.
struct OnestepEvalReport: EvalReport {
    static let rowNames: [(name: String, label: String)] = [
        ("teacher", "teacher"), ("one_step", "one step"), ("one_step_hipa", "one step + HiPA"),
    ]

    struct Outcome: Encodable {
        /// RMS of the decoded pixels' difference to the teacher's (pixels in [-1, 1]).
        var distance: Double
        /// Every object has the prompt's colour and shape by the probes.
        var adherent: Bool
        var seconds: Double
    }

    struct Row: Encodable {
        var name: String
        var label: String
        var distance: Double
        var adherence: Double
        var highFrequencyRatio: Double
        var secondsPerImage: Double

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

    typealias Sample = EvalSample<Outcome>

    var model: String
    var onestep: String
    var prompts: Int
    var seed: UInt64
    var teacherSteps: Int
    var guidance: Float
    var rows: [Row]
    var samples: [Sample]
    var seconds: Double
    /// The teacher's seconds per image over HiPA's (`speedup(of:)`).
    var speedup: Double

    static let adherenceDropMaximum = 0.10
    static let highFrequencyRatioMinimum = 0.8
    static let speedupMinimum = 15.0

    /// The teacher's seconds per image over HiPA's, from the rows in `rowNames`' order.
    static func speedup(of rows: [Row]) -> Double {
        rows.count == 3 && rows[2].secondsPerImage > 0 ? rows[0].secondsPerImage / rows[2].secondsPerImage : 0
    }

    var bars: [EvalBar] {
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

    var summary: String {
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
