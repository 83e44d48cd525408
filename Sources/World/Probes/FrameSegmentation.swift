/// An object the probes found in a frame: the pixels of one colour standing out from the background.
public struct DetectedObject: Sendable {
    public var colour: NamedColour
    /// Share of the colour vote the winning colour took (1: every pixel agreed).
    public var colourShare: Float
    /// Pixel indices (`y * side + x`) of the object.
    public var pixels: [Int]
    /// Centre of mass in canvas units ([0, 1] on both axes, y down).
    public var centroid: SIMD2<Float>
    /// Inclusive pixel bounds.
    public var minX: Int, minY: Int, maxX: Int, maxY: Int

    public var area: Int { pixels.count }
    /// Side of the bounding square, in pixels.
    public var extent: Int { Swift.max(maxX - minX, maxY - minY) + 1 }
}

/// Splits a frame into background and objects.
///
/// Pixels far from the fitted background model form the foreground; its 8-connected pieces are
/// coloured by vote and pieces of one colour are merged (a striped object on a light background
/// can fall apart into its stripes). Specks smaller than `minimumArea`, and objects under 5% of
/// the largest, are dropped as noise.
public struct FrameSegmentation: Sendable {
    public let side: Int
    /// Foreground mask, row-major.
    public let mask: [Bool]
    /// Objects, largest first.
    public let objects: [DetectedObject]

    public static let minimumArea = 8

    public init(_ frame: ProbeFrame) {
        let side = frame.side
        let background = BackgroundModel.fit(frame)
        var mask = [Bool](repeating: false, count: side * side)
        for y in 0..<side {
            let rowY = frame.y(y)
            for x in 0..<side where !background.isBackground(frame.colour(x: x, y: y), x: x, y: y, rowY: rowY) {
                mask[y * side + x] = true
            }
        }
        self.side = side
        self.mask = mask

        // Connected pieces, each coloured by its core (pixels whose neighbours are all foreground:
        // edge pixels are blends with the background).
        var pieces: [(colour: NamedColour, pixels: [Int])] = []
        for piece in Self.components(mask, side: side) where piece.count >= Self.minimumArea {
            let core = piece.filter { Self.isCore($0, mask, side: side) }
            let (colour, _) = ColourProbe.read(frame, pixels: core.count >= 4 ? core : piece)
            pieces.append((colour, piece))
        }
        var merged: [NamedColour: [Int]] = [:]
        for piece in pieces { merged[piece.colour, default: []] += piece.pixels }
        var objects = merged.map { colour, pixels in Self.describe(colour, pixels, frame, mask) }
        objects.sort { $0.area != $1.area ? $0.area > $1.area : $0.colour.rawValue < $1.colour.rawValue }
        if let largest = objects.first?.area {
            objects.removeAll { Float($0.area) < 0.05 * Float(largest) }
        }
        self.objects = objects
    }

    /// The largest object of a colour.
    public func object(coloured colour: NamedColour) -> DetectedObject? {
        objects.first { $0.colour == colour }
    }

    static func describe(_ colour: NamedColour, _ pixels: [Int], _ frame: ProbeFrame, _ mask: [Bool]) -> DetectedObject {
        let side = frame.side
        var sum = SIMD2<Float>(repeating: 0)
        var minX = side, minY = side, maxX = -1, maxY = -1
        for index in pixels {
            let x = index % side, y = index / side
            sum += SIMD2(Float(x) + 0.5, Float(y) + 0.5)
            minX = Swift.min(minX, x); maxX = Swift.max(maxX, x)
            minY = Swift.min(minY, y); maxY = Swift.max(maxY, y)
        }
        let core = pixels.filter { isCore($0, mask, side: side) }
        let share = ColourProbe.read(frame, pixels: core.count >= 4 ? core : pixels).share
        return DetectedObject(colour: colour, colourShare: share, pixels: pixels.sorted(),
                              centroid: sum / Float(pixels.count) / Float(side),
                              minX: minX, minY: minY, maxX: maxX, maxY: maxY)
    }

    static func isCore(_ index: Int, _ mask: [Bool], side: Int) -> Bool {
        let x = index % side, y = index / side
        for dy in -1...1 {
            for dx in -1...1 {
                let nx = x + dx, ny = y + dy
                if nx < 0 || ny < 0 || nx >= side || ny >= side || !mask[ny * side + nx] { return false }
            }
        }
        return true
    }

    /// 8-connected components of the mask, each a list of pixel indices.
    static func components(_ mask: [Bool], side: Int) -> [[Int]] {
        var label = [Int32](repeating: -1, count: mask.count)
        var result: [[Int]] = []
        var stack: [Int] = []
        for start in mask.indices where mask[start] && label[start] < 0 {
            let id = Int32(result.count)
            var members: [Int] = []
            label[start] = id
            stack.append(start)
            while let index = stack.popLast() {
                members.append(index)
                let x = index % side, y = index / side
                for dy in -1...1 {
                    for dx in -1...1 where dx != 0 || dy != 0 {
                        let nx = x + dx, ny = y + dy
                        guard nx >= 0, ny >= 0, nx < side, ny < side else { continue }
                        let neighbour = ny * side + nx
                        if mask[neighbour] && label[neighbour] < 0 {
                            label[neighbour] = id
                            stack.append(neighbour)
                        }
                    }
                }
            }
            result.append(members)
        }
        return result
    }
}
