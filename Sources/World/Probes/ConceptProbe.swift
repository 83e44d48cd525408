import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the concept classifier sees of a foreground piece: its bounding square resampled to a
/// 12×12 grid of mean colour and coverage (background counts as black, uncovered), plus its
/// aspect ratio. Colour matters here, unlike for plain shapes: a cat and an orange circle can
/// have similar outlines, but not the same eyes, nose and stripes.
public enum ConceptFeatures {
    public static let gridSide = 12
    public static let count = gridSide * gridSide * 4 + 1
    /// Samples per grid cell along each axis.
    static let samplesPerCell = 3

    public static func features(_ frame: ProbeFrame, pixels: [Int]) -> [Float] {
        let side = frame.side
        var minX = side, minY = side, maxX = -1, maxY = -1
        for index in pixels {
            let x = index % side, y = index / side
            minX = Swift.min(minX, x); maxX = Swift.max(maxX, x)
            minY = Swift.min(minY, y); maxY = Swift.max(maxY, y)
        }
        var result = [Float](repeating: 0, count: count)
        guard maxX >= minX else { return result }
        let width = maxX - minX + 1, height = maxY - minY + 1
        var inside = [Bool](repeating: false, count: width * height)
        for index in pixels { inside[(index / side - minY) * width + (index % side - minX)] = true }
        let window = Float(Swift.max(width, height))
        let originX = Float(minX) + Float(width) / 2 - window / 2
        let originY = Float(minY) + Float(height) / 2 - window / 2
        let n = gridSide * samplesPerCell
        let weight = 1 / Float(samplesPerCell * samplesPerCell)
        for sy in 0..<n {
            let py = Int((originY + (Float(sy) + 0.5) / Float(n) * window).rounded(.down))
            guard py >= minY, py <= maxY else { continue }
            for sx in 0..<n {
                let px = Int((originX + (Float(sx) + 0.5) / Float(n) * window).rounded(.down))
                guard px >= minX, px <= maxX, inside[(py - minY) * width + (px - minX)] else { continue }
                let cell = ((sy / samplesPerCell) * gridSide + sx / samplesPerCell) * 4
                let colour = frame.colour(x: px, y: py)
                result[cell] += colour.x * weight
                result[cell + 1] += colour.y * weight
                result[cell + 2] += colour.z * weight
                result[cell + 3] += weight
            }
        }
        result[count - 1] = log(Float(width) / Float(height))
        return result
    }
}

/// What the concept probe read in one box of a frame.
public enum ConceptReading: Equatable, Sendable, CustomStringConvertible {
    /// No foreground in the box.
    case nothing
    /// Something that is none of the concepts (a plain shape, a smudge).
    case other
    case concept(Concept)

    public var description: String {
        switch self {
        case .nothing: return "nothing"
        case .other: return "other"
        case let .concept(concept): return concept.rawValue
        }
    }
}

/// Names the reserved concept in a box of a frame, for composition evaluation.
///
/// The foreground (pixels far from the fitted background) is restricted to the box; its
/// 8-connected pieces of at least `FrameSegmentation.minimumArea` pixels, dropping those under a
/// fifth of the largest, form the thing in the box, which the classifier names. The classifier
/// (labels: the concepts, then "other") is stored beside the model as
/// `probes/concept-classifier.safetensors`.
public struct ConceptProbe: Sendable {
    public let network: MLPClassifier

    public static let name = "concept classifier"
    public static let labels = Concept.allCases.map(\.rawValue) + ["other"]

    public init(weights: [String: Tensor]) throws {
        network = try MLPClassifier(name: Self.name, labels: Self.labels, featureCount: ConceptFeatures.count, weights: weights)
    }

    public init(network: MLPClassifier) { self.network = network }

    /// The pixels of the thing inside `box` (canvas units: x0, y0, x1, y1), given the frame's
    /// foreground mask.
    public static func piece(mask: [Bool], side: Int, box: SIMD4<Float>) -> [Int] {
        var inBox = [Bool](repeating: false, count: mask.count)
        for y in 0..<side {
            let cy = (Float(y) + 0.5) / Float(side)
            guard cy >= box.y, cy <= box.w else { continue }
            for x in 0..<side where mask[y * side + x] {
                let cx = (Float(x) + 0.5) / Float(side)
                if cx >= box.x, cx <= box.z { inBox[y * side + x] = true }
            }
        }
        let pieces = FrameSegmentation.components(inBox, side: side).filter { $0.count >= FrameSegmentation.minimumArea }
        guard let largest = pieces.map(\.count).max() else { return [] }
        return pieces.filter { 5 * $0.count >= largest }.flatMap { $0 }.sorted()
    }

    public func read(_ frame: ProbeFrame, mask: [Bool], box: SIMD4<Float>) -> ConceptReading {
        let pixels = Self.piece(mask: mask, side: frame.side, box: box)
        guard !pixels.isEmpty else { return .nothing }
        return reading(network.classify(ConceptFeatures.features(frame, pixels: pixels)).index)
    }

    public func read(_ frame: ProbeFrame, box: SIMD4<Float>) -> ConceptReading {
        read(frame, mask: FrameSegmentation(frame).mask, box: box)
    }

    func reading(_ label: Int) -> ConceptReading {
        label < Concept.allCases.count ? .concept(Concept.allCases[label]) : .other
    }
}

/// Trains the concept classifier on world renders: each render holds two things side by side
/// (concepts or plain shapes of any colour and texture; a third of the renders in a reserved
/// style) and each half is one example, cut out
/// exactly as `ConceptProbe` cuts a composition's region. Half the renders are roughened like
/// decoded latents. Validation renders use another seed.
public struct ConceptProbeTraining: WorldProbeTraining, Sendable {
    public var seed: UInt64 = 0
    public var trainImages = 3000
    public var validationImages = 500
    public var steps = 6000
    public var hidden = 128

    public init() {}

    public func run(progress: (_ stage: String, _ done: Int, _ total: Int) -> Void = { _, _, _ in }) throws -> ProbeTrainingReport {
        let train = Self.examples(count: trainImages, seed: seed, stream: 0xC0C0, degrade: { $0 % 2 == 1 }) { progress("render", $0, trainImages) }
        let validation = Self.examples(count: validationImages, seed: seed, stream: 0xC0C1, degrade: { _ in false }) { _ in }
        let degraded = Self.examples(count: validationImages, seed: seed, stream: 0xC0C2, degrade: { _ in true }) { _ in }
        var training = MLPClassifierTraining()
        training.seed = seed
        training.steps = steps
        training.hidden = hidden
        let network = try training.train(train, name: ConceptProbe.name, labels: ConceptProbe.labels,
                                         featureCount: ConceptFeatures.count) { progress("train", $0, $1) }
        return ProbeTrainingReport(network: network, train: train, validation: validation, degraded: degraded)
    }

    /// A two-thing scene: each side holds a concept (half the time) or a plain shape.
    static func scene(_ random: inout SplitMix) -> (SceneSpec, labels: [Int]) {
        var objects: [SceneObject] = [], labels: [Int] = []
        for side in 0..<2 {
            let x = (side == 0 ? 0.25 : 0.75) + random.uniform(-0.06, 0.06)
            let position = SIMD2<Float>(x, random.uniform(0.3, 0.7))
            let size = [ObjectSize.medium, .large, .small][random.below(random.chance(0.8) ? 2 : 3)]
            if random.chance(0.5) {
                let index = random.below(Concept.allCases.count)
                objects.append(SceneObject(kind: .concept(Concept.allCases[index]), colour: .orange, size: size, position: position))
                labels.append(index)
            } else {
                let shape = ObjectShape.allCases[random.below(ObjectShape.allCases.count)]
                let colour = NamedColour.allCases[random.below(NamedColour.allCases.count)]
                objects.append(SceneObject(kind: .shape(shape), colour: colour, size: size,
                                           texture: WorldSampler.texture(random.below(Texture.allCases.count), for: shape),
                                           position: position, rotation: random.uniform(-0.4, 0.4)))
                labels.append(Concept.allCases.count)
            }
        }
        // The world keeps backgrounds off an object's colour, and off the concepts' fur colours.
        var avoid = Set<NamedColour>()
        for object in objects {
            if case .shape = object.kind { avoid.insert(object.colour) } else { avoid.formUnion([.orange, .brown, .gray]) }
        }
        var colour: NamedColour
        repeat { colour = NamedColour.allCases[random.below(NamedColour.allCases.count)] } while avoid.contains(colour)
        let background = Background(kind: BackgroundKind.allCases[random.below(BackgroundKind.allCases.count)], colour: colour)
        // A third of the scenes are drawn in one of the reserved styles, so a concept is still
        // named in neon, pixel art or sketch (eval b4m renders concepts in a style).
        let style: Style? = random.chance(1.0 / 3) ? Style.allCases[random.below(Style.allCases.count)] : nil
        return (SceneSpec(background: background, objects: objects, style: style), labels)
    }

    static let halves: [SIMD4<Float>] = [[0, 0, 0.5, 1], [0.5, 0, 1, 1]]

    static func examples(count: Int, seed: UInt64, stream: UInt64, degrade: (Int) -> Bool, progress: (Int) -> Void) -> [ProbeExample] {
        let renderer = Renderer()
        var result: [ProbeExample] = []
        for index in 0..<count {
            var random = SplitMix(seed: seed, stream: stream, index: UInt64(index))
            let (spec, labels) = scene(&random)
            var pixels = renderer.render(spec)[0]
            if degrade(index) { pixels = Degradation.apply(pixels, side: renderer.side, seed: seed ^ stream, index: UInt64(index)) }
            guard let frame = try? ProbeFrame(side: renderer.side, pixels: pixels) else { continue }
            let mask = FrameSegmentation(frame).mask
            for (box, label) in zip(halves, labels) {
                let piece = ConceptProbe.piece(mask: mask, side: frame.side, box: box)
                guard !piece.isEmpty else { continue }
                result.append(ProbeExample(features: ConceptFeatures.features(frame, pixels: piece), label: label))
            }
            if index % 500 == 499 { progress(index + 1) }
        }
        return result
    }
}
