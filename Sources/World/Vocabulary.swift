/// The words of the synthetic world. Each enum's raw value is the word used in captions, so the
/// caption grammar, the tokenizer vocabulary and the probes all read from one list.

/// Plain geometric shapes: the objects of pretraining.
public enum ObjectShape: String, CaseIterable, Codable, Sendable {
    case circle, square, triangle, star, ring, cross, diamond, heart, hexagon, crescent
}

/// Sprite-like figures that are not plain shapes: never in pretraining, kept for concept LoRAs.
public enum Concept: String, CaseIterable, Codable, Sendable {
    case cat, dog, robot
}

/// What an object is: a plain shape or a reserved concept.
public enum ObjectKind: Codable, Hashable, Sendable {
    case shape(ObjectShape)
    case concept(Concept)

    public var word: String {
        switch self {
        case let .shape(shape): return shape.rawValue
        case let .concept(concept): return concept.rawValue
        }
    }

    /// Shape and concept words are distinct, so a kind is stored as its word.
    public init?(word: String) {
        if let shape = ObjectShape(rawValue: word) { self = .shape(shape) }
        else if let concept = Concept(rawValue: word) { self = .concept(concept) }
        else { return nil }
    }

    public init(from decoder: Decoder) throws {
        let word = try decoder.singleValueContainer().decode(String.self)
        guard let kind = ObjectKind(word: word) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown object \"\(word)\""))
        }
        self = kind
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(word)
    }
}

/// Named colours, far enough apart that a probe can tell them from pixels.
public enum NamedColour: String, CaseIterable, Codable, Sendable {
    case red, green, blue, yellow, orange, purple, pink, cyan, white, black, brown, gray

    /// sRGB in [0, 1].
    public var rgb: SIMD3<Float> {
        switch self {
        case .red: return [0.86, 0.10, 0.10]
        case .green: return [0.12, 0.68, 0.20]
        case .blue: return [0.12, 0.25, 0.90]
        case .yellow: return [0.96, 0.88, 0.12]
        case .orange: return [0.98, 0.55, 0.08]
        case .purple: return [0.55, 0.18, 0.75]
        case .pink: return [0.98, 0.55, 0.75]
        case .cyan: return [0.15, 0.85, 0.90]
        case .white: return [0.97, 0.97, 0.97]
        case .black: return [0.06, 0.06, 0.06]
        case .brown: return [0.50, 0.30, 0.12]
        case .gray: return [0.52, 0.52, 0.52]
        }
    }
}

public enum ObjectSize: String, CaseIterable, Codable, Sendable {
    case small, medium, large

    /// Object radius as a fraction of the canvas side.
    public var radius: Float {
        switch self {
        case .small: return 0.12
        case .medium: return 0.18
        case .large: return 0.26
        }
    }
}

public enum Texture: String, CaseIterable, Codable, Sendable {
    case plain, striped, dotted, checkered, outlined
}

/// Rendering styles never seen in pretraining, kept for style adapters (Break-for-Make, DECOR).
public enum Style: String, CaseIterable, Codable, Sendable {
    case neon, pixel, sketch
}

public enum BackgroundKind: String, CaseIterable, Codable, Sendable {
    case plain, gradient, grid
}

/// How a clip moves. The first group is seen in pretraining; `reserved` ones are kept for motion LoRAs.
public enum Motion: String, CaseIterable, Codable, Sendable {
    case still, left, right, up, down, upLeft, upRight, downLeft, downRight
    case growing, shrinking, rotating, panLeft, panRight
    case zigzag, orbit, bounce

    public static let reserved: [Motion] = [.zigzag, .orbit, .bounce]
    public static let pretraining: [Motion] = allCases.filter { !reserved.contains($0) }

    public var isReserved: Bool { Motion.reserved.contains(self) }

    /// The caption phrase ("moving left", "camera panning right", "zigzagging").
    public var phrase: String {
        switch self {
        case .still: return "staying still"
        case .left: return "moving left"
        case .right: return "moving right"
        case .up: return "moving up"
        case .down: return "moving down"
        case .upLeft: return "moving up and left"
        case .upRight: return "moving up and right"
        case .downLeft: return "moving down and left"
        case .downRight: return "moving down and right"
        case .growing: return "growing"
        case .shrinking: return "shrinking"
        case .rotating: return "rotating"
        case .panLeft: return "with the camera panning left"
        case .panRight: return "with the camera panning right"
        case .zigzag: return "zigzagging"
        case .orbit: return "orbiting"
        case .bounce: return "bouncing"
        }
    }

    /// Unit direction of travel in image coordinates (y down) for straight motions, else nil.
    public var direction: SIMD2<Float>? {
        let d: Float = 0.7071
        switch self {
        case .left: return [-1, 0]
        case .right: return [1, 0]
        case .up: return [0, -1]
        case .down: return [0, 1]
        case .upLeft: return [-d, -d]
        case .upRight: return [d, -d]
        case .downLeft: return [-d, d]
        case .downRight: return [d, d]
        // A camera panning left makes the scene move right in the frame.
        case .panLeft: return [1, 0]
        case .panRight: return [-1, 0]
        default: return nil
        }
    }
}

public enum Speed: String, CaseIterable, Codable, Sendable {
    case slow, fast

    /// Distance travelled over a whole clip, as a fraction of the canvas side.
    public var travel: Float { self == .slow ? 0.22 : 0.40 }
    public var adverb: String { self == .slow ? "slowly" : "quickly" }
}

/// Every word the world's captions can use, for building the tokenizer vocabulary.
public enum WorldVocabulary {
    public static var words: [String] {
        var words: Set<String> = ["a", "an", "on", "the", "left", "right", "and", "background", "in", "style",
                                  "with", "camera", "panning", "moving", "up", "down", "staying", "still",
                                  "gradient", "grid", "plain"]
        words.formUnion(ObjectShape.allCases.map(\.rawValue))
        words.formUnion(Concept.allCases.map(\.rawValue))
        words.formUnion(NamedColour.allCases.map(\.rawValue))
        words.formUnion(ObjectSize.allCases.map(\.rawValue))
        words.formUnion(Texture.allCases.map(\.rawValue))
        words.formUnion(Style.allCases.map(\.rawValue))
        words.formUnion(Speed.allCases.map(\.adverb))
        for motion in Motion.allCases { words.formUnion(motion.phrase.split(separator: " ").map(String.init)) }
        return words.sorted()
    }
}
