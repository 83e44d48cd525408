import Tensor
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the style classifier sees of a frame: the whole frame averaged to a 16×16 grid of colours,
/// plus texture statistics: how the clear colour changes between neighbouring pixels (edges, not
/// noise) spread over the pair's offset from the grid of the renderer's pixel-art blocks (pixel art puts them on
/// the block boundaries, or within one pixel of them when blurred; other drawings spread them
/// evenly), the mean change and the density of clear changes (both high for hatching).
public enum StyleFeatures {
    public static let gridSide = 16
    /// Bins of the change profile across a block.
    static let profileBins = 8
    public static let count = gridSide * gridSide * 3 + profileBins + 2
    /// An L1 colour change between neighbours above this is an edge, not noise.
    static let clearChange: Float = 0.2

    public static func features(_ frame: ProbeFrame) -> [Float] {
        let side = frame.side
        var result = [Float](repeating: 0, count: count)
        var counts = [Float](repeating: 0, count: gridSide * gridSide)
        for y in 0..<side {
            for x in 0..<side {
                let cell = (y * gridSide / side) * gridSide + x * gridSide / side
                let colour = frame.colour(x: x, y: y)
                result[cell * 3] += colour.x; result[cell * 3 + 1] += colour.y; result[cell * 3 + 2] += colour.z
                counts[cell] += 1
            }
        }
        for cell in counts.indices where counts[cell] > 0 {
            for channel in 0..<3 { result[cell * 3 + channel] /= counts[cell] }
        }
        // Where the clear colour changes between neighbours fall relative to the block grid (bin 0
        // straddles a boundary), over horizontal and vertical pairs.
        let block = Swift.max(side / Renderer.pixelBlocksPerSide, 1)
        var clear = [Float](repeating: 0, count: profileBins)
        var total: Float = 0, pairs: Float = 0
        func add(_ change: Float, offset: Int) {
            total += change; pairs += 1
            if change > clearChange { clear[offset * profileBins / block] += 1 }
        }
        for y in 0..<side {
            for x in 0..<side {
                let here = frame.colour(x: x, y: y)
                if x + 1 < side { add(Self.distance(frame.colour(x: x + 1, y: y), here), offset: (x + 1) % block) }
                if y + 1 < side { add(Self.distance(frame.colour(x: x, y: y + 1), here), offset: (y + 1) % block) }
            }
        }
        let clearCount = clear.reduce(0, +)
        let base = gridSide * gridSide * 3
        for bin in clear.indices { result[base + bin] = clearCount > 0 ? clear[bin] / clearCount : 1 / Float(profileBins) }
        result[base + profileBins] = 10 * total / Swift.max(pairs, 1)
        result[base + profileBins + 1] = 10 * clearCount / Swift.max(pairs, 1)
        return result
    }

    /// L1 distance between two colours.
    static func distance(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float {
        let d = a - b
        return Swift.abs(d.x) + Swift.abs(d.y) + Swift.abs(d.z)
    }
}

/// Names the style a frame is drawn in (one of the world's reserved styles, or none), for
/// style-adapter evaluation. Stored beside the model as `probes/style-classifier.safetensors`.
public struct StyleProbe: Sendable {
    public let network: MLPClassifier

    public static let name = "style classifier"
    public static let labels = ["none"] + Style.allCases.map(\.rawValue)

    public init(weights: [String: Tensor]) throws {
        network = try MLPClassifier(name: Self.name, labels: Self.labels, featureCount: StyleFeatures.count, weights: weights)
    }

    public init(network: MLPClassifier) { self.network = network }

    /// The style, or nil for the world's plain drawing.
    public func read(_ frame: ProbeFrame) -> Style? {
        let index = network.classify(StyleFeatures.features(frame)).index
        return index == 0 ? nil : Style.allCases[index - 1]
    }
}

/// Trains the style classifier on world renders: train-split scenes (one or two objects, any
/// background) drawn plainly or in one of the styles, a third of them with a concept in place of
/// the first object; half are roughened like decoded latents. Validation uses held-out scenes.
public struct StyleProbeTraining: WorldProbeTraining, Sendable {
    public var seed: UInt64 = 0
    public var trainImages = 3000
    public var validationImages = 500
    public var steps = 4000
    public var hidden = 64

    public init() {}

    public func run(progress: (_ stage: String, _ done: Int, _ total: Int) -> Void = { _, _, _ in }) throws -> ProbeTrainingReport {
        let train = Self.examples(.train, count: trainImages, seed: seed, degrade: { $0 % 2 == 1 }) { progress("render", $0, trainImages) }
        let validation = Self.examples(.heldout, count: validationImages, seed: seed, degrade: { _ in false }) { _ in }
        let degraded = Self.examples(.heldout, count: validationImages, seed: seed &+ 1, degrade: { _ in true }) { _ in }
        var training = MLPClassifierTraining()
        training.seed = seed
        training.steps = steps
        training.hidden = hidden
        let network = try training.train(train, name: StyleProbe.name, labels: StyleProbe.labels,
                                         featureCount: StyleFeatures.count) { progress("train", $0, $1) }
        return ProbeTrainingReport(network: network, train: train, validation: validation, degraded: degraded)
    }

    static func examples(_ split: Split, count: Int, seed: UInt64, degrade: (Int) -> Bool,
                         progress: (Int) -> Void) -> [ProbeExample] {
        let sampler = WorldSampler(seed: seed)
        let renderer = Renderer()
        var result: [ProbeExample] = []
        for index in 0..<count {
            var spec = sampler.image(split, index: index).spec
            var random = SplitMix(seed: seed, stream: 0x57E1, index: UInt64(index))
            let label = random.below(Style.allCases.count + 1)
            spec.style = label == 0 ? nil : Style.allCases[label - 1]
            if random.chance(1.0 / 3) {
                spec.objects[0].kind = .concept(Concept.allCases[random.below(Concept.allCases.count)])
            }
            var pixels = renderer.render(spec)[0]
            if degrade(index) { pixels = Degradation.apply(pixels, side: renderer.side, seed: seed, index: UInt64(index)) }
            guard let frame = try? ProbeFrame(side: renderer.side, pixels: pixels) else { continue }
            result.append(ProbeExample(features: StyleFeatures.features(frame), label: label))
            if index % 500 == 499 { progress(index + 1) }
        }
        return result
    }
}
