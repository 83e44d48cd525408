import Foundation

/// Where a concept goes: a box in fractions of the image, x to the right and y downwards
/// (LoRA-Composer's region, which the reference writes as start_h, start_w, end_h, end_w).
public struct ConceptBox: Equatable, Sendable, Codable, CustomStringConvertible {
    public var x0: Double
    public var y0: Double
    public var x1: Double
    public var y1: Double

    public init(x0: Double, y0: Double, x1: Double, y1: Double) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
    }

    public static let fullImage = ConceptBox(x0: 0, y0: 0, x1: 1, y1: 1)

    /// `x0,y0,x1,y1` with no more digits than needed, as the command line takes it.
    public var description: String {
        [x0, y0, x1, y1].map { value in
            let text = String(format: "%.4f", value)
            var trimmed = text
            while trimmed.hasSuffix("0") { trimmed.removeLast() }
            if trimmed.hasSuffix(".") { trimmed.removeLast() }
            return trimmed
        }.joined(separator: ",")
    }

    /// Throws unless every coordinate lies in [0, 1] and the box has an area.
    public func validate(concept: String) throws {
        guard [x0, y0, x1, y1].allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
            throw CompositionError.boxOutOfRange(concept: concept, box: self)
        }
        guard x0 < x1, y0 < y1 else { throw CompositionError.emptyBox(concept: concept, box: self) }
    }

    /// True when the two boxes share an area (touching edges do not count).
    public func overlaps(_ other: ConceptBox) -> Bool {
        x0 < other.x1 && other.x0 < x1 && y0 < other.y1 && other.y0 < y1
    }

    /// The cells of a `height`×`width` grid inside the box, as the reference rounds them: the start
    /// rounded up, the end rounded down (`math.ceil(start·size)`, `math.floor(end·size)`), so a small
    /// box can cover no cell of a coarse grid.
    public func cells(height: Int, width: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        func span(_ start: Double, _ end: Double, _ size: Int) -> Range<Int> {
            let first = min(max(Int((start * Double(size)).rounded(.up)), 0), size)
            let last = min(max(Int((end * Double(size)).rounded(.down)), 0), size)
            return first ..< max(first, last)
        }
        return (span(y0, y1, height), span(x0, x1, width))
    }

    /// 1 inside the box's cells, 0 elsewhere, row-major over `height`×`width`.
    public func mask(height: Int, width: Int) -> [Float] {
        var mask = [Float](repeating: 0, count: height * width)
        let (rows, columns) = cells(height: height, width: width)
        for row in rows { for column in columns { mask[row * width + column] = 1 } }
        return mask
    }

    /// Boxes for `count` concepts side by side when the user gives none (ours): equal columns over
    /// the full width, from 10% to 90% of the height, so that the global prompt keeps a strip of
    /// background above and below and concept isolation has keys outside every box.
    public static func sideBySide(count: Int) -> [ConceptBox] {
        (0 ..< max(count, 0)).map { index in
            ConceptBox(x0: Double(index) / Double(count), y0: 0.1, x1: Double(index + 1) / Double(count), y1: 0.9)
        }
    }
}
