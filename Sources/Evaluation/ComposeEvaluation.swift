import Diffusion
import Foundation
import Media
import Methods
import World

/// `eval compose`: do LoRA-Composer and CLoRA keep two concepts present and in their places, where
/// merging the LoRAs confuses or drops them? For every pair of the concept LoRAs and every seed,
/// "a A on the left and a B on the right on a <colour> background" is rendered by each method, and
/// the concept probe names what stands in each half of the picture.
public struct ComposeEvaluation {
    /// Concept LoRAs as `--lora` takes them, NAME[:SCALE] (none: cat and dog).
    public var loras: [String] = []
    /// Seeds per pair (each rendered by every method).
    public var seeds = 6
    /// The methods to compare, in order.
    public var methods: [ComposePlan.Method] = [.composer, .clora, .merge]
    public var steps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// Seed of the first picture (picture i of a pair uses seed + i).
    public var seed: UInt64 = 0
    /// A diffusers text-to-video folder.
    public var model: String
    /// The concept classifier (default: `<model>/probes/concept-classifier.safetensors`).
    public var probe: String?
    /// Where a bare LoRA NAME is looked for first (then samples/loras).
    public var loraDirectory = "loras"
    /// Where the sheet and report.json go.
    public var out: String

    public init(model: String, out: String) {
        self.model = model
        self.out = out
    }

    /// The core-look concept pictures' backgrounds, which the shipped base and its concept LoRAs know.
    static let backgrounds = CoreWorld.conceptBackgrounds

    /// `--methods` as written: comma-separated method names, each kept once in the order given.
    public static func parseMethods(_ text: String) throws -> [ComposePlan.Method] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        var result: [ComposePlan.Method] = []
        for name in names {
            guard let method = ComposePlan.Method(rawValue: name) else {
                throw EvaluationError("--methods: \"\(name)\" is not a method (composer, clora, merge)")
            }
            if !result.contains(method) { result.append(method) }
        }
        guard !result.isEmpty else { throw EvaluationError("--methods names no method") }
        return result
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard seeds >= 1 else { throw EvaluationError("--seeds must be at least 1, got \(seeds)") }
        guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
        guard !methods.isEmpty else { throw EvaluationError("--methods names no method") }
        for lora in loras {
            do { _ = try LoRARequest(parsing: lora) } catch { throw EvaluationError("--lora \(describe(error))") }
        }
        guard loras.isEmpty || loras.count >= 2 else { throw EvaluationError("give at least two --lora concepts to compose") }
    }

    /// Renders every pair, seed and method and reads them; writes `report.json` and
    /// `eval-compose.png` into `out`. Progress goes to standard error.
    public func run() throws -> EvaluationResult<ComposeEvalReport> {
        try validate()
        let start = Date()
        let probe = try ProbeFile.concept(self.probe ?? ProbeKind.concept.defaultPath(model: model))
        let choices: [LoRAChoice]
        do {
            choices = try (loras.isEmpty ? ["cat", "dog"] : loras).map { try LoRARequest(parsing: $0).resolve(loraFolder: loraDirectory) }
        } catch {
            throw EvaluationError("--lora \(describe(error))")
        }
        // Each concept must be one the probe can name: its token, class or name is a concept word.
        let named: [(choice: LoRAChoice, concept: Concept, word: String)] = try choices.map { choice in
            let plan = try ComposePlan(method: .merge, prompt: "", choices: [choice], regions: [], conceptPrompts: [])
            let words = plan.concepts[0].words
            guard let concept = words.lazy.compactMap({ Concept(rawValue: LoRAFileFacts.bare($0).lowercased()) }).first else {
                throw EvaluationError("--lora \(choice.name): none of its names (\(words.joined(separator: ", "))) "
                                      + "is a concept the probe knows (\(Concept.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            // The words the prompt names it by: "<token> class" when the file stores both, else its first name.
            let facts = plan.concepts[0]
            let word = if let token = facts.token, let className = facts.className, token != className { "\(token) \(className)" } else { words[0] }
            return (choice, concept, word)
        }
        var pairs: [(Int, Int)] = []
        for first in named.indices { for second in named.indices where second > first { pairs.append((first, second)) } }

        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let renderer = Renderer()
        let size = try TextToVideoPipeline.load(folder: model).pixelSize
        guard size.width == size.height else {
            throw EvaluationError("\(model) renders \(size.width)x\(size.height) pictures; the probe reads square ones")
        }
        var samples: [ComposeEvalReport.Sample] = []
        var sheetRows: [RGBImage] = [], captions: [String] = []
        let total = pairs.count * seeds * methods.count
        let progress = ProgressReporter("eval compose", total: total, unit: "image")
        var done = 0
        for (first, second) in pairs {
            for index in 0..<seeds {
                let (left, right) = index % 2 == 0 ? (named[first], named[second]) : (named[second], named[first])
                let background = Self.backgrounds[(samples.count / max(methods.count, 1) + index) % Self.backgrounds.count]
                let prompt = "a \(left.word) on the left and a \(right.word) on the right on a \(background.rawValue) background"
                let imageSeed = seed &+ UInt64(index)
                // The probe's own accuracy: the world's drawing of the scene asked for.
                let truth = SceneSpec(background: Background(kind: .plain, colour: background), objects: [
                    SceneObject(kind: .concept(left.concept), colour: .orange, size: .medium, position: [0.25, 0.5]),
                    SceneObject(kind: .concept(right.concept), colour: .orange, size: .medium, position: [0.75, 0.5]),
                ])
                let truthReading = try Self.read(try ProbeFrame(side: renderer.side, pixels: renderer.render(truth)[0]), probe)
                var row: [RGBImage] = []
                for method in methods {
                    // A fresh model for every picture (merging folds weights in and out, and the
                    // adapters stay attached), so no picture depends on the ones before it.
                    let pipeline = try TextToVideoPipeline.load(folder: model)
                    let plan = try ComposePlan(method: method, prompt: prompt, choices: [left.choice, right.choice], regions: [], conceptPrompts: [])
                    let (adapters, concepts) = try ComposeRunner.load(plan, on: pipeline)
                    let settings = CompositionSettings(prompt: prompt, frames: 1, steps: steps, guidance: guidance, seed: imageSeed)
                    let started = Date()
                    let result = try ComposeRunner.run(method, pipeline: pipeline, adapters: adapters, concepts: concepts,
                                                       settings: settings, recordsAttention: false, tokens: { _ in }) { _, _, _ in }
                    let seconds = Date().timeIntervalSince(started)
                    let image = try RGBImage(chwFloats: result.frames[0].values, width: result.frames[0].shape[2], height: result.frames[0].shape[1])
                    let reading = try Self.read(try ProbeFrame(side: image.width, pixels: image.pixels), probe)
                    samples.append(ComposeEvalReport.Sample(method: method.rawValue, prompt: prompt, seed: imageSeed,
                                                            left: left.concept, right: right.concept,
                                                            readLeft: reading.left.description, readRight: reading.right.description,
                                                            truthLeft: truthReading.left.description, truthRight: truthReading.right.description,
                                                            seconds: seconds))
                    row.append(image)
                    done += 1
                    progress.update(done)
                }
                sheetRows.append(try RGBImage.contactSheet(row, spacing: 2))
                captions.append("\(prompt) (seed \(imageSeed); \(methods.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        let report = ComposeEvalReport(model: model, loras: named.map { "\($0.word)=\($0.choice.path)" }, seeds: seeds, steps: steps,
                                       guidance: guidance, methods: methods.map(\.rawValue), concepts: named.map(\.concept),
                                       samples: samples, seconds: Date().timeIntervalSince(start))
        return try report.write(to: out, sheetName: "eval-compose.png", sheetRows: sheetRows, captions: captions)
    }

    static func read(_ frame: ProbeFrame, _ probe: ConceptProbe) throws -> (left: ConceptReading, right: ConceptReading) {
        let mask = FrameSegmentation(frame).mask
        return (probe.read(frame, mask: mask, box: [0, 0, 0.5, 1]), probe.read(frame, mask: mask, box: [0.5, 0, 1, 1]))
    }
}

/// What `eval compose` measured, per method and per picture, with the bars.
public struct ComposeEvalReport: EvalReport {
    public struct Sample: Encodable {
        public var method: String
        public var prompt: String
        public var seed: UInt64
        public var left: Concept
        public var right: Concept
        public var readLeft: String
        public var readRight: String
        /// The probe's reading of the world's own drawing of the scene.
        public var truthLeft: String
        public var truthRight: String
        public var seconds: Double

        public var placed: Bool { readLeft == left.rawValue && readRight == right.rawValue }
        public var present: Bool { Set([readLeft, readRight]).isSuperset(of: [left.rawValue, right.rawValue]) }
        public var vanished: Bool { !present }
        public var confused: Bool { present && !placed }
        public var truthPlaced: Bool { truthLeft == left.rawValue && truthRight == right.rawValue }

        enum CodingKeys: String, CodingKey {
            case method, prompt, seed, left, right, seconds, placed, present
            case readLeft = "read_left", readRight = "read_right", truthLeft = "truth_left", truthRight = "truth_right"
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(method, forKey: .method); try container.encode(prompt, forKey: .prompt)
            try container.encode(seed, forKey: .seed); try container.encode(left, forKey: .left); try container.encode(right, forKey: .right)
            try container.encode(readLeft, forKey: .readLeft); try container.encode(readRight, forKey: .readRight)
            try container.encode(truthLeft, forKey: .truthLeft); try container.encode(truthRight, forKey: .truthRight)
            try container.encode(placed, forKey: .placed); try container.encode(present, forKey: .present)
            try container.encode(seconds, forKey: .seconds)
        }
    }

    public struct Row: Encodable {
        public var method: String
        public var placed: Double
        public var present: Double
        public var vanished: Double
        public var confused: Double
        /// Per concept: share of its pictures with it read in its own half.
        public var perConcept: [String: Double]
        public var images: Int
        public var secondsPerImage: Double

        enum CodingKeys: String, CodingKey {
            case method, placed, present, vanished, confused, images
            case perConcept = "per_concept", secondsPerImage = "seconds_per_image"
        }
    }

    public typealias Bar = EvalBar

    public var model: String
    public var loras: [String]
    public var seeds: Int
    public var steps: Int
    public var guidance: Float
    public var methods: [String]
    public var concepts: [Concept]
    public var samples: [Sample]
    public var seconds: Double
    /// Per method, and the probe's accuracy on the world's drawings: both read off `samples` once.
    public let rows: [Row]
    public let probeAccuracy: Double

    public static let placedMinimum = 0.7
    public static let marginOverMerge = 0.25

    init(model: String, loras: [String], seeds: Int, steps: Int, guidance: Float, methods: [String], concepts: [Concept],
         samples: [Sample], seconds: Double) {
        (self.model, self.loras, self.seeds, self.steps, self.guidance) = (model, loras, seeds, steps, guidance)
        (self.methods, self.concepts, self.samples, self.seconds) = (methods, concepts, samples, seconds)
        rows = Self.rows(samples, methods: methods, concepts: concepts)
        // The share of scenes whose true drawing the probe reads as asked (each scene once).
        let scenes = samples.filter { $0.method == methods.first }
        probeAccuracy = scenes.share(where: \.truthPlaced)
    }

    static func rows(_ samples: [Sample], methods: [String], concepts: [Concept]) -> [Row] {
        methods.map { method in
            let mine = samples.filter { $0.method == method }
            var perConcept: [String: Double] = [:]
            for concept in concepts {
                var hits = 0, asked = 0
                for sample in mine {
                    if sample.left == concept { asked += 1; if sample.readLeft == concept.rawValue { hits += 1 } }
                    if sample.right == concept { asked += 1; if sample.readRight == concept.rawValue { hits += 1 } }
                }
                if asked > 0 { perConcept[concept.rawValue] = Double(hits) / Double(asked) }
            }
            return Row(method: method, placed: mine.share(where: \.placed), present: mine.share(where: \.present),
                       vanished: mine.share(where: \.vanished), confused: mine.share(where: \.confused), perConcept: perConcept,
                       images: mine.count, secondsPerImage: mine.mean(\.seconds))
        }
    }

    public var bars: [Bar] {
        let byMethod = Dictionary(uniqueKeysWithValues: rows.map { ($0.method, $0) })
        var bars: [Bar] = []
        for method in ["composer", "clora"] {
            guard let row = byMethod[method] else { continue }
            bars.append(Bar(name: "\(method)_placed", requirement: "\(method) placed ≥ \(Self.placedMinimum)",
                            value: row.placed, met: row.placed >= Self.placedMinimum))
            if let merge = byMethod["merge"] {
                let margin = row.placed - merge.placed
                bars.append(Bar(name: "\(method)_above_merge", requirement: "\(method) placed − merge's ≥ \(Self.marginOverMerge)",
                                value: margin, met: margin >= Self.marginOverMerge - 1e-9))
            }
        }
        return bars
    }

    enum CodingKeys: String, CodingKey {
        case model, loras, seeds, steps, guidance, methods, rows, samples, seconds
        case probeAccuracy = "probe_accuracy_on_true_drawings"
    }

    public var summary: String {
        let conceptNames = concepts.map(\.rawValue)
        let cells = rows.map { row in
            [row.method] + [row.placed, row.present, row.vanished, row.confused].map { String(format: "%.2f", $0) }
                + conceptNames.map { name in row.perConcept[name].map { String(format: "%.2f", $0) } ?? "-" }
                + [String(format: "%.1f", row.secondsPerImage)]
        }
        var lines = [TextTable(header: ["method", "placed", "present", "vanished", "confused"] + conceptNames + ["s/image"], rows: cells).text]
        lines.append(String(format: "probe on the world's own drawings of the same scenes: %.2f placed", probeAccuracy))
        return lines.joined(separator: "\n")
    }
}
