/// How an object moves through a clip, as the probes can tell from its centroid and area.
public enum MotionClass: String, CaseIterable, Codable, Sendable {
    case left, right, up, down, upLeft, upRight, downLeft, downRight
    /// Still or rotating: the centroid stays put and the area does not change much.
    case inPlace
    case growing, shrinking

    /// What a world motion looks like in the frame (a camera panning left moves the scene right);
    /// nil for the reserved motions, whose paths are not straight.
    public init?(_ motion: Motion) {
        switch motion {
        case .still, .rotating: self = .inPlace
        case .growing: self = .growing
        case .shrinking: self = .shrinking
        case .zigzag, .orbit, .bounce: return nil
        default:
            guard let direction = motion.direction else { return nil }
            self = MotionClass(direction: direction)
        }
    }

    /// The nearest of the eight compass directions (y down).
    public init(direction: SIMD2<Float>) {
        let angle = atan2f(-direction.y, direction.x)
        let octant = Int((angle / (Float.pi / 4)).rounded()) & 7
        self = [.right, .upRight, .up, .upLeft, .left, .downLeft, .down, .downRight][octant]
    }

    public var isDirectional: Bool { ![.inPlace, .growing, .shrinking].contains(self) }
}

/// An object's path through a clip: its centroid and area per frame (nil where it was not found).
public struct Trajectory: Codable, Sendable {
    public var centroids: [SIMD2<Float>?]
    public var areas: [Int?]

    /// Net travel over the clip (canvas units), from a least-squares line through the centroids,
    /// so one stray frame does not decide it.
    public var displacement: SIMD2<Float>? {
        let points = centroids.enumerated().compactMap { index, centroid in centroid.map { (Float(index), $0) } }
        guard points.count >= Swift.max(2, (centroids.count + 1) / 2) else { return nil }
        let meanT = points.map(\.0).reduce(0, +) / Float(points.count)
        let meanC = points.map(\.1).reduce(SIMD2<Float>(repeating: 0), +) / Float(points.count)
        var covariance = SIMD2<Float>(repeating: 0), variance: Float = 0
        for (t, c) in points {
            covariance += (t - meanT) * (c - meanC)
            variance += (t - meanT) * (t - meanT)
        }
        guard variance > 0 else { return nil }
        return covariance / variance * Float(centroids.count - 1)
    }

    /// Mean area over the last third of the clip divided by the first third's.
    public var areaRatio: Float? {
        let third = Swift.max(1, areas.count / 3)
        let first = areas.prefix(third).compactMap { $0 }, last = areas.suffix(third).compactMap { $0 }
        guard !first.isEmpty, !last.isEmpty else { return nil }
        let a = Float(first.reduce(0, +)) / Float(first.count), b = Float(last.reduce(0, +)) / Float(last.count)
        return a > 0 ? b / a : nil
    }

    /// Travel below this (canvas units) counts as staying in place; the slowest world motion covers 0.22.
    public static let moveThreshold: Float = 0.08
    /// Travel above this reads as fast (slow covers 0.22 of the canvas, fast 0.40).
    public static let fastThreshold: Float = 0.31

    public var motion: MotionClass? {
        guard let displacement else { return nil }
        let travel = (displacement * displacement).sum().squareRoot()
        if travel >= Self.moveThreshold { return MotionClass(direction: displacement) }
        guard let ratio = areaRatio else { return .inPlace }
        if ratio >= 1.5 { return .growing }
        if ratio <= 1 / 1.5 { return .shrinking }
        return .inPlace
    }

    public var speed: Speed? {
        guard let displacement, motion?.isDirectional == true else { return nil }
        return (displacement * displacement).sum().squareRoot() >= Self.fastThreshold ? .fast : .slow
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
