import Diffusion
import Foundation
import Media
import Methods
import World

/// `eval b4m`: does a Break-for-Make adapter draw its content in its style better than an ordinary
/// content LoRA and style LoRA merged? Under `out` it trains, or continues when a run is found
/// there, train-content, train-style, make and the baseline's two ordinary LoRAs; then prompts
/// "a <size> <concept> on a <colour> background in <style> style" are rendered seven ways and read
/// by the concept and style probes.
public struct B4MEvaluation {
    /// The content images (a reserved concept named by their captions).
    public var contentImages: String
    /// The style images (a reserved style named by their captions).
    public var styleImages: String
    /// Auxiliary style folders for train-content (none: the other folders beside `styleImages`).
    public var auxStyles: [String] = []
    /// Auxiliary content folders for train-style (none: the other folders beside `contentImages`).
    public var auxContents: [String] = []
    /// Training steps of every adapter (default: each run's own).
    public var trainSteps: Int?
    /// Learning rate of new train-content, train-style and make runs (default theirs); the
    /// baseline LoRAs keep train-lora's.
    public var b4mLearningRate: Float?
    /// Prompts to render (each seven ways).
    public var prompts = 8
    /// Seed of the first prompt's noise (prompt i uses seed + i).
    public var seed: UInt64 = 0
    public var steps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// A diffusers text-to-video folder.
    public var model: String
    /// The concept classifier (default: `<model>/probes/concept-classifier.safetensors`).
    public var probe: String?
    /// The style classifier (default: `<model>/probes/style-classifier.safetensors`).
    public var styleProbe: String?
    /// Where the adapters, the sheet and report.json go.
    public var out: String

    public init(contentImages: String, styleImages: String, model: String, out: String) {
        self.contentImages = contentImages
        self.styleImages = styleImages
        self.model = model
        self.out = out
    }

    /// The core-look concept pictures' backgrounds, which the shipped base and its concept LoRAs know.
    static let backgrounds = CoreWorld.conceptBackgrounds

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard prompts >= 1 else { throw EvaluationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
        if let trainSteps, trainSteps < 1 { throw EvaluationError("--train-steps must be at least 1, got \(trainSteps)") }
        if let b4mLearningRate, !(b4mLearningRate > 0 && b4mLearningRate.isFinite) {
            throw EvaluationError("--b4m-lr must be a positive number, got \(b4mLearningRate)")
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
            throw EvaluationError("\(option) '\(folder)': no caption names \(what) "
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

    /// Trains (or continues) the five adapters under `out`, renders every prompt seven ways and reads
    /// them; writes `report.json` and `eval-b4m.png` into `out`. Progress goes to standard error.
    public func run() throws -> EvaluationResult<B4MEvalReport> {
        try validate()
        let start = Date()
        let concept = try Self.named(Concept.self, in: contentImages, option: "--content-images", what: "a concept")
        let style = try Self.named(Style.self, in: styleImages, option: "--style-images", what: "a style")
        let conceptReader = try ProbeFile.concept(probe ?? ProbeKind.concept.defaultPath(model: model))
        let styleReader = try ProbeFile.style(styleProbe ?? ProbeKind.style.defaultPath(model: model))
        let auxStyles = self.auxStyles.isEmpty ? Self.siblings(of: styleImages) : self.auxStyles
        let auxContents = self.auxContents.isEmpty ? Self.siblings(of: contentImages) : self.auxContents
        guard !auxStyles.isEmpty, !auxContents.isEmpty else {
            throw EvaluationError("Break-for-Make needs auxiliary sets: give --aux-styles DIR... and --aux-contents DIR... "
                                  + "(none found beside '\(styleImages)' or '\(contentImages)')")
        }
        // Loaded once, before training: the training runs load their own copy.
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let size = pipeline.pixelSize
        guard size.width == size.height else {
            throw EvaluationError("\(model) renders \(size.width)x\(size.height) pictures; the probes read square ones")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // 1. The adapters: Break-for-Make's three runs and the baseline's two LoRAs.
        func path(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }
        // A Break-for-Make run's settings: a new run at `b4mLearningRate` (the rate is a new run's
        // setting), a run found in its folder continued at its own.
        func breakSettings(_ file: String, runFolder: String, runFile: String) -> BreakForMakeRunSettings {
            var settings = BreakForMakeRunSettings(out: path(file), model: model)
            (settings.runDirectory, settings.steps) = (path(runFolder), trainSteps)
            settings.resume = AdapterRunResult.isStarted(settings.runFolder, runFile: runFile)
            if !settings.resume { settings.learningRate = b4mLearningRate }
            return settings
        }
        func breakRun(_ role: BreakTraining.Role, images: String, token: String, auxiliary: [String], file: String,
                      runFolder: String) throws -> String {
            var run = BreakRun(role: role, images: images, token: token, auxiliary: auxiliary,
                               settings: breakSettings(file, runFolder: runFolder, runFile: BreakTraining.runFile))
            run.previewEvery = 0
            return try run.run().reported()
        }
        func loraRun(images: String, token: String, file: String, runFolder: String) throws -> String {
            var run = SubjectLoRARun(images: images, token: token, out: path(file), model: model)
            (run.runDirectory, run.previewEvery, run.steps) = (path(runFolder), 0, trainSteps)
            run.resume = AdapterRunResult.isStarted(run.runFolder, runFile: SubjectLoRATraining.runFile)
            return try run.run().reported()
        }
        let content = try breakRun(.content, images: contentImages, token: concept.rawValue, auxiliary: auxStyles,
                                   file: "content.safetensors", runFolder: "content-run")
        let styleAdapter = try breakRun(.style, images: styleImages, token: style.rawValue, auxiliary: auxContents,
                                        file: "style.safetensors", runFolder: "style-run")
        let made = try MakeRun(content: content, style: styleAdapter, contentImages: contentImages, styleImages: styleImages,
                               settings: breakSettings("made.safetensors", runFolder: "made-run", runFile: MakeTraining.runFile))
            .run().reported()
        let contentLoRA = try loraRun(images: contentImages, token: concept.rawValue, file: "content-lora.safetensors",
                                      runFolder: "content-lora-run")
        let styleLoRA = try loraRun(images: styleImages, token: style.rawValue, file: "style-lora.safetensors", runFolder: "style-lora-run")

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
        return try report.write(to: out, sheetName: "eval-b4m.png", sheetRows: sheetRows, captions: rows.map(\.label))
    }
}

/// What `eval b4m` measured, per row and per prompt, with the bars.
public struct B4MEvalReport: EvalReport {
    public struct Outcome: Encodable {
        public var concept: String
        public var style: String
        public var contentKept: Bool
        public var styled: Bool
        public var seconds: Double

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

    public struct Row: Encodable {
        public var name: String
        public var label: String
        public var content: Double
        public var style: Double
        public var both: Double
        public var images: Int
        public var secondsPerImage: Double

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

    public typealias Sample = EvalSample<Outcome>

    public typealias Bar = EvalBar

    public var model: String
    public var concept: Concept
    public var style: Style
    public var adapters: [String: String]
    public var prompts: Int
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    public var rows: [Row]
    public var trueDrawings: Row
    public var samples: [Sample]
    public var seconds: Double

    public static let fidelityMinimum = 0.8

    public var bars: [Bar] {
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

    public var summary: String {
        let cells = (rows + [trueDrawings]).map { row in
            [row.label] + [row.content, row.style, row.both].map { String(format: "%.2f", $0) } + [String(format: "%.1f", row.secondsPerImage)]
        }
        let lines = ["b4m evaluation: \(concept.rawValue) in \(style.rawValue) style, \(prompts) prompts × \(rows.count) rows, \(steps) steps, "
                     + String(format: "%.0f s", seconds),
                     TextTable(header: ["row", "content", "style", "both", "s/image"], rows: cells).text]
        return lines.joined(separator: "\n")
    }
}
