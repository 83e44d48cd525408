import Tensor

/// Trains the shape classifier on world renders, as `customize eval train-probe` does.
///
/// Examples are objects found by the probes' own segmentation in renders of the train split (one
/// and two objects, every texture and background), so the classifier learns the silhouettes the
/// segmentation really produces. Half the renders are degraded (pixel noise, a box blur) the way
/// a decoded latent is, so generated frames do not surprise it. Validation uses the held-out split.
public struct ShapeClassifierTraining: Sendable {
    public var seed: UInt64 = 0
    public var trainImages = 6000
    public var validationImages = 1000
    public var hidden = 128
    public var steps = 8000
    public var batchSize = 128
    public var learningRate: Float = 3e-3

    public init() {}

    public struct Report: Sendable {
        public var classifier: ShapeClassifier
        public var trainAccuracy: Float
        /// On clean renders of the held-out split.
        public var validationAccuracy: Float
        /// On degraded renders of the held-out split.
        public var degradedValidationAccuracy: Float
        public var examples: Int
    }

    public func run(progress: (_ stage: String, _ done: Int, _ total: Int) -> Void = { _, _, _ in }) throws -> Report {
        let sampler = WorldSampler(seed: seed)
        let train = Self.examples((0..<trainImages).map { sampler.image(.train, index: $0) }, degrade: { $0 % 2 == 1 },
                                  seed: seed) { progress("render", $0, trainImages) }
        let validation = Self.examples((0..<validationImages).map { sampler.image(.heldout, index: $0) }, degrade: { _ in false }, seed: seed) { _ in }
        let degraded = Self.examples((0..<validationImages).map { sampler.image(.heldout, index: $0) }, degrade: { _ in true }, seed: seed &+ 1) { _ in }

        var generator = RandomGenerator(seed: seed, stream: 0x5A)
        let w1 = generator.normal([hidden, ShapeFeatures.count], std: (2 / Float(ShapeFeatures.count)).squareRoot())
        let b1 = Tensor(zeros: [hidden])
        let w2 = generator.normal([ObjectShape.allCases.count, hidden], std: (1 / Float(hidden)).squareRoot())
        let b2 = Tensor(zeros: [ObjectShape.allCases.count])
        let parameters = [w1, b1, w2, b2]
        for parameter in parameters { parameter.requiresGrad = true }
        let optimizer = try AdamW(parameters: parameters, learningRate: learningRate, weightDecay: 1e-4)
        let classes = ObjectShape.allCases.count
        var picker = SplitMix(seed: seed, stream: 0xB47C, index: 0)
        for step in 0..<steps {
            var inputs: [Float] = [], targets = [Float](repeating: 0, count: batchSize * classes)
            inputs.reserveCapacity(batchSize * ShapeFeatures.count)
            for row in 0..<batchSize {
                let example = train[picker.below(train.count)]
                inputs += example.features
                targets[row * classes + example.label] = 1
            }
            let x = try Tensor(shape: [batchSize, ShapeFeatures.count], values: inputs)
            let hiddenActivations = try Tensor.linear(x, weight: w1, bias: b1).relu()
            let logProbabilities = try Tensor.linear(hiddenActivations, weight: w2, bias: b2).logSoftmax(axis: -1)
            let loss = try (logProbabilities * Tensor(shape: [batchSize, classes], values: targets)).sum() * (-1 / Float(batchSize))
            optimizer.zeroGrad()
            try loss.backward()
            // Cosine decay to a tenth: the last steps settle the boundaries.
            let progressFraction = Float(step) / Float(Swift.max(steps - 1, 1))
            optimizer.groups[0].learningRate = learningRate * (0.1 + 0.9 * 0.5 * (1 + cosf(Float.pi * progressFraction)))
            try optimizer.step()
            if step % 100 == 99 || step == steps - 1 { progress("train", step + 1, steps) }
        }
        let classifier = try ShapeClassifier(weights: ["hidden.weight": w1.detached(), "hidden.bias": b1.detached(),
                                                       "output.weight": w2.detached(), "output.bias": b2.detached()])
        func accuracy(_ examples: [Example]) -> Float {
            guard !examples.isEmpty else { return 0 }
            let correct = examples.filter { classifier.classify($0.features).shape == ObjectShape.allCases[$0.label] }.count
            return Float(correct) / Float(examples.count)
        }
        return Report(classifier: classifier, trainAccuracy: accuracy(train), validationAccuracy: accuracy(validation),
                      degradedValidationAccuracy: accuracy(degraded), examples: train.count)
    }

    struct Example {
        var features: [Float]
        var label: Int
    }

    static func examples(_ samples: [WorldSample], degrade: (Int) -> Bool, seed: UInt64, progress: (Int) -> Void) -> [Example] {
        let renderer = Renderer()
        var result: [Example] = []
        for (index, sample) in samples.enumerated() {
            var pixels = renderer.render(sample.spec)[0]
            if degrade(index) { pixels = Degradation.apply(pixels, side: renderer.side, seed: seed, index: UInt64(index)) }
            guard let frame = try? ProbeFrame(side: renderer.side, pixels: pixels) else { continue }
            let segmentation = FrameSegmentation(frame)
            for object in sample.spec.objects {
                guard case let .shape(shape) = object.kind, let found = segmentation.object(coloured: object.colour) else { continue }
                result.append(Example(features: ShapeFeatures.features(of: found, side: renderer.side),
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
