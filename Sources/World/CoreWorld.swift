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
