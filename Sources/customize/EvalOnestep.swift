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
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when HiPA misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard prompts >= 1 else { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
        guard teacherSteps >= 1 else { throw ValidationError("--teacher-steps must be at least 1, got \(teacherSteps)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
    }

    struct Row: Codable {
        var name: String
        var distance: Double
        var adherence: Double
        var highFrequencyRatio: Double
        var secondsPerImage: Double

        enum CodingKeys: String, CodingKey {
            case name, distance, adherence
            case highFrequencyRatio = "hf_ratio"
            case secondsPerImage = "seconds_per_image"
        }
    }

    struct Report: Codable {
        var prompts: Int
        var teacherSteps: Int
        var rows: [Row]
        var speedup: Double
        var passesBars: Bool

        enum CodingKeys: String, CodingKey {
            case prompts, rows, speedup
            case teacherSteps = "teacher_steps"
            case passesBars = "passes_bars"
        }
    }

    func run() throws {
        try threadOptions.apply()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let adapters = AdapterSet(model: pipeline.unet, component: "unet")
        do { try adapters.load(onestep, as: "onestep") } catch {
            throw ExitStatus.Failure(status: .failure, message: "--onestep \(onestep): \(describe(error))")
        }
        let sampler = WorldSampler(seed: seed)
        let names = ["teacher", "one step", "one step + HiPA"]
        var distance = [Double](repeating: 0, count: 3), correct = [Int](repeating: 0, count: 3)
        var energy = [Double](repeating: 0, count: 3), seconds = [Double](repeating: 0, count: 3)
        let progress = ProgressReporter("eval onestep", total: prompts, unit: "prompt")
        for index in 0..<prompts {
            let sample = sampler.image(.heldout, index: index)
            let frames = sample.spec.frames
            var generator = RandomGenerator(seed: seed &+ UInt64(index))
            let noise = generator.normal(pipeline.latentShape(frames: frames))
            var outputs: [[Tensor]] = []
            for row in 0..<3 {
                try adapters.setEnabled(row == 2, for: "onestep")
                let started = Date()
                let video = row == 0
                    ? try pipeline.generate(prompt: sample.caption, frames: frames, steps: teacherSteps, guidance: guidance,
                                            seed: seed &+ UInt64(index), initialLatents: noise)
                    : try OneStepSampler.generate(pipeline: pipeline, prompt: sample.caption, frames: frames, seed: seed &+ UInt64(index),
                                                  initialLatents: noise)
                seconds[row] += Date().timeIntervalSince(started)
                outputs.append(video.frames)
                let images = try video.frames.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
                var scores = ProbeScores()
                let readings = probes.score(try images.map { try ProbeFrame(side: $0.width, pixels: $0.pixels) }, spec: sample.spec, into: &scores)
                let adheres = zip(sample.spec.objects, readings).allSatisfy { object, reading in
                    guard reading.colour == object.colour else { return false }
                    if case let .shape(shape) = object.kind { return reading.shape == shape }
                    return true
                }
                if adheres { correct[row] += 1 }
                energy[row] += video.frames.reduce(0) { $0 + HighFrequencyLoss.highFrequencyEnergy($1) }
            }
            for row in 0..<3 {
                var sum = 0.0, count = 0
                for (frame, teacherFrame) in zip(outputs[row], outputs[0]) {
                    for (a, b) in zip(frame.values, teacherFrame.values) { sum += Double(a - b) * Double(a - b); count += 1 }
                }
                distance[row] += (sum / Double(max(count, 1))).squareRoot()
            }
            progress.update(index + 1)
        }
        let rows = (0..<3).map { row in
            Row(name: names[row], distance: distance[row] / Double(prompts), adherence: Double(correct[row]) / Double(prompts),
                highFrequencyRatio: energy[0] > 0 ? energy[row] / energy[0] : 0, secondsPerImage: seconds[row] / Double(prompts))
        }
        let speedup = rows[2].secondsPerImage > 0 ? rows[0].secondsPerImage / rows[2].secondsPerImage : 0
        let passes = rows[2].adherence >= rows[0].adherence - 0.10 && rows[2].highFrequencyRatio >= 0.8 && speedup >= 15
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(Report(prompts: prompts, teacherSteps: teacherSteps, rows: rows,
                                                              speedup: speedup, passesBars: passes)), as: UTF8.self))
        } else {
            print("held-out images: \(prompts) prompts, seed \(seed), teacher \(teacherSteps) DDIM steps at guidance \(guidance)")
            print("row               distance  adherence  hf ratio  s/image")
            for row in rows {
                print(row.name.padding(toLength: 18, withPad: " ", startingAt: 0)
                      + String(format: "%8.4f  %9.2f  %8.2f  %7.3f", row.distance, row.adherence, row.highFrequencyRatio, row.secondsPerImage))
            }
            print(String(format: "speed-up of HiPA over the teacher: %.1fx; bars ", speedup) + (passes ? "met" : "MISSED"))
        }
        if requireBars, !passes { throw ExitCode(1) }
    }
}
