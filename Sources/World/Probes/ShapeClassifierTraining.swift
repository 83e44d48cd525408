import Tensor

/// Trains the shape classifier on world renders, as `customize eval train-probe` does.
///
/// Examples are objects found by the probes' own segmentation in renders of the train split (one
/// and two objects, every texture and background), so the classifier learns the silhouettes the
/// segmentation really produces. Half the renders are degraded (pixel noise, a box blur) the way
/// a decoded latent is, so generated frames do not surprise it. Validation uses the held-out split.
public struct ShapeClassifierTraining: WorldProbeTraining, Sendable {
    public var seed: UInt64 = 0
    public var trainImages = 6000
    public var validationImages = 1000
    public var hidden = 128
    public var steps = 8000
    public var batchSize = 128
    public var learningRate: Float = 3e-3

    public init() {}

    public func run(progress: (_ stage: String, _ done: Int, _ total: Int) -> Void = { _, _, _ in }) throws -> ProbeTrainingReport {
        let sampler = WorldSampler(seed: seed)
        let train = Self.examples((0..<trainImages).map { sampler.image(.train, index: $0) }, degrade: { $0 % 2 == 1 },
                                  seed: seed) { progress("render", $0, trainImages) }
        let validation = Self.examples((0..<validationImages).map { sampler.image(.heldout, index: $0) }, degrade: { _ in false }, seed: seed) { _ in }
        let degraded = Self.examples((0..<validationImages).map { sampler.image(.heldout, index: $0) }, degrade: { _ in true }, seed: seed &+ 1) { _ in }

        var training = MLPClassifierTraining()
        training.seed = seed
        training.hidden = hidden
        training.steps = steps
        training.batchSize = batchSize
        training.learningRate = learningRate
        let network = try training.train(train, name: ShapeClassifier.name, labels: ObjectShape.allCases.map(\.rawValue),
                                         featureCount: ShapeFeatures.count) { progress("train", $0, $1) }
        return ProbeTrainingReport(network: network, train: train, validation: validation, degraded: degraded)
    }

    static func examples(_ samples: [WorldSample], degrade: (Int) -> Bool, seed: UInt64, progress: (Int) -> Void) -> [ProbeExample] {
        let renderer = Renderer()
        var result: [ProbeExample] = []
        for (index, sample) in samples.enumerated() {
            var pixels = renderer.render(sample.spec)[0]
            if degrade(index) { pixels = Degradation.apply(pixels, side: renderer.side, seed: seed, index: UInt64(index)) }
            guard let frame = try? ProbeFrame(side: renderer.side, pixels: pixels) else { continue }
            let segmentation = FrameSegmentation(frame)
            for object in sample.spec.objects {
                guard case let .shape(shape) = object.kind, let found = segmentation.object(coloured: object.colour) else { continue }
                result.append(ProbeExample(features: ShapeFeatures.features(of: found, side: renderer.side),
                                      label: ObjectShape.allCases.firstIndex(of: shape)!))
            }
            if index % 500 == 499 { progress(index + 1) }
        }
        return result
    }
}

/// Roughens a clean render the way decoding a latent does: Gaussian pixel noise and, for half of
/// the frames, a 3×3 box blur. Deterministic in (seed, index).
public enum Degradation {
    public static func apply(_ pixels: [UInt8], side: Int, seed: UInt64, index: UInt64) -> [UInt8] {
        var random = SplitMix(seed: seed, stream: 0xDE6, index: index)
        var values = pixels.map(Float.init)
        if random.chance(0.5) {
            var blurred = values
            for y in 0..<side {
                for x in 0..<side {
                    for channel in 0..<3 {
                        var sum: Float = 0, count: Float = 0
                        for dy in -1...1 {
                            for dx in -1...1 {
                                let nx = x + dx, ny = y + dy
                                guard nx >= 0, ny >= 0, nx < side, ny < side else { continue }
                                sum += values[(ny * side + nx) * 3 + channel]; count += 1
                            }
                        }
                        blurred[(y * side + x) * 3 + channel] = sum / count
                    }
                }
            }
            values = blurred
        }
        let sigma: Float = 8 * random.unit()
        return values.map { value in
            // Box–Muller from two uniforms.
            let u1 = Swift.max(random.unit(), 1e-7), u2 = random.unit()
            let noise = (-2 * log(u1)).squareRoot() * cosf(2 * Float.pi * u2) * sigma
            return UInt8(Swift.min(Swift.max(value + noise, 0), 255).rounded())
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
