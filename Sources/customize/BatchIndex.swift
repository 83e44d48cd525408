import Evaluation
import Foundation
import Media

/// The index of a `render --prompts` folder: `index.json`, one entry per prompt line with its settings,
/// outputs and status, and `index.png`, a contact sheet with one tile per rendered line. Both are
/// rewritten after every line, so an interrupted batch still has an index of what it finished.
struct BatchIndex {
    static let jsonName = "index.json"
    static let sheetName = "index.png"

    /// One line of the prompt file as `index.json` lists it.
    struct Entry: Encodable {
        enum Status: String, Encodable { case pending, ok, error }

        /// The settings a line resolved to (the command line's defaults with the line's options).
        struct Settings: Encodable {
            var negative: String
            var frames: Int
            var steps: Int
            var guidance: Float
            var seed: UInt64
            var scheduler: String
            var loras: [LoRAChoice]
            var model: String
            var fps: Double
        }

        var line: Int
        var prompt: String
        var status: Status
        /// Why the line failed (status `error`).
        var error: String?
        /// Absent when the line failed before its settings were known.
        var settings: Settings?
        /// Paths relative to the output folder; a folder ends with `/`.
        var outputs: [String]
    }

    /// The tile of a rendered line: its first frame (images) or its middle frame (clips).
    struct Tile {
        var line: Int
        var prompt: String
        var image: RGBImage
    }

    let folder: String
    var entries: [Entry]
    var tiles: [Tile] = []

    func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var json = try encoder.encode(entries)
        json.append(UInt8(ascii: "\n"))
        let jsonPath = folder + "/" + Self.jsonName
        do {
            try json.write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot write '\(jsonPath)': \(error.localizedDescription)")
        }
        guard !tiles.isEmpty else { return }
        let sheetPath = folder + "/" + Self.sheetName
        let staged = folder + "/.index-\(getpid())-\(String(UInt32.random(in: 0 ... UInt32.max), radix: 16)).png"
        defer { try? FileManager.default.removeItem(atPath: staged) }
        let text = [("columns", String(Self.columns(for: tiles.count)))]
            + tiles.enumerated().map { ("tile \($0.offset + 1)", "line \($0.element.line): \($0.element.prompt)") }
        try PNGImage.write(Self.grid(tiles.map(\.image)), to: staged, text: text)
        try RenderOutput.replace(sheetPath, with: staged)
    }

    /// A near-square grid: as many columns as the square root of the count, rounded up.
    static func columns(for count: Int) -> Int {
        max(1, Int(Double(count).squareRoot().rounded(.up)))
    }

    /// Tiles left to right, top to bottom, in cells the size of the largest tile, 2 pixels apart on
    /// black; each row is Media's `contactSheet` of its tiles.
    static func grid(_ tiles: [RGBImage], gap: Int = 2) throws -> RGBImage {
        let columns = Self.columns(for: tiles.count)
        let rows = (tiles.count + columns - 1) / columns
        let cellWidth = tiles.map(\.width).max() ?? 1, cellHeight = tiles.map(\.height).max() ?? 1
        let width = columns * (cellWidth + gap) + gap, height = rows * (cellHeight + gap) + gap
        var grid = try RGBImage(width: width, height: height)
        for row in 0 ..< rows {
            let cells = try tiles[(row * columns) ..< min(tiles.count, (row + 1) * columns)].map { tile in
                tile.width == cellWidth && tile.height == cellHeight ? tile : try padded(tile, width: cellWidth, height: cellHeight)
            }
            let strip = try RGBImage.contactSheet(Array(cells), spacing: gap)
            let top = gap + row * (cellHeight + gap)
            for y in 0 ..< strip.height {
                let source = y * strip.width * 3, destination = ((top + y) * width + gap) * 3
                grid.pixels.replaceSubrange(destination ..< destination + strip.width * 3,
                                            with: strip.pixels[source ..< source + strip.width * 3])
            }
        }
        return grid
    }

    /// `tile` in the top-left corner of a black cell.
    private static func padded(_ tile: RGBImage, width: Int, height: Int) throws -> RGBImage {
        var cell = try RGBImage(width: width, height: height)
        for y in 0 ..< tile.height {
            for x in 0 ..< tile.width { cell[x: x, y: y] = tile[x: x, y: y] }
        }
        return cell
    }
}
