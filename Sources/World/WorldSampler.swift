/// Which part of the world a sample comes from.
public enum Split: String, CaseIterable, Codable, Sendable {
    /// Pretraining: plain shapes, pretraining motions, attribute combinations outside the held-out set.
    case train
    /// Held-out colour–shape combinations, never shown in pretraining (for evaluating composition).
    case heldout
    /// Reserved motions, concepts and styles, never in pretraining, kept for customization.
    case reserved
}

/// A rendered-to-be sample: its full description and its caption.
public struct WorldSample: Codable, Hashable, Sendable {
    public var spec: SceneSpec
    public var caption: String
    public var split: Split
}

/// Draws scenes deterministically: sample `index` of a split depends only on (seed, split, index)
/// (and the distribution).
public struct WorldSampler: Sendable {
    /// Which world the train and heldout splits draw from; the reserved split and the
    /// customization sets are the full world's under both.
    public enum Distribution: String, CaseIterable, Codable, Sendable {
        /// Everything: one or two objects, ten shapes, twelve colours, three sizes, textures,
        /// gradient and grid backgrounds, fourteen motions at two speeds.
        case full
        /// `CoreWorld`: the base's pretraining distribution.
        case core
        /// `CoreWorld` with each moving object starting on the side it moves away from (a pilot of
        /// issue 24: the motion word then also tells where the object starts, as colour and
        /// background words tell what the frame holds). The same draws as `core` otherwise.
        case coreTiedStart = "core-tied-start"

        /// Whether the train and heldout splits are the core world's.
        public var isCore: Bool { self != .full }
    }

    public var seed: UInt64
    /// Frames per clip (8 by default, 16 as an option).
    public var clipFrames: Int
    public var distribution: Distribution
    /// Under a core distribution, the train split draws from this part of the core world alone.
    public var focus: CoreFocus?

    public init(seed: UInt64 = 0, clipFrames: Int = 8, distribution: Distribution = .full) {
        self.seed = seed
        self.clipFrames = clipFrames
        self.distribution = distribution
    }

    /// Colour–shape pairs kept out of pretraining: two colours per shape, spread over the palette.
    public static func isHeldOut(_ colour: NamedColour, _ shape: ObjectShape) -> Bool {
        let c = NamedColour.allCases.firstIndex(of: colour)!, s = ObjectShape.allCases.firstIndex(of: shape)!
        let count = NamedColour.allCases.count
        return c == (s * 5 + 1) % count || c == (s * 5 + 7) % count
    }

    public static let heldOutPairs: [(NamedColour, ObjectShape)] = ObjectShape.allCases.flatMap { shape in
        NamedColour.allCases.filter { isHeldOut($0, shape) }.map { ($0, shape) }
    }

    /// A still image (one frame).
    public func image(_ split: Split, index: Int) -> WorldSample {
        sample(split, index: index, frames: 1)
    }

    /// A clip of `clipFrames` frames.
    public func clip(_ split: Split, index: Int) -> WorldSample {
        sample(split, index: index, frames: clipFrames)
    }

    func sample(_ split: Split, index: Int, frames: Int) -> WorldSample {
        let isCore = distribution.isCore && split != .reserved
        // The core world draws from streams of its own, so its samples are not the full world's
        // first draws reinterpreted.
        let stream = UInt64(Split.allCases.firstIndex(of: split)! + 1) << 32 | UInt64(frames) | (isCore ? 1 << 40 : 0)
        var random = SplitMix(seed: seed, stream: stream, index: UInt64(index))
        let spec: SceneSpec
        switch split {
        case .train, .heldout:
            if isCore {
                spec = coreScene(split, frames: frames, &random)
            } else {
                let twoObjects = random.chance(0.25)
                spec = twoObjects ? twoObjectScene(split, frames: frames, &random) : oneObjectScene(split, frames: frames, &random)
            }
        case .reserved:
            switch random.below(frames == 1 ? 2 : 3) {
            case 0: spec = conceptScene(Concept.allCases[random.below(Concept.allCases.count)], frames: frames, &random)
            case 1: spec = styleScene(Style.allCases[random.below(Style.allCases.count)], frames: frames, &random)
            default: spec = motionScene(Motion.reserved[random.below(Motion.reserved.count)], frames: frames, &random)
            }
        }
        return WorldSample(spec: spec, caption: Captions.caption(spec), split: split)
    }

    // MARK: Customization sets (all from the reserved split's ingredients)

    /// Images of one concept in varied places, sizes and backgrounds (for a concept LoRA). Under a
    /// core distribution the customization sets take the core world's look (`coreLook`), so that an
    /// adapter for a core-world base learns its concept, style or motion, not backgrounds and
    /// textures the base never drew.
    public func conceptImages(_ concept: Concept, count: Int) -> [WorldSample] {
        (0..<count).map { index in
            var random = SplitMix(seed: seed, stream: 0xC0 + UInt64(Concept.allCases.firstIndex(of: concept)!), index: UInt64(index))
            let spec = conceptScene(concept, frames: 1, coreLook: distribution.isCore, &random)
            return WorldSample(spec: spec, caption: Captions.caption(spec), split: .reserved)
        }
    }

    /// Images of varied shapes in one style (for a style adapter), or of one `content` (colour and
    /// shape) in varied places, sizes and backgrounds: a style reference whose content can leak.
    public func styleImages(_ style: Style, count: Int, content: (NamedColour, ObjectShape)? = nil) -> [WorldSample] {
        (0..<count).map { index in
            var random = SplitMix(seed: seed, stream: 0x5700 + UInt64(Style.allCases.firstIndex(of: style)!), index: UInt64(index))
            let spec = styleScene(style, frames: 1, content: content, coreLook: distribution.isCore, &random)
            return WorldSample(spec: spec, caption: Captions.caption(spec), split: .reserved)
        }
    }

    /// Clips of one motion with varied subjects (for a motion adapter).
    public func motionClips(_ motion: Motion, count: Int) -> [WorldSample] {
        (0..<count).map { index in
            var random = SplitMix(seed: seed, stream: 0x3000 + UInt64(Motion.allCases.firstIndex(of: motion)!), index: UInt64(index))
            let spec = motionScene(motion, frames: clipFrames, coreLook: distribution.isCore, &random)
            return WorldSample(spec: spec, caption: Captions.caption(spec), split: motion.isReserved ? .reserved : .train)
        }
    }

    // MARK: Scene construction

    /// The texture drawn as `choice`, except that a ring is never outlined: a ring already is an
    /// outline, and an outlined ring would look exactly like an outlined circle.
    static func texture(_ choice: Int, for shape: ObjectShape) -> Texture {
        let texture = Texture.allCases[choice]
        return shape == .ring && texture == .outlined ? .plain : texture
    }

    func pickColourShape(_ split: Split, _ random: inout SplitMix) -> (NamedColour, ObjectShape) {
        if split == .heldout {
            return WorldSampler.heldOutPairs[random.below(WorldSampler.heldOutPairs.count)]
        }
        while true {
            let colour = NamedColour.allCases[random.below(NamedColour.allCases.count)]
            let shape = ObjectShape.allCases[random.below(ObjectShape.allCases.count)]
            if !WorldSampler.isHeldOut(colour, shape) { return (colour, shape) }
        }
    }

    func background(avoiding colours: [NamedColour], _ random: inout SplitMix, kinds: [BackgroundKind] = BackgroundKind.allCases) -> Background {
        var colour: NamedColour
        repeat { colour = NamedColour.allCases[random.below(NamedColour.allCases.count)] } while colours.contains(colour)
        return Background(kind: kinds[random.below(kinds.count)], colour: colour)
    }

    /// The starts (per axis, low...high) from which the whole motion stays inside the canvas.
    func startRange(for object: SceneObject, frames: Int, region: ClosedRange<Float> = 0...1) -> (low: SIMD2<Float>, high: SIMD2<Float>) {
        var low = SIMD2<Float>(region.lowerBound, 0), high = SIMD2<Float>(region.upperBound, 1)
        let margin = object.size.radius * (object.motion == .growing || object.motion == .shrinking ? 1.3 : 1)
        low += margin; high -= margin
        if frames > 1 {
            // Shift the range by the extremes of the path relative to the start.
            var minOffset = SIMD2<Float>(repeating: 0), maxOffset = SIMD2<Float>(repeating: 0)
            var probe = object
            probe.position = [0, 0]
            for step in 0...16 {
                let centre = probe.pose(at: Float(step) / 16).centre
                minOffset = pointwiseMin(minOffset, centre)
                maxOffset = pointwiseMax(maxOffset, centre)
            }
            low -= minOffset; high -= maxOffset
        }
        return (low, high)
    }

    /// A start position from which the whole motion stays inside the canvas.
    func startPosition(for object: SceneObject, frames: Int, region: ClosedRange<Float> = 0...1, _ random: inout SplitMix) -> SIMD2<Float> {
        let (low, high) = startRange(for: object, frames: frames, region: region)
        return SIMD2(random.uniform(low.x, Swift.max(low.x, high.x)), random.uniform(low.y, Swift.max(low.y, high.y)))
    }

    /// The start of a moving object's path at the far side of the frame from its direction (the
    /// extreme `startPosition` allows, moved inwards by up to 0.03 of the frame), keeping the
    /// other coordinate.
    func tiedStart(for object: SceneObject, frames: Int, _ random: inout SplitMix) -> SIMD2<Float> {
        var probe = object
        probe.position = [0, 0]
        let direction = probe.pose(at: 1).centre
        let (low, high) = startRange(for: object, frames: frames)
        let inwards = random.uniform(0, 0.03)
        var position = object.position
        for axis in 0..<2 where abs(direction[axis]) > 1e-6 {
            position[axis] = direction[axis] > 0 ? Swift.min(high[axis], low[axis] + inwards) : Swift.max(low[axis], high[axis] - inwards)
        }
        return position
    }

    func oneObjectScene(_ split: Split, frames: Int, _ random: inout SplitMix) -> SceneSpec {
        let (colour, shape) = pickColourShape(split, &random)
        var object = SceneObject(kind: .shape(shape), colour: colour,
                                 size: ObjectSize.allCases[random.below(3)],
                                 texture: Self.texture(random.below(Texture.allCases.count), for: shape),
                                 rotation: 0)
        if frames > 1 {
            object.motion = Motion.pretraining[random.below(Motion.pretraining.count)]
            object.speed = Speed.allCases[random.below(2)]
        }
        object.position = startPosition(for: object, frames: frames, &random)
        let isPan = object.motion == .panLeft || object.motion == .panRight
        let bg = background(avoiding: [colour], &random, kinds: isPan ? [.grid, .gradient] : BackgroundKind.allCases)
        return SceneSpec(background: bg, objects: [object], frames: frames)
    }

    /// One `CoreWorld` object: a core colour–shape pair (held-out pairs only in `heldout`, never
    /// in `train`), medium or large, plain, on a plain background of a core background colour other
    /// than its own; in a clip, still or moving left, right, up or down at the core speed, from a
    /// start that keeps the whole path inside the frame.
    func coreScene(_ split: Split, frames: Int, _ random: inout SplitMix) -> SceneSpec {
        let focus = split == .train ? self.focus : nil
        let colours = focus?.colours ?? CoreWorld.colours, shapes = focus?.shapes ?? CoreWorld.shapes
        let sizes = focus?.sizes ?? CoreWorld.sizes, motions = focus?.motions ?? CoreWorld.motions
        var colour: NamedColour, shape: ObjectShape
        if split == .heldout {
            (colour, shape) = CoreWorld.heldOutPairs[random.below(CoreWorld.heldOutPairs.count)]
        } else {
            // A focus's colour may have no background of its own list besides itself: draw again.
            (colour, shape) = coreColourShape(colours: colours, shapes: shapes, &random) { colour in
                focus?.backgroundColours.contains { $0 != colour } ?? true
            }
        }
        var object = SceneObject(kind: .shape(shape), colour: colour, size: sizes[random.below(sizes.count)], texture: .plain)
        if frames > 1 {
            object.motion = motions[random.below(motions.count)]
            object.speed = CoreWorld.speed
        }
        object.position = startPosition(for: object, frames: frames, &random)
        let background = coreBackground(from: focus?.backgroundColours ?? CoreWorld.backgroundColours, avoiding: [colour], &random)
        if distribution == .coreTiedStart, frames > 1, object.motion != .still {
            object.position = tiedStart(for: object, frames: frames, &random)
        }
        return SceneSpec(background: background, objects: [object], frames: frames)
    }

    func twoObjectScene(_ split: Split, frames: Int, _ random: inout SplitMix) -> SceneSpec {
        let sideMotions: [Motion] = [.still, .up, .down, .growing, .shrinking, .rotating]
        var objects: [SceneObject] = []
        for region: ClosedRange<Float> in [0...0.5, 0.5...1] {
            var (colour, shape) = pickColourShape(split, &random)
            while objects.contains(where: { $0.colour == colour }) { (colour, shape) = pickColourShape(split, &random) }
            var object = SceneObject(kind: .shape(shape), colour: colour, size: [.small, .medium][random.below(2)],
                                     texture: Self.texture(random.below(Texture.allCases.count), for: shape))
            if frames > 1 {
                object.motion = sideMotions[random.below(sideMotions.count)]
                object.speed = .slow
            }
            object.position = startPosition(for: object, frames: frames, region: region, &random)
            objects.append(object)
        }
        return SceneSpec(background: background(avoiding: objects.map(\.colour), &random), objects: objects, frames: frames)
    }

    /// A plain background of one of `choices` (the core background colours by default) outside `colours`.
    func coreBackground(from choices: [NamedColour] = CoreWorld.backgroundColours, avoiding colours: [NamedColour],
                        _ random: inout SplitMix) -> Background {
        let left = choices.filter { !colours.contains($0) }
        return Background(kind: .plain, colour: left[random.below(left.count)])
    }

    /// A colour–shape pair of the lists (the core world's by default) outside the held-out ones and
    /// that `accepts`, drawn colour then shape until one is.
    func coreColourShape(colours: [NamedColour] = CoreWorld.colours, shapes: [ObjectShape] = CoreWorld.shapes,
                         _ random: inout SplitMix, accepts: (NamedColour) -> Bool = { _ in true }) -> (NamedColour, ObjectShape) {
        while true {
            let colour = colours[random.below(colours.count)]
            let shape = shapes[random.below(shapes.count)]
            if !CoreWorld.isHeldOut(colour, shape), accepts(colour) { return (colour, shape) }
        }
    }

    /// `coreLook`: a plain background of a core colour (and, for shapes, a core colour–shape pair,
    /// medium or large, plain, at the core speed) instead of the full world's ingredients.
    func conceptScene(_ concept: Concept, frames: Int, coreLook: Bool = false, _ random: inout SplitMix) -> SceneSpec {
        var object = SceneObject(kind: .concept(concept), colour: .orange, size: [.medium, .large][random.below(2)])
        if frames > 1 {
            object.motion = [.still, .left, .right, .up, .down][random.below(5)]
            object.speed = .slow
        }
        object.position = startPosition(for: object, frames: frames, &random)
        let bg = coreLook ? coreBackground(avoiding: [.orange, .gray], &random) : background(avoiding: [.orange, .brown, .gray], &random)
        return SceneSpec(background: bg, objects: [object], frames: frames)
    }

    func styleScene(_ style: Style, frames: Int, content: (NamedColour, ObjectShape)? = nil, coreLook: Bool = false,
                    _ random: inout SplitMix) -> SceneSpec {
        let picked = coreLook ? coreColourShape(&random) : pickColourShape(.train, &random)
        let (colour, shape) = content ?? picked
        var object = SceneObject(kind: .shape(shape), colour: colour, size: [.medium, .large][random.below(2)])
        if frames > 1 {
            object.motion = [.still, .left, .right, .rotating][random.below(4)]
            object.speed = .slow
        }
        object.position = startPosition(for: object, frames: frames, &random)
        let bg = coreLook ? coreBackground(avoiding: [colour], &random) : background(avoiding: [colour], &random)
        return SceneSpec(background: bg, objects: [object], style: style, frames: frames)
    }

    func motionScene(_ motion: Motion, frames: Int, coreLook: Bool = false, _ random: inout SplitMix) -> SceneSpec {
        if coreLook {
            let (colour, shape) = coreColourShape(&random)
            var object = SceneObject(kind: .shape(shape), colour: colour, size: CoreWorld.sizes[random.below(CoreWorld.sizes.count)],
                                     texture: .plain, motion: motion, speed: CoreWorld.speed)
            object.position = startPosition(for: object, frames: frames, &random)
            return SceneSpec(background: coreBackground(avoiding: [colour], &random), objects: [object], frames: frames)
        }
        let (colour, shape) = pickColourShape(.train, &random)
        var object = SceneObject(kind: .shape(shape), colour: colour, size: [.small, .medium][random.below(2)],
                                 texture: Self.texture(random.below(Texture.allCases.count), for: shape),
                                 motion: motion, speed: Speed.allCases[random.below(2)])
        object.position = startPosition(for: object, frames: frames, &random)
        return SceneSpec(background: background(avoiding: [colour], &random), objects: [object], frames: frames)
    }
}

/// SplitMix64: a tiny seeded generator for scene parameters. Each (seed, stream, index) starts an
/// independent sequence, so any sample can be drawn alone, in any order, on any thread.
struct SplitMix {
    var state: UInt64

    init(seed: UInt64, stream: UInt64, index: UInt64) {
        state = seed ^ (stream &* 0x9E37_79B9_7F4A_7C15) ^ (index &* 0xD1B5_4A32_D192_ED03)
        _ = next(); _ = next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * unit() }
    mutating func chance(_ p: Float) -> Bool { unit() < p }
}
