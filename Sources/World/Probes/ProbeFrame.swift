/// One RGB frame as the probes read it: `side × side` pixels, row-major, 3 bytes each (the
/// layout `Renderer` produces and `RGBImage` holds).
public struct ProbeFrame: Sendable {
    public let side: Int
    public let pixels: [UInt8]

    public init(side: Int, pixels: [UInt8]) throws {
        guard side > 4, pixels.count == side * side * 3 else {
            throw ProbeError.badFrame(expected: "\(side)×\(side) RGB (\(side * side * 3) bytes)", got: pixels.count)
        }
        self.side = side
        self.pixels = pixels
    }

    @inline(__always)
    func colour(x: Int, y: Int) -> SIMD3<Float> { colour(at: y * side + x) }

    @inline(__always)
    func colour(at index: Int) -> SIMD3<Float> {
        let i = index * 3
        return SIMD3(Float(pixels[i]), Float(pixels[i + 1]), Float(pixels[i + 2])) / 255
    }

    /// Height of pixel row `row`'s centre in canvas units.
    @inline(__always)
    func y(_ row: Int) -> Float { (Float(row) + 0.5) / Float(side) }
}

public enum ProbeError: Error, CustomStringConvertible {
    case badFrame(expected: String, got: Int)
    case badClassifier(name: String, key: String, reason: String)
    case noExamples(name: String)

    public var description: String {
        switch self {
        case let .badFrame(expected, got): return "a probe frame must be \(expected); got \(got) bytes"
        case let .badClassifier(name, key, reason): return "\(name) weights: \(key): \(reason)"
        case let .noExamples(name): return "\(name): no training examples (the probes found nothing in the renders)"
        }
    }
}
