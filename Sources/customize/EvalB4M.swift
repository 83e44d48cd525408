import ArgumentParser
import Diffusion
import Foundation
import Media
import Methods
import World

/// `customize eval b4m`: does a Break-for-Make adapter draw its content in its style better than an
/// ordinary content LoRA and style LoRA merged? (Issue 8's Break-for-Make evaluation.)
struct EvalB4M: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "b4m",
        abstract: "Compare a Break-for-Make adapter with a merged content LoRA and style LoRA, read by the concept and style probes.",
        discussion: """
        The content is a reserved concept (--content-images, captions naming cat, dog or robot) and \\
        the style a reserved style (--style-images, captions ending "in <style> style"). Under --out \\
        it trains, or continues when a run is found there: train-content (auxiliary styles: \\
        --aux-styles, default the other samples/styles folders), train-style (auxiliary contents: \\
        --aux-contents, default the other samples/concepts folders), make, and the baseline's two \\
        ordinary LoRAs (train-lora on each set). --train-steps sets every run's steps.

        Then --prompts prompts "a <size> <concept> on a <colour> background in <style> style" \\
        (prompt i with seed --seed + i) are rendered with the made adapter, with the content and the \\
        style adapter each alone (what each half brings before make), with the content and the \\
        style LoRA each alone (what an ordinary LoRA reaches on the model), with the two LoRAs merged \\
        (strength 1 each) and with the base model. Per row:
          content   share of pictures the concept probe reads as the concept
          style     share the style probe reads as the style
          both      share with both
          s/image   seconds per picture
        The world's own drawings of the prompts, read the same way, give the probes' accuracy.

        Bars (--require-bars exits with status 1 when one is missed): the made adapter's content and \\
        style fidelity each ≥ 0.8 and above the merged LoRAs'.

        Examples:
          customize eval b4m
          customize eval b4m --content-images samples/concepts/dog --style-images samples/styles/neon --json
        """)

    @Option(help: "The content images (a reserved concept).") var contentImages = SamplesFolder.path("concepts/cat")
    @Option(help: "The style images (a reserved style).") var styleImages = SamplesFolder.path("styles/sketch")
    @Option(name: .customLong("aux-styles"), parsing: .upToNextOption, help: "Auxiliary style folders for train-content (default: the other samples/styles folders).")
    var auxStyles: [String] = []
    @Option(name: .customLong("aux-contents"), parsing: .upToNextOption, help: "Auxiliary content folders for train-style (default: the other samples/concepts folders).")
    var auxContents: [String] = []
    @Option(help: "Training steps of every adapter (default: each command's own).") var trainSteps: Int?
    @Option(name: .customLong("b4m-lr"), help: "Learning rate of new train-content, train-style and make runs (default: theirs, 1e-4; a run found under --out continues at its own); the baseline LoRAs keep train-lora's.")
    var b4mLearningRate: Float?
    @Option(help: "Prompts to render (each seven ways).") var prompts = 8
    @Option(help: "Seed of the first prompt's noise (prompt i uses seed + i).") var seed: UInt64 = 0
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: "Classifier-free guidance scale.") var guidance: Float = 9
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @Option(help: "The concept classifier (default: <model>/probes/concept-classifier.safetensors).") var probe: String?
    @Option(help: "The style classifier (default: <model>/probes/style-classifier.safetensors).") var styleProbe: String?
    @Option(help: "Where the adapters, the sheet and report.json go.") var out = "b4m-eval"
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(help: "Exit with status 1 when the made adapter misses a bar.") var requireBars = false
    @OptionGroup var threadOptions: ThreadOptions

    static let backgrounds: [NamedColour] = [.blue, .green, .purple, .cyan, .pink, .white, .yellow, .red]

    func validate() throws {
        guard prompts >= 1 else { throw ValidationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw ValidationError("--guidance must be a number, got \(guidance)") }
        if let trainSteps, trainSteps < 1 { throw ValidationError("--train-steps must be at least 1, got \(trainSteps)") }
        if let b4mLearningRate, !(b4mLearningRate > 0 && b4mLearningRate.isFinite) {
            throw ValidationError("--b4m-lr must be a positive number, got \(b4mLearningRate)")
        }
    }

    /// The word of `Value` (a concept or a style) that the folder's captions name, or a clear error.
    static func named<Value: RawRepresentable & CaseIterable>(_ type: Value.Type, in folder: String, option: String,
                                                              what: String) throws -> Value where Value.RawValue == String {
        let names = try TrainingMedia.files(in: folder, extensions: TrainingMedia.imageExtensions, kind: "images")
        var counts: [String: Int] = [:]
        for name in names {
            let caption = try TrainingMedia.caption(besides: (folder as NSString).appendingPathComponent(name)) ?? ""
            let words = Set(caption.lowercased().split(whereSeparator: { !$0.isLetter }).map(String.init))
            for value in Value.allCases where words.contains(value.rawValue) { counts[value.rawValue, default: 0] += 1 }
        }
        guard let best = counts.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }),
              let value = Value(rawValue: best.key) else {
            throw ExitStatus.Failure(status: .failure, message: "\(option) '\(folder)': no caption names \(what) "
                                     + "(\(Value.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return value
    }

    /// The sibling folders of `folder` (e.g. the other samples/styles/*), the default auxiliary sets.
    static func siblings(of folder: String) -> [String] {
        let parent = (folder as NSString).deletingLastPathComponent, own = (folder as NSString).lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent)) ?? []
        return names.sorted().filter { name in
            var isFolder: ObjCBool = false
            return name != own && !name.hasPrefix(".")
                && FileManager.default.fileExists(atPath: (parent as NSString).appendingPathComponent(name), isDirectory: &isFolder) && isFolder.boolValue
        }.map { (parent as NSString).appendingPathComponent($0) }
    }

    func run() throws {
        try threadOptions.apply()
        let start = Date()
        let concept = try Self.named(Concept.self, in: contentImages, option: "--content-images", what: "a concept")
        let style = try Self.named(Style.self, in: styleImages, option: "--style-images", what: "a style")
        let conceptReader = try ProbeFile.concept(probe ?? ProbeKind.concept.defaultPath(model: model))
        let styleReader = try ProbeFile.style(styleProbe ?? ProbeKind.style.defaultPath(model: model))
        let auxStyles = self.auxStyles.isEmpty ? Self.siblings(of: styleImages) : self.auxStyles
        let auxContents = self.auxContents.isEmpty ? Self.siblings(of: contentImages) : self.auxContents
        guard !auxStyles.isEmpty, !auxContents.isEmpty else {
            throw ExitStatus.Failure(status: .failure, message: "Break-for-Make needs auxiliary sets: give --aux-styles DIR... and --aux-contents DIR... "
                                     + "(none found beside '\(styleImages)' or '\(contentImages)')")
        }
        // Loaded once, before training: the training commands load their own copy.
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let size = pipeline.pixelSize
        guard size.width == size.height else {
            throw ExitStatus.Failure(status: .failure, message: "\(model) renders \(size.width)x\(size.height) pictures; the probes read square ones")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // 1. The adapters: Break-for-Make's three runs and the baseline's two LoRAs.
        func path(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }
        let threads = String(threadOptions.threads ?? ProcessInfo.processInfo.activeProcessorCount)
        let stepsOption = trainSteps.map { ["--steps", String($0)] } ?? []
        let shared = ["--model", model, "--threads", threads] + stepsOption
        // The rate is a new run's setting: a run found under --out continues at its own.
        let breakRate = b4mLearningRate.map { ["--lr", String($0)] } ?? []
        let content = try EvalTrainingRun.ensure(TrainContent.self, output: path("content.safetensors"), runFolder: path("content-run"),
                                                 runFile: BreakTraining.runFile,
                                                 common: [contentImages, "--token", concept.rawValue, "--aux-styles"] + auxStyles
                                                     + ["--preview-every", "0"] + shared, freshOnly: breakRate)
        let styleAdapter = try EvalTrainingRun.ensure(TrainStyle.self, output: path("style.safetensors"), runFolder: path("style-run"),
                                                      runFile: BreakTraining.runFile,
                                                      common: [styleImages, "--token", style.rawValue, "--aux-contents"] + auxContents
                                                          + ["--preview-every", "0"] + shared, freshOnly: breakRate)
        let made = try EvalTrainingRun.ensure(Make.self, output: path("made.safetensors"), runFolder: path("made-run"),
                                              runFile: MakeTraining.runFile,
                                              common: ["--content", content, "--style", styleAdapter, "--content-images", contentImages,
                                                       "--style-images", styleImages] + shared, freshOnly: breakRate)
        let contentLoRA = try EvalTrainingRun.ensure(TrainLoRA.self, output: path("content-lora.safetensors"), runFolder: path("content-lora-run"),
                                                     runFile: SubjectLoRATraining.runFile,
                                                     common: [contentImages, "--token", concept.rawValue, "--preview-every", "0"] + shared)
        let styleLoRA = try EvalTrainingRun.ensure(TrainLoRA.self, output: path("style-lora.safetensors"), runFolder: path("style-lora-run"),
                                                   runFile: SubjectLoRATraining.runFile,
                                                   common: [styleImages, "--token", style.rawValue, "--preview-every", "0"] + shared)

        // 2. The prompts, rendered seven ways.
        let captions = (0..<prompts).map { index in
            let size = index % 2 == 0 ? "medium" : "large"
            return "a \(size) \(concept.rawValue) "
                + Captions.backgroundPhrase(Background(kind: .plain, colour: Self.backgrounds[index % Self.backgrounds.count]))
                + " in \(style.rawValue) style"
        }
        func alone(_ file: String) -> LoRAChoice { LoRAChoice(name: file, path: file, scale: 1, role: .lora) }
        let rows: [(name: String, label: String, choices: [LoRAChoice])] = [
            ("made", "Break-for-Make", [alone(made)]),
            ("content_adapter", "B4M content alone", [alone(content)]),
            ("style_adapter", "B4M style alone", [alone(styleAdapter)]),
            ("content_lora", "content LoRA alone", [alone(contentLoRA)]),
            ("style_lora", "style LoRA alone", [alone(styleLoRA)]),
            ("merged_loras", "merged LoRAs", [alone(contentLoRA), alone(styleLoRA)]),
            ("base", "base", []),
        ]
        let loras = PipelineLoRAs(pipeline)
        var outcomes: [[B4MEvalReport.Outcome]] = [], sheetRows: [RGBImage] = []
        let progress = ProgressReporter("eval b4m: rendering", total: rows.count * prompts, unit: "image")
        for (rowIndex, row) in rows.enumerated() {
            for warning in try loras.apply(row.choices) { FileHandle.standardError.write("customize eval b4m: warning: \(warning)\n") }
            var rowOutcomes: [B4MEvalReport.Outcome] = [], images: [RGBImage] = []
            for (index, caption) in captions.enumerated() {
                let started = Date()
                let video = try pipeline.generate(prompt: caption, frames: 1, steps: steps, guidance: guidance, seed: seed &+ UInt64(index))
                let seconds = Date().timeIntervalSince(started)
                let image = try RGBImage(chwFloats: video.frames[0].values, width: video.frames[0].shape[2], height: video.frames[0].shape[1])
                rowOutcomes.append(B4MEvalReport.Outcome(try ProbeFrame(side: image.width, pixels: image.pixels), concept: concept, style: style,
                                                         conceptReader: conceptReader, styleReader: styleReader, seconds: seconds))
                images.append(image)
                progress.update(rowIndex * prompts + index + 1)
            }
            outcomes.append(rowOutcomes)
            sheetRows.append(try RGBImage.contactSheet(images, spacing: 2))
        }
        try loras.removeAll()
        let renderer = Renderer()
        let truth = try (0..<prompts).map { index -> B4MEvalReport.Outcome in
            let spec = SceneSpec(background: Background(kind: .plain, colour: Self.backgrounds[index % Self.backgrounds.count]),
                                 objects: [SceneObject(kind: .concept(concept), colour: .orange, size: index % 2 == 0 ? .medium : .large)],
                                 style: style)
            return B4MEvalReport.Outcome(try ProbeFrame(side: renderer.side, pixels: renderer.render(spec)[0]), concept: concept, style: style,
                                         conceptReader: conceptReader, styleReader: styleReader, seconds: 0)
        }

        let report = B4MEvalReport(
            model: model, concept: concept, style: style, adapters: ["made": made, "content": content, "style": styleAdapter,
                                                                   "content_lora": contentLoRA, "style_lora": styleLoRA],
            prompts: prompts, seed: seed, steps: steps, guidance: guidance,
            rows: zip(rows, outcomes).map { B4MEvalReport.Row(name: $0.name, label: $0.label, outcomes: $1) },
            trueDrawings: B4MEvalReport.Row(name: "true_drawings", label: "world's drawings", outcomes: truth),
            samples: captions.enumerated().map { index, caption in
                B4MEvalReport.Sample(prompt: caption, seed: seed &+ UInt64(index),
                                     outcomes: Dictionary(uniqueKeysWithValues: zip(rows, outcomes).map { ($0.name, $1[index]) }
                                                          + [("true_drawing", truth[index])]))
            },
            seconds: Date().timeIntervalSince(start))
        try report.publish(to: out, sheetName: "eval-b4m.png", sheetRows: sheetRows, captions: rows.map(\.label), json: json,
                           requireBars: requireBars)
    }
}

/// What `eval b4m` measured, per row and per prompt, with the bars.
struct B4MEvalReport: EvalReport {
    struct Outcome: Encodable {
        var concept: String
        var style: String
        var contentKept: Bool
        var styled: Bool
        var seconds: Double

        enum CodingKeys: String, CodingKey {
            case concept, style, seconds
            case contentKept = "content_kept", styled
        }

        init(_ frame: ProbeFrame, concept: Concept, style: Style, conceptReader: ConceptProbe, styleReader: StyleProbe, seconds: Double) {
            let reading = conceptReader.read(frame, box: [0, 0, 1, 1])
            let read = styleReader.read(frame)
            self.concept = reading.description
            self.style = read?.rawValue ?? "none"
            contentKept = reading == .concept(concept)
            styled = read == style
            self.seconds = seconds
        }
    }

    struct Row: Encodable {
        var name: String
        var label: String
        var content: Double
        var style: Double
        var both: Double
        var images: Int
        var secondsPerImage: Double

        enum CodingKeys: String, CodingKey {
            case name, content, style, both, images
            case secondsPerImage = "seconds_per_image"
        }

        init(name: String, label: String, outcomes: [Outcome]) {
            self.name = name
            self.label = label
            content = outcomes.share(where: \.contentKept)
            style = outcomes.share(where: \.styled)
            both = outcomes.share { $0.contentKept && $0.styled }
            images = outcomes.count
            secondsPerImage = outcomes.mean(\.seconds)
        }
    }

    typealias Sample = EvalSample<Outcome>

    typealias Bar = EvalBar

    var model: String
    var concept: Concept
    var style: Style
    var adapters: [String: String]
    var prompts: Int
    var seed: UInt64
    var steps: Int
    var guidance: Float
    var rows: [Row]
    var trueDrawings: Row
    var samples: [Sample]
    var seconds: Double

    static let fidelityMinimum = 0.8

    var bars: [Bar] {
        guard let made = rows.first(where: { $0.name == "made" }), let merged = rows.first(where: { $0.name == "merged_loras" }) else { return [] }
        return [
            Bar(name: "content_fidelity", requirement: "Break-for-Make content fidelity ≥ \(Self.fidelityMinimum)",
                value: made.content, met: made.content >= Self.fidelityMinimum),
            Bar(name: "style_fidelity", requirement: "Break-for-Make style fidelity ≥ \(Self.fidelityMinimum)",
                value: made.style, met: made.style >= Self.fidelityMinimum),
            Bar(name: "content_above_merge", requirement: "Break-for-Make content fidelity − merged LoRAs' > 0",
                value: made.content - merged.content, met: made.content > merged.content),
            Bar(name: "style_above_merge", requirement: "Break-for-Make style fidelity − merged LoRAs' > 0",
                value: made.style - merged.style, met: made.style > merged.style),
        ]
    }

    enum CodingKeys: String, CodingKey {
        case model, concept, style, adapters, prompts, seed, steps, guidance, rows, samples, seconds
        case trueDrawings = "true_drawings"
    }

    var summary: String {
        let cells = (rows + [trueDrawings]).map { row in
            [row.label] + [row.content, row.style, row.both].map { String(format: "%.2f", $0) } + [String(format: "%.1f", row.secondsPerImage)]
        }
        let lines = ["b4m evaluation: \(concept.rawValue) in \(style.rawValue) style, \(prompts) prompts × \(rows.count) rows, \(steps) steps, "
                     + String(format: "%.0f s", seconds),
                     TextTable(header: ["row", "content", "style", "both", "s/image"], rows: cells).text]
        return lines.joined(separator: "\n")
    }
}
