import Foundation
import World

/// What `eval motion` measured: per row (MotionDirector, plain LoRA, base) and per prompt, with the
/// settings and the bars. Printed as a table, or as one JSON object with --json; always written to
/// `<out>/report.json`.
public struct MotionEvalReport: EvalReport {
    /// One render as the probes read it.
    public struct Outcome: Encodable {
        public var found: Bool
        public var colour: NamedColour?
        public var shape: ObjectShape?
        public var fidelity: Float
        /// The probed colour or shape is a clip's instead of the prompt's.
        public var leaked: Bool
        /// The probed colour and shape are both the prompt's.
        public var adherent: Bool
        public var seconds: Double
    }

    public struct Row: Encodable {
        public var name: String
        public var label: String
        /// The adapter file applied (nil for the base model).
        public var adapter: String?
        public var motionFidelity: Double
        public var leakage: Double
        public var adherence: Double
        public var found: Int
        public var prompts: Int
        public var secondsPerClip: Double

        enum CodingKeys: String, CodingKey {
            case name, adapter, leakage, adherence, found, prompts
            case motionFidelity = "motion_fidelity"
            case secondsPerClip = "seconds_per_clip"
        }

        init(name: String, label: String, adapter: String?, outcomes: [Outcome]) {
            self.name = name
            self.label = label
            self.adapter = adapter
            motionFidelity = outcomes.mean { Double($0.fidelity) }
            leakage = outcomes.share(where: \.leaked)
            adherence = outcomes.share(where: \.adherent)
            found = outcomes.filter(\.found).count
            prompts = outcomes.count
            secondsPerClip = outcomes.mean(\.seconds)
        }
    }

    public struct Sample: Encodable {
        public var prompt: MotionEvaluationPrompt
        public var seed: UInt64
        /// Keyed by row name.
        public var outcomes: [String: Outcome]
    }

    public struct ClipSummary: Encodable {
        public var name: String
        public var caption: String
        public var colour: NamedColour?
        public var shape: ObjectShape?
        /// The clip's own trajectory against the reference (the probes' sanity check).
        public var fidelity: Float
    }

    public typealias Bar = EvalBar

    public var model: String
    public var clipsFolder: String
    public var clips: [ClipSummary]
    public var motionPhrase: String
    public var prompts: Int
    public var seed: UInt64
    public var steps: Int
    public var guidance: Float
    public var frames: Int
    public var trainSteps: Int
    public var rank: Int
    public var referenceDisplacements: [Float]
    public var trainingClipsFidelity: Double
    public var rows: [Row]
    public var samples: [Sample]
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case model, clips, prompts, seed, steps, guidance, frames, rank, rows, samples, seconds
        case clipsFolder = "clips_folder"
        case motionPhrase = "motion_phrase"
        case trainSteps = "train_steps"
        case referenceDisplacements = "reference_displacements"
        case trainingClipsFidelity = "training_clips_fidelity"
    }

    /// MotionDirector's motion fidelity must reach this …
    public static let fidelityMinimum = 0.8
    /// … exceed the plain LoRA's (same clips, same budget) by at least this, the dual path's decoupling …
    public static let marginOverPlain = 0.2
    /// … and exceed the base model's by at least this ("clearly above") …
    public static let marginOverBase = 0.2
    /// … while its renders take the clips' colour or shape at most this often.
    public static let leakageMaximum = 0.1

    /// The issue's bars on the rows named motiondirector, plain_lora and base.
    public var bars: [Bar] { Self.bars(rows) }

    public static func bars(_ rows: [Row]) -> [Bar] {
        guard let director = rows.first(where: { $0.name == "motiondirector" }), let plain = rows.first(where: { $0.name == "plain_lora" }),
              let base = rows.first(where: { $0.name == "base" }) else { return [] }
        let overPlain = director.motionFidelity - plain.motionFidelity
        let overBase = director.motionFidelity - base.motionFidelity
        return [
            Bar(name: "motion_fidelity", requirement: "MotionDirector motion fidelity ≥ \(fidelityMinimum)",
                value: director.motionFidelity, met: director.motionFidelity >= fidelityMinimum),
            Bar(name: "above_plain", requirement: "MotionDirector motion fidelity − plain LoRA's ≥ \(marginOverPlain)",
                value: overPlain, met: overPlain >= marginOverPlain - 1e-9),
            Bar(name: "above_base", requirement: "MotionDirector motion fidelity − base's ≥ \(marginOverBase)",
                value: overBase, met: overBase >= marginOverBase - 1e-9),
            Bar(name: "leakage", requirement: "MotionDirector appearance leakage ≤ \(leakageMaximum)",
                value: director.leakage, met: director.leakage <= leakageMaximum + 1e-9),
        ]
    }


    /// The figures `eval motion` prints without --json (before its bars).
    public var summary: String {
        var lines: [String] = []
        lines.append("motion evaluation: \(clips.count) clip\(clips.count == 1 ? "" : "s") in \(clipsFolder), motion \"\(motionPhrase)\", "
                     + "\(prompts) prompt\(prompts == 1 ? "" : "s") × 3 renders, \(frames) frames, seed \(seed), \(steps) steps, "
                     + "guidance \(Self.format(Double(guidance), digits: 1)), adapters of \(trainSteps) steps at rank \(rank), "
                     + "\(Self.format(seconds, digits: 0)) s")
        let own = clips.map { "\($0.name) \(Self.format(Double($0.fidelity)))" }.joined(separator: ", ")
        lines.append("the probes on the training clips: motion fidelity \(Self.format(trainingClipsFidelity)) (\(own))")
        lines.append("row              motion fidelity   leakage   adherence   found    s/clip")
        for row in rows {
            lines.append(row.label.padding(toLength: 17, withPad: " ", startingAt: 0)
                         + Self.format(row.motionFidelity).padding(toLength: 18, withPad: " ", startingAt: 0)
                         + Self.format(row.leakage).padding(toLength: 10, withPad: " ", startingAt: 0)
                         + Self.format(row.adherence).padding(toLength: 12, withPad: " ", startingAt: 0)
                         + "\(row.found)/\(row.prompts)".padding(toLength: 9, withPad: " ", startingAt: 0)
                         + Self.format(row.secondsPerClip, digits: 2))
        }
        return lines.joined(separator: "\n")
    }

    static func format(_ value: Double, digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }
}
