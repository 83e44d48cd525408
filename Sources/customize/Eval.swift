import ArgumentParser
import Checkpoints
import Diffusion
import Foundation
import Media
import Tensor
import World

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

/// The learned probes a model folder keeps in `probes/`: the shape classifier (eval base, motion,
/// onestep), the concept classifier (eval compose) and the style classifier (eval b4m, decor).
enum ProbeKind: String, CaseIterable, ExpressibleByArgument {
    case shape, concept, style

    var title: String { "\(rawValue) classifier" }

    func defaultPath(model: String) -> String {
        (model as NSString).appendingPathComponent("probes/\(rawValue)-classifier.safetensors")
    }
}

/// Reads and writes the probes' classifier files, naming the file and key on bad input.
enum ProbeFile {
    static func weights(_ kind: ProbeKind, _ path: String) throws -> [String: Tensor] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ExitStatus.Failure(status: .failure, message: "no \(kind.title) at \(path); train one with `customize eval train-probe --kind \(kind.rawValue) --out \(path)`")
        }
        let file = try SafeTensorsFile(path: path)
        var weights: [String: Tensor] = [:]
        for key in MLPClassifier.keys {
            guard let entry = file.entries[key] else {
                throw ExitStatus.Failure(status: .failure, message: "\(path): tensor \"\(key)\" is missing (expected the keys \(MLPClassifier.keys.joined(separator: ", ")))")
            }
            weights[key] = try Tensor(shape: entry.shape, values: try file.floats(key))
        }
        return weights
    }

    /// Builds the probe from the file's weights, prefixing construction errors with the path.
    static func load<Probe>(_ kind: ProbeKind, _ path: String, _ make: ([String: Tensor]) throws -> Probe) throws -> Probe {
        let weights = try weights(kind, path)
        do {
            return try make(weights)
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "\(path): \(describe(error))")
        }
    }

    static func shape(_ path: String) throws -> ShapeClassifier { try load(.shape, path, ShapeClassifier.init(weights:)) }
    static func concept(_ path: String) throws -> ConceptProbe { try load(.concept, path, ConceptProbe.init(weights:)) }
    static func style(_ path: String) throws -> StyleProbe { try load(.style, path, StyleProbe.init(weights:)) }

    /// The shape probes for a command's `--probe` option (default: the model's own).
    static func worldProbes(probe: String?, model: String) throws -> WorldProbes {
        WorldProbes(classifier: try shape(probe ?? ProbeKind.shape.defaultPath(model: model)))
    }

    static func save(_ network: MLPClassifier, metadata: [String: String], to path: String) throws {
        let tensors = try network.weights.sorted { $0.key < $1.key }.map { name, tensor in
            SafeTensors.TensorToWrite(name: name, shape: tensor.shape, values: tensor.values)
        }
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }
}

/// A report an evaluation prints with --json and writes to report.json: its own fields, then its
/// bars (derived from its figures, never stored) and whether all were met.
protocol EvalReport: Encodable {
    var bars: [EvalBar] { get }
    /// The figures as text, without the bars (`table` adds them).
    var summary: String { get }
}

extension EvalReport {
    var passesBars: Bool { !bars.isEmpty && bars.allSatisfy(\.met) }

    /// What an evaluation prints without --json: the summary, then one line per bar.
    var table: String { ([summary] + bars.map(\.line)).joined(separator: "\n") }

    /// The end every evaluation with an output folder shares: `report.json` and the sheet
    /// `sheetName` into `folder`, then the JSON or the table and both paths; with `requireBars`,
    /// exit status 1 when a bar is missed.
    func publish(to folder: String, sheetName: String, sheetRows: [RGBImage], captions: [String], json: Bool,
                 requireBars: Bool) throws {
        let data = try self.json()
        let reportPath = (folder as NSString).appendingPathComponent("report.json")
        let sheetPath = (folder as NSString).appendingPathComponent(sheetName)
        try data.write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        try EvalSheet.write(sheetRows, captions: captions, to: sheetPath)
        if json {
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(table)
            print("wrote \(reportPath) and \(sheetPath)")
        }
        if requireBars && !passesBars { throw ExitCode(1) }
    }

    func json() throws -> Data { try EvalReportWithBars(report: self).evalJSON() }
}

extension Encodable {
    /// Pretty, key-sorted JSON, as every `eval` command prints it; a non-finite figure becomes a
    /// string rather than an error.
    func evalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }
}

/// The report's synthesised fields and, in the same JSON object, `bars` and `passes_bars`.
private struct EvalReportWithBars<Report: EvalReport>: Encodable {
    let report: Report

    enum CodingKeys: String, CodingKey {
        case bars
        case passesBars = "passes_bars"
    }

    func encode(to encoder: Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(report.bars, forKey: .bars)
        try container.encode(report.passesBars, forKey: .passesBars)
    }
}

extension Collection {
    /// The share of elements for which `test` holds (0 for none).
    func share(where test: (Element) -> Bool) -> Double {
        Double(filter(test).count) / Double(Swift.max(count, 1))
    }

    /// The mean of `value` over the elements (0 for none).
    func mean(_ value: (Element) -> Double) -> Double {
        reduce(0) { $0 + value($1) } / Double(Swift.max(count, 1))
    }
}

/// One prompt of an evaluation with what each row made of it, keyed by row name.
struct EvalSample<Outcome: Encodable>: Encodable {
    var prompt: String
    var seed: UInt64
    var outcomes: [String: Outcome]
}

/// One bar of an evaluation: what is required, the measured value and whether it is met.
struct EvalBar: Encodable {
    var name: String
    var requirement: String
    /// Absent when nothing measured it (then the bar counts as missed).
    var value: Double?
    var met: Bool

    /// The bar as a line of a report's table.
    var line: String {
        "bar \(met ? "met   " : "missed") \(requirement): \(value.map { String(format: "%.2f", $0) } ?? "not measured")"
    }
}

/// Rows of cells as aligned text: the first column left-aligned, the others right-aligned.
struct TextTable {
    var header: [String]
    var rows: [[String]]

    var text: String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { cells in
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: max(widths[column] - cell.count, 0))
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// A confusion matrix as an aligned text table.
struct ConfusionTable {
    var labels: [String]
    var counts: [[Int]]

    var text: String {
        TextTable(header: ["true \\ read"] + labels, rows: zip(labels, counts).map { [$0] + $1.map(String.init) }).text
    }
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

    func validate() throws {
        if let images { guard images >= 100 else { throw ValidationError("--images must be at least 100, got \(images)") } }
        if let steps { guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") } }
    }

    func run() throws {
        try threadOptions.apply()
        let out = self.out ?? kind.defaultPath(model: "samples/base")
        let folder = (out as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        try RenderOutput.checkWritable(out, option: "--out")
        var reporter: ProgressReporter?
        var stage = ""
        let progress: (String, Int, Int) -> Void = { name, done, total in
            if name != stage { stage = name; reporter = ProgressReporter("train-probe \(name)", total: total, unit: name == "render" ? "image" : "step") }
            reporter?.update(done)
        }
        let start = Date()
        var training: any WorldProbeTraining = switch kind {
        case .shape: ShapeClassifierTraining()
        case .concept: ConceptProbeTraining()
        case .style: StyleProbeTraining()
        }
        training.seed = seed
        if let images { training.trainImages = images }
        if let steps { training.steps = steps }
        let report = try training.run(progress: progress)
        let seconds = Date().timeIntervalSince(start)
        let metadata = [
            "format": "customize \(kind.title)", "labels": report.network.labels.joined(separator: ","), "seed": String(seed),
            "train_images": String(training.trainImages), "steps": String(training.steps),
            "train_accuracy": String(format: "%.4f", report.trainAccuracy),
            "heldout_accuracy": String(format: "%.4f", report.validationAccuracy),
            "heldout_degraded_accuracy": String(format: "%.4f", report.degradedValidationAccuracy),
        ]
        try ProbeFile.save(report.network, metadata: metadata, to: out)
        print(String(format: "%@: %d examples, accuracy train %.4f, held-out %.4f, held-out roughened %.4f (%.0f s)",
                     kind.title, report.examples, report.trainAccuracy, report.validationAccuracy, report.degradedValidationAccuracy, seconds))
        print("held-out roughened, by true label (rows) and reading (columns):")
        print(ConfusionTable(labels: report.network.labels, counts: report.degradedConfusion).text)
        print("wrote \(out)")
    }
}

/// `customize eval base`: how well a base model composes held-out attribute combinations.
struct EvalBase: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base",
        abstract: "Render held-out-composition prompts and score them with the probes.",
        discussion: """
        Prompts come from the world's held-out split (colour–shape pairs never seen in \
        pretraining), alternating images and 8-frame clips. Each is rendered by the model and also \
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
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = 9
    @Option(help: "Write a sheet into this folder: per prompt the model's frames, the true render's and the true render's through the autoencoder.")
    var out: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when the model misses a bar.") var requireBars = false
    @Flag(help: "Prompts of the core world's held-out compositions (the base's pretraining distribution) instead of the full world's.")
    var core = false
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    static let bars: [(key: KeyPath<ProbeScores, ProbeScore>, name: String, minimum: Double)] = [
        (\.colour, "colour", 0.9), (\.shape, "shape", 0.8), (\.motionDirection, "motion_direction", 0.8),
    ]

    func validate() throws {
        guard prompts >= 1 else { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
    }

    func run() throws {
        try threadOptions.apply()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        if let out { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
        let pipeline = try motionAdapterOption.load(model)
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
                    throw ExitStatus.Failure(status: .failure, message: "\(model) renders \(image.width)x\(image.height) frames; the probes read square frames")
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
        let report = EvalBaseReport(model: model, prompts: prompts, seed: seed, steps: steps, guidance: guidance,
                                    generated: generated, trueRenders: truth, autoencodedTrueRenders: autoencoded, samples: samples,
                                    seconds: seconds)
        if json {
            print(String(decoding: try report.json(), as: UTF8.self))
        } else {
            print(report.table)
        }
        if requireBars && !report.passesBars { throw ExitCode(1) }
    }

    /// `images` through the pipeline's autoencoder: encoded to the posterior mean, decoded, at the
    /// pipeline's picture size (the probes' frames must be square, as the true renders are).
    static func autoencode(_ images: [RGBImage], pipeline: TextToVideoPipeline) throws -> [RGBImage] {
        let size = pipeline.pixelSize
        let frames = try images.map { image -> Tensor in
            let sized = image.width == size.width && image.height == size.height ? image : try image.resized(width: size.width, height: size.height)
            return try Tensor(shape: [1, 3, size.height, size.width], values: sized.toCHWFloats())
        }
        let decoded = try pipeline.decode(pipeline.encodeFrames(Tensor.concat(frames, axis: 0)))
        return try decoded.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
    }
}

struct EvalBaseReport: EvalReport {
    var model: String
    var prompts: Int
    var seed: UInt64
    var steps: Int
    var guidance: Float
    var generated: ProbeScores
    var trueRenders: ProbeScores
    /// The true renders through the model's autoencoder: the U-Net's ceiling.
    var autoencodedTrueRenders: ProbeScores
    /// What the probes read of each object, per prompt, from the model's render, the true render
    /// and the autoencoded true render.
    var samples: [Sample]
    var seconds: Double

    typealias Sample = EvalSample<[WorldProbes.ObjectReading]>

    /// An attribute no drawn prompt measured counts as missed.
    var bars: [EvalBar] {
        EvalBase.bars.map { bar in
            let value = generated[keyPath: bar.key].accuracy
            return EvalBar(name: bar.name, requirement: "\(bar.name.replacingOccurrences(of: "_", with: " ")) accuracy ≥ \(bar.minimum)",
                           value: value, met: (value ?? 0) >= bar.minimum)
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, prompts, seed, steps, guidance, generated, samples, seconds
        case trueRenders = "true_renders", autoencodedTrueRenders = "autoencoded_true_renders"
    }

    var summary: String {
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

/// The evaluation sheet: one row per prompt (the model's frames, then the world's), prompts in
/// the PNG's text chunks.
enum EvalSheet {
    static func write(_ rows: [RGBImage], captions: [String], to path: String) throws {
        guard !rows.isEmpty else { return }
        let width = rows.map(\.width).max()!, gap = 2
        var sheet = try RGBImage(width: width, height: rows.reduce(0) { $0 + $1.height + gap }, fill: (255, 255, 255))
        var top = 0
        for row in rows {
            for y in 0..<row.height {
                for x in 0..<row.width { sheet[x: x, y: top + y] = row[x: x, y: y] }
            }
            top += row.height + gap
        }
        try PNGImage.write(sheet, to: path, text: captions.enumerated().map { ("prompt \($0.offset + 1)", $0.element) })
    }
}
