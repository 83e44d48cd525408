/// The core world: the base's pretraining distribution, the part of the full world a small model
/// learns first. One object of six shapes with distinct silhouettes and eight colours, medium or
/// large (a medium square, the narrowest, is 0.29 of the frame wide), plain texture, on a plain
/// background of six colours (never the object's), still or moving left, right, up or down.
/// The full world stays in the sampler for later legs and for the reserved (customization) sets;
/// `WorldSampler(distribution: .core)` draws this one.
public enum CoreWorld {
    public static let shapes: [ObjectShape] = [.circle, .square, .triangle, .star, .heart, .cross]
    public static let colours: [NamedColour] = [.red, .orange, .yellow, .green, .blue, .purple, .pink, .white]
    public static let backgroundColours: [NamedColour] = [.black, .gray, .white, .blue, .green, .yellow]
    /// The backgrounds of the core-look concept pictures (the core's, gray aside: the concept scenes
    /// keep off gray and orange), in the order the compose and Break-for-Make evaluations cycle them.
    public static let conceptBackgrounds: [NamedColour] = [.green, .blue, .white, .yellow, .black]
    /// Radii 0.18 and 0.26 of the frame: every core shape is at least a quarter of the frame wide.
    public static let sizes: [ObjectSize] = [.medium, .large]
    public static let motions: [Motion] = [.still, .left, .right, .up, .down]
    /// The full world's fast speed: 0.40 of the frame over a clip, so an 8-frame clip crosses more
    /// than a third of it (the slow 0.22 would not), and a large object's whole path (0.52 wide
    /// plus 0.40) still fits. A 16-frame clip travels the same 0.40, in half steps.
    public static let speed: Speed = .fast

    /// Colour–shape pairs kept out of the core train split for evaluating composition: the full
    /// world's held-out pairs (`WorldSampler.heldOutPairs`) among the core's colours and shapes, so
    /// a base pretrained on the core world and trained further on the full one never sees a pair
    /// either world holds out. One or two per shape: green circle; red and pink square; purple
    /// triangle; orange star; red and pink heart; blue and white cross. Each shape still trains with
    /// six or seven colours and each colour with four to six shapes.
    public static let heldOutPairs: [(NamedColour, ObjectShape)] = WorldSampler.heldOutPairs.filter {
        colours.contains($0.0) && shapes.contains($0.1)
    }

    public static func isHeldOut(_ colour: NamedColour, _ shape: ObjectShape) -> Bool {
        colours.contains(colour) && shapes.contains(shape) && WorldSampler.isHeldOut(colour, shape)
    }
}

/// A part of the core world: the start of a motion stage can draw from it alone (issue 24's
/// curriculum). On many objects the direction word explains little of a clip's loss next to
/// shape and colour, and a model trained on the whole core world read it slowly; on one object
/// moving left or right it is the only thing that varies, and a model learnt to read it in a few
/// hundred steps, then kept reading it on objects that part never showed.
public struct CoreFocus: Equatable, Sendable {
    public var shapes: [ObjectShape]
    public var colours: [NamedColour]
    public var backgroundColours: [NamedColour]
    public var sizes: [ObjectSize]
    public var motions: [Motion]

    public enum Problem: Error, Equatable {
        /// `key` names a word outside the core world's list for it.
        case notInCoreWorld(key: String, word: String, allowed: [String])
        /// The lists leave no sample to draw (`reason` says why).
        case empty(key: String, reason: String)
    }

    /// Lists of names (nil: the core world's whole list for that key), checked against the core
    /// world: keys `shapes`, `colours`, `backgrounds`, `sizes`, `motions`.
    public init(shapes: [String]? = nil, colours: [String]? = nil, backgrounds: [String]? = nil,
                sizes: [String]? = nil, motions: [String]? = nil) throws {
        func pick<T: RawRepresentable>(_ key: String, _ names: [String]?, from all: [T]) throws -> [T] where T.RawValue == String {
            guard let names else { return all }
            guard !names.isEmpty else { throw Problem.empty(key: key, reason: "is empty; leave it out for the core world's whole list") }
            return try names.map { name in
                guard let value = all.first(where: { $0.rawValue == name }) else {
                    throw Problem.notInCoreWorld(key: key, word: name, allowed: all.map(\.rawValue))
                }
                return value
            }
        }
        self.shapes = try pick("shapes", shapes, from: CoreWorld.shapes)
        self.colours = try pick("colours", colours, from: CoreWorld.colours)
        self.backgroundColours = try pick("backgrounds", backgrounds, from: CoreWorld.backgroundColours)
        self.sizes = try pick("sizes", sizes, from: CoreWorld.sizes)
        self.motions = try pick("motions", motions, from: CoreWorld.motions)
        let pairs = self.colours.flatMap { colour in self.shapes.map { (colour, $0) } }.filter { !CoreWorld.isHeldOut($0.0, $0.1) }
        guard !pairs.isEmpty else {
            throw Problem.empty(key: "shapes", reason: "every colour–shape pair of the lists is held out for evaluation")
        }
        guard pairs.contains(where: { pair in self.backgroundColours.contains { $0 != pair.0 } }) else {
            throw Problem.empty(key: "backgrounds", reason: "no background differs from the object's colour")
        }
    }
}
