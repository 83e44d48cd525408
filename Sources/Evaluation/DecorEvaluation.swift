import Diffusion
import Foundation
import Media
import Methods
import World

/// `eval decor`: does DECOR stop a style LoRA from leaking its reference's content, at little cost
/// to prompt adherence? World images of one content (`reference`) drawn in `style` are written to
/// `<out>/reference/`; a style LoRA is trained on them (or taken from `styleLora`); then prompts
/// unlike the reference are rendered with the style LoRA, with it and DECOR removing the reference's
/// words, and with the base model, and the probes read them.
public struct DecorEvaluation {
    /// The style (neon, pixel or sketch).
    public var style = "sketch"
    /// The reference's content, "<colour> <shape>" (also the words DECOR removes).
    public var reference = "red heart"
    /// Reference images to draw.
    public var referenceImages = 8
    /// A style LoRA to evaluate instead of training one on the reference.
    public var styleLora: String?
    /// Training steps of the style LoRA (default train-lora's).
    public var trainSteps: Int?
    /// DECOR's strength α (0…1).
    public var decorStrength: Float = 1
    /// Prompts to render (each three ways).
    public var prompts = 12
    /// Seed of the reference draw and of the first prompt's noise (prompt i uses seed + i).
    public var seed: UInt64 = 0
    public var steps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// The reference and the prompts in the core world's look and vocabulary (the shipped base's),
    /// the default; false: the full world's.
    public var core = true
    /// A diffusers text-to-video folder.
    public var model: String
    /// The shape classifier (default: `<model>/probes/shape-classifier.safetensors`).
    public var probe: String?
    /// The style classifier (default: `<model>/probes/style-classifier.safetensors`).
    public var styleProbe: String?
    /// Where the reference, the style LoRA, the sheet and report.json go.
    public var out: String

    public init(model: String, out: String) {
        self.model = model
        self.out = out
    }

    /// `reference` as the world's colour and shape words, or nil.
    public var referenceContent: (NamedColour, ObjectShape)? {
        let words = reference.split(separator: " ").map(String.init)
        guard words.count == 2, let colour = NamedColour(rawValue: words[0]), let shape = ObjectShape(rawValue: words[1]) else { return nil }
        return (colour, shape)
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard Style(rawValue: style) != nil else {
            throw EvaluationError("--style expects one of \(Style.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(style)\"")
        }
        guard referenceContent != nil else {
            throw EvaluationError("--reference expects \"<colour> <shape>\" from the world's words (e.g. \"red heart\"), got \"\(reference)\"")
        }
        guard referenceImages >= 1 else { throw EvaluationError("--reference-images must be at least 1, got \(referenceImages)") }
        guard prompts >= 1 else { throw EvaluationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
        guard decorStrength.isFinite, (0...1).contains(decorStrength) else {
            throw EvaluationError("--decor-strength must lie in [0, 1], got \(decorStrength)")
        }
        if let trainSteps, trainSteps < 1 { throw EvaluationError("--train-steps must be at least 1, got \(trainSteps)") }
        if let styleLora { try MotionEvalAdapters.requireFile(styleLora, option: "--style-lora", hint: "train-lora writes one") }
    }

    /// Writes the reference, trains the style LoRA when none is given, renders every prompt three
    /// ways and reads them; writes `report.json` and `eval-decor.png` into `out`. Progress goes to standard error.
    public func run() throws -> EvaluationResult<DecorEvalReport> {
        try validate()
        let start = Date()
        let style = Style(rawValue: style)!, (referenceColour, referenceShape) = referenceContent!
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        let styleReader = try ProbeFile.style(styleProbe ?? ProbeKind.style.defaultPath(model: model))
        // Loaded once, before training: the training runs load their own copy.
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let side = pipeline.pixelSize
        guard side.width == side.height else {
            throw EvaluationError("\(model) renders \(side.width)x\(side.height) pictures; the probes read square ones")
        }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

        // 1. The reference and the style LoRA trained on it.
        let referenceFolder = (out as NSString).appendingPathComponent("reference")
        let samples = WorldSampler(seed: seed, distribution: core ? .core : .full).styleImages(style, count: referenceImages, content: (referenceColour, referenceShape))
        try writeReference(samples, to: referenceFolder)
        let lora = try styleLora ?? trainStyleLoRA(referenceFolder: referenceFolder, token: style.rawValue)

        // 2. Prompts unlike the reference, rendered three ways.
        let suffix = " in \(style.rawValue) style"
        let evaluationPrompts: [MotionEvaluationPrompt]
        do {
            evaluationPrompts = try MotionEvaluationPrompt.make(count: prompts, motionPhrase: "", size: .medium,
                                                                avoidingColours: [referenceColour], avoidingShapes: [referenceShape],
                                                                suffix: suffix, core: core)
        } catch {
            throw EvaluationError(describe(error))
        }
        let decor = DECORSetting(words: reference, strength: decorStrength)
        let rows: [(name: String, label: String, lora: Bool, decor: DECORSetting?)] = [
            ("style_lora", "style LoRA", true, nil),
            ("style_lora_decor", "style LoRA + DECOR", true, decor),
            ("base", "base", false, nil),
        ]
        let loras = PipelineLoRAs(pipeline)
        let renderer = Renderer()
        var outcomes: [[DecorEvalReport.Outcome]] = [], sheetRows: [RGBImage] = []
        let progress = ProgressReporter("eval decor: rendering", total: rows.count * prompts, unit: "image")
        for (rowIndex, row) in rows.enumerated() {
            for warning in try loras.apply(row.lora ? [LoRAChoice(name: lora, path: lora, scale: 1, role: .lora)] : []) {
                FileHandle.standardError.write("customize eval decor: warning: \(warning)\n")
            }
            try DECORSetting.install(row.decor, on: pipeline)
            var rowOutcomes: [DecorEvalReport.Outcome] = [], images: [RGBImage] = []
            for (index, prompt) in evaluationPrompts.enumerated() {
                let started = Date()
                let video = try pipeline.generate(prompt: prompt.caption, frames: 1, steps: steps, guidance: guidance, seed: seed &+ UInt64(index))
                let seconds = Date().timeIntervalSince(started)
                let image = try RGBImage(chwFloats: video.frames[0].values, width: video.frames[0].shape[2], height: video.frames[0].shape[1])
                rowOutcomes.append(DecorEvalReport.Outcome(read: try ProbeFrame(side: image.width, pixels: image.pixels), prompt: prompt,
                                                           reference: (referenceColour, referenceShape), style: style,
                                                           probes: probes, styleReader: styleReader, seconds: seconds))
                images.append(image)
                progress.update(rowIndex * prompts + index + 1)
            }
            outcomes.append(rowOutcomes)
            sheetRows.append(try RGBImage.contactSheet(images, spacing: 2))
        }
        try DECORSetting.install(nil, on: pipeline)
        try loras.removeAll()
        // The probes' own accuracy: the world's drawings of the same prompts.
        let truth = try evaluationPrompts.map { prompt -> DecorEvalReport.Outcome in
            let spec = SceneSpec(background: Background(kind: .plain, colour: prompt.background),
                                 objects: [SceneObject(kind: .shape(prompt.shape), colour: prompt.colour, size: .medium)], style: style)
            return DecorEvalReport.Outcome(read: try ProbeFrame(side: renderer.side, pixels: renderer.render(spec)[0]), prompt: prompt,
                                           reference: (referenceColour, referenceShape), style: style,
                                           probes: probes, styleReader: styleReader, seconds: 0)
        }

        let report = DecorEvalReport(
            model: model, style: style, reference: reference, styleLoRA: lora, decorStrength: decorStrength, prompts: prompts,
            seed: seed, steps: steps, guidance: guidance,
            rows: zip(rows, outcomes).map { DecorEvalReport.Row(name: $0.name, label: $0.label, outcomes: $1) },
            trueDrawings: DecorEvalReport.Row(name: "true_drawings", label: "world's drawings", outcomes: truth),
            samples: evaluationPrompts.enumerated().map { index, prompt in
                DecorEvalReport.Sample(prompt: prompt.caption, seed: seed &+ UInt64(index),
                                       outcomes: Dictionary(uniqueKeysWithValues: zip(rows, outcomes).map { ($0.name, $1[index]) }
                                                            + [("true_drawing", truth[index])]))
            },
            seconds: Date().timeIntervalSince(start))
        return try report.write(to: out, sheetName: "eval-decor.png", sheetRows: sheetRows, captions: rows.map(\.label))
    }

    /// The reference images with their captions; an existing folder must hold the same captions.
    func writeReference(_ samples: [WorldSample], to folder: String) throws {
        let renderer = Renderer()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (index, sample) in samples.enumerated() {
            let name = String(format: "%05d", index)
            let captionPath = (folder as NSString).appendingPathComponent(name + ".txt")
            if let existing = try? String(contentsOfFile: captionPath, encoding: .utf8) {
                guard existing.trimmingCharacters(in: .whitespacesAndNewlines) == sample.caption else {
                    throw EvaluationError("'\(folder)' holds another reference (\(name).txt: \"\(existing.trimmingCharacters(in: .whitespacesAndNewlines))\"); "
                                          + "choose another --out, or delete it")
                }
                continue
            }
            let image = try RGBImage(width: renderer.side, height: renderer.side, pixels: renderer.render(sample.spec)[0])
            try PNGImage.write(image, to: (folder as NSString).appendingPathComponent(name + ".png"), text: [("caption", sample.caption)])
            try atomicWrite(sample.caption + "\n", to: captionPath)
        }
    }

    /// train-lora on the reference, or its run under `out` continued (a finished one is reused).
    func trainStyleLoRA(referenceFolder: String, token: String) throws -> String {
        var run = SubjectLoRARun(images: referenceFolder, token: token, out: (out as NSString).appendingPathComponent("style.safetensors"),
                                 model: model)
        run.runDirectory = (out as NSString).appendingPathComponent("style-run")
        (run.previewEvery, run.steps) = (0, trainSteps)
        run.resume = AdapterRunResult.isStarted(run.runFolder, runFile: SubjectLoRATraining.runFile)
        return try run.run().reported()
    }
}

/// What `eval decor` measured, per row and per prompt, with the bars.
public struct DecorEvalReport: EvalReport {
    public struct Outcome: Encodable {
        public var found: Bool
        public var colour: NamedColour?
        public var shape: ObjectShape?
        public var style: String
        /// The probed colour or shape is the reference's instead of the prompt's.
        public var leaked: Bool
        public var adherent: Bool
        public var styled: Bool
        public var seconds: Double

        init(read frame: ProbeFrame, prompt: MotionEvaluationPrompt, reference: (NamedColour, ObjectShape), style: Style,
             probes: WorldProbes, styleReader: StyleProbe, seconds: Double) {
            let reading = probes.readMainObject([frame])
            let read = styleReader.read(frame)
            found = reading.found
            colour = reading.colour
            shape = reading.shape
            self.style = read?.rawValue ?? "none"
            // Sketches are drawn in grey whatever the colour asked for: there, only the shape is content.
            let countsColour = style != .sketch
            let colourLeaked = countsColour && reading.colour == reference.0 && prompt.colour != reference.0
            leaked = colourLeaked || (reading.shape == reference.1 && prompt.shape != reference.1)
            adherent = (!countsColour || reading.colour == prompt.colour) && reading.shape == prompt.shape
            styled = read == style
            self.seconds = seconds
        }
    }

    public struct Row: Encodable {
        public var name: String
        public var label: String
        public var leakage: Double
        public var adherence: Double
        public var style: Double
        public var images: Int
        public var secondsPerImage: Double

        enum CodingKeys: String, CodingKey {
            case name, leakage, adherence, style, images
            case secondsPerImage = "seconds_per_image"
        }

        init(name: String, label: String, outcomes: [Outcome]) {
            self.name = name
            self.label = label
            leakage = outcomes.share(where: \.leaked)
            adherence = outcomes.share(where: \.adherent)
            style = outcomes.share(where: \.styled)
            images = outcomes.count
            secondsPerImage = outcomes.mean(\.seconds)
        }
    }

    public typealias Sample = EvalSample<Outcome>

    public typealias Bar = EvalBar

    public var model: String
    public var style: Style
    public var reference: String
    public var styleLoRA: String
    public var decorStrength: Float
    public var prompts: Int
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    public var rows: [Row]
    public var trueDrawings: Row
    public var samples: [Sample]
    public var seconds: Double

    public static let leakageRatioMaximum = 0.5
    public static let adherenceDropMaximum = 0.05

    public var bars: [Bar] {
        guard let plain = rows.first(where: { $0.name == "style_lora" }), let decor = rows.first(where: { $0.name == "style_lora_decor" }) else { return [] }
        // A style LoRA that does not leak shows nothing for DECOR to halve: the bar is then missed,
        // since the evaluation could not show the reduction (train longer, or a stronger reference).
        let halved = plain.leakage > 0 && decor.leakage <= Self.leakageRatioMaximum * plain.leakage + 1e-9
        let drop = plain.adherence - decor.adherence
        return [
            Bar(name: "leakage_halved", requirement: "DECOR leakage ≤ \(Self.leakageRatioMaximum) × the style LoRA's (\(String(format: "%.2f", plain.leakage)))",
                value: decor.leakage, met: halved),
            Bar(name: "adherence_kept", requirement: "style LoRA adherence − DECOR's ≤ \(Self.adherenceDropMaximum)",
                value: drop, met: drop <= Self.adherenceDropMaximum + 1e-9),
        ]
    }

    enum CodingKeys: String, CodingKey {
        case model, style, reference, prompts, seed, steps, guidance, rows, samples, seconds
        case styleLoRA = "style_lora", decorStrength = "decor_strength", trueDrawings = "true_drawings"
    }

    public var summary: String {
        let cells = (rows + [trueDrawings]).map { row in
            [row.label, String(format: "%.2f", row.leakage), String(format: "%.2f", row.adherence), String(format: "%.2f", row.style),
             String(format: "%.1f", row.secondsPerImage)]
        }
        let lines = ["decor evaluation: style \(style.rawValue), reference \"\(reference)\", \(prompts) prompts × 3 rows, "
                     + "DECOR strength \(decorStrength), \(steps) steps, \(String(format: "%.0f", seconds)) s",
                     TextTable(header: ["row", "leakage", "adherence", "style", "s/image"], rows: cells).text]
        let note = Self.noLeakNote(styleLoRA: rows.first { $0.name == "style_lora" }?.leakage,
                                   base: rows.first { $0.name == "base" }?.leakage)
        return (lines + (note.map { [$0] } ?? [])).joined(separator: "\n")
    }

    /// What to tell the reader when the style LoRA leaks no more often than the base model alone
    /// reads the reference into these prompts: then there is no leak for DECOR to remove, and the
    /// leakage bar says nothing about DECOR.
    public static func noLeakNote(styleLoRA: Double?, base: Double?) -> String? {
        guard let styleLoRA, let base, styleLoRA <= base else { return nil }
        return "note: the style LoRA leaks no more often than the base model (\(String(format: "%.2f", styleLoRA)) vs "
            + "\(String(format: "%.2f", base))): there is no leak here for DECOR to remove, so the leakage bar cannot show "
            + "a reduction (a style LoRA that copies its reference more, or a base that draws it, is needed)"
    }
}
