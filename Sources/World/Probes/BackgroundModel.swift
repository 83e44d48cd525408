/// The probes' model of a frame's background, fitted to the pixels along its border.
///
/// The world's backgrounds are a plain colour, a vertical gradient (a colour linear in y) or a
/// grid (a base colour crossed by lines of a second colour), so the model is a colour linear in y
/// plus at most two extra flat colours. Objects may touch the border, so the fit is robust: band
/// medians start it, Tukey-weighted least squares refine it, and an extra colour is accepted only
/// when it covers a large share of the border (grid lines do, an object touching an edge does not).
struct BackgroundModel {
    /// Background colour at height y ∈ [0, 1]: `intercept + slope * y`.
    var intercept: SIMD3<Float>
    var slope: SIMD3<Float>
    var extras: [SIMD3<Float>]
    /// Distance (Euclidean, RGB in [0, 1]) beyond which a pixel is foreground.
    var threshold: Float

    /// Share of border pixels an extra colour must cover.
    static let extraShare: Float = 0.12
    static let minimumThreshold: Float = 0.13
    static let maximumThreshold: Float = 0.25

    func expected(atY y: Float) -> SIMD3<Float> { intercept + slope * y }

    /// Rows and columns that carry lines of an extra colour (grid lines run across the whole
    /// frame, so the border shows where they are); only there may a pixel match an extra colour.
    var lineRows: [Bool] = []
    var lineColumns: [Bool] = []

    func isBackground(_ colour: SIMD3<Float>, x: Int, y: Int, rowY: Float) -> Bool {
        let limit = threshold * threshold
        let base = expected(atY: rowY)
        if distanceSquared(colour, base) < limit { return true }
        guard !extras.isEmpty, lineRows[y] || lineColumns[x] else { return false }
        // Anti-aliased line pixels are blends of the base and the line colour.
        return extras.contains { distanceToSegmentSquared(colour, base, $0) < limit }
    }

    /// Marks line rows from the right border column and line columns from the bottom border row
    /// (the top row and left column are themselves grid lines), widened by a pixel for blends.
    mutating func findLines(_ frame: ProbeFrame) {
        let side = frame.side
        lineRows = [Bool](repeating: false, count: side)
        lineColumns = [Bool](repeating: false, count: side)
        guard !extras.isEmpty else { return }
        func onLine(_ x: Int, _ y: Int) -> Bool {
            let colour = frame.colour(x: x, y: y), base = expected(atY: frame.y(y))
            guard distanceSquared(colour, base) >= threshold * threshold else { return false }
            return extras.contains { distanceToSegmentSquared(colour, base, $0) < threshold * threshold }
        }
        var rows = (0..<side).map { onLine(side - 1, $0) }
        var columns = (0..<side).map { onLine($0, side - 1) }
        rows = rows.indices.map { i in rows[Swift.max(i - 1, 0)...Swift.min(i + 1, side - 1)].contains(true) }
        columns = columns.indices.map { i in columns[Swift.max(i - 1, 0)...Swift.min(i + 1, side - 1)].contains(true) }
        lineRows = rows
        lineColumns = columns
    }

    /// Fits the model to the two outermost rings of pixels of a `side × side` RGB frame.
    static func fit(_ frame: ProbeFrame) -> BackgroundModel {
        let side = frame.side
        var points: [(y: Float, colour: SIMD3<Float>)] = []
        points.reserveCapacity(side * 8)
        for y in 0..<side {
            let edgeColumns = (y < 2 || y >= side - 2) ? Array(0..<side) : [0, 1, side - 2, side - 1]
            for x in edgeColumns { points.append((frame.y(y), frame.colour(x: x, y: y))) }
        }

        // Start: a line through the modes of eight horizontal bands of the side columns. A mode,
        // not a median: in a grid, one side column is a line and its neighbour a blend.
        let bands = 8
        var bandY: [Float] = [], bandColour: [SIMD3<Float>] = [], bandWeight: [Float] = []
        for band in 0..<bands {
            let rows = (band * side / bands)..<((band + 1) * side / bands)
            let colours = rows.flatMap { y in [0, 1, side - 2, side - 1].map { frame.colour(x: $0, y: y) } }
            guard let (colour, support) = mode(colours, radius: 0.06) else { continue }
            bandY.append(frame.y((rows.lowerBound + rows.upperBound) / 2))
            bandColour.append(colour)
            bandWeight.append(Float(support))
        }
        var (intercept, slope) = weightedLine(bandY, bandColour, bandWeight)

        // Refine: Tukey biweight on the distance to the line.
        let scale: Float = 0.15
        for _ in 0..<6 {
            let weights = points.map { point -> Float in
                let r = distanceSquared(point.colour, intercept + slope * point.y).squareRoot() / scale
                return r < 1 ? (1 - r * r) * (1 - r * r) : 0
            }
            guard weights.reduce(0, +) > Float(points.count) * 0.2 else { break }
            (intercept, slope) = weightedLine(points.map(\.y), points.map(\.colour), weights)
        }

        // Threshold from the spread of the inliers: noisy (generated) frames get a wider margin.
        let residuals = points.map { distanceSquared($0.colour, intercept + slope * $0.y).squareRoot() }
        let inliers = residuals.filter { $0 < minimumThreshold }.sorted()
        let spread = inliers.isEmpty ? 0 : inliers[inliers.count / 2]
        let threshold = Swift.min(Swift.max(minimumThreshold, 3 * spread), maximumThreshold)

        // Extra flat colours among the outliers (grid lines).
        var outliers = zip(points, residuals).filter { $0.1 >= threshold }.map(\.0.colour)
        var extras: [SIMD3<Float>] = []
        let tight = (threshold * 0.5) * (threshold * 0.5)
        while extras.count < 2, Float(outliers.count) >= extraShare * Float(points.count) {
            var bestIndex = 0, bestCount = 0
            for (index, candidate) in outliers.enumerated() {
                let count = outliers.reduce(0) { $0 + (distanceSquared($1, candidate) < tight ? 1 : 0) }
                if count > bestCount { bestCount = count; bestIndex = index }
            }
            guard Float(bestCount) >= extraShare * Float(points.count) else { break }
            let centre = outliers[bestIndex]
            let members = outliers.filter { distanceSquared($0, centre) < tight }
            extras.append(members.reduce(SIMD3<Float>(repeating: 0), +) / Float(members.count))
            outliers.removeAll { distanceSquared($0, centre) < tight }
        }
        var model = BackgroundModel(intercept: intercept, slope: slope, extras: extras, threshold: threshold)
        model.findLines(frame)
        return model
    }

    /// Weighted least-squares line colour(y) = a + b y, per channel.
    static func weightedLine(_ ys: [Float], _ colours: [SIMD3<Float>], _ weights: [Float]) -> (SIMD3<Float>, SIMD3<Float>) {
        var sw: Float = 0, sy: Float = 0, syy: Float = 0
        var sc = SIMD3<Float>(repeating: 0), syc = SIMD3<Float>(repeating: 0)
        for i in ys.indices {
            let w = weights[i], y = ys[i]
            sw += w; sy += w * y; syy += w * y * y
            sc += w * colours[i]; syc += (w * y) * colours[i]
        }
        guard sw > 0 else { return (SIMD3(repeating: 0.5), SIMD3(repeating: 0)) }
        let determinant = sw * syy - sy * sy
        // Nearly all weight at one height: a flat colour.
        guard determinant > 1e-6 * sw * sw else { return (sc / sw, SIMD3(repeating: 0)) }
        let slope = (sw * syc - sy * sc) / determinant
        return ((sc - slope * sy) / sw, slope)
    }

    /// The densest colour of a set: the mean of the largest group within `radius` of one member,
    /// with the group's size.
    static func mode(_ colours: [SIMD3<Float>], radius: Float) -> (SIMD3<Float>, Int)? {
        var best: [SIMD3<Float>] = []
        for candidate in colours {
            let group = colours.filter { distanceSquared($0, candidate) < radius * radius }
            if group.count > best.count { best = group }
        }
        guard !best.isEmpty else { return nil }
        return (best.reduce(SIMD3<Float>(repeating: 0), +) / Float(best.count), best.count)
    }
}

@inline(__always)
func distanceToSegmentSquared(_ p: SIMD3<Float>, _ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float {
    let ab = b - a
    let length = (ab * ab).sum()
    guard length > 0 else { return distanceSquared(p, a) }
    let t = Swift.min(Swift.max(((p - a) * ab).sum() / length, 0), 1)
    return distanceSquared(p, a + t * ab)
}

@inline(__always)
func distanceSquared(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float {
    let d = a - b
    return (d * d).sum()
}
