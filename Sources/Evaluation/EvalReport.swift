import Foundation
import Media

/// A report an evaluation returns, prints with --json and writes to report.json: its own fields,
/// then its bars (derived from its figures, never stored) and whether all were met.
public protocol EvalReport: Encodable {
    var bars: [EvalBar] { get }
    /// The figures as text, without the bars (`table` adds them).
    var summary: String { get }
}

extension EvalReport {
    public var passesBars: Bool { !bars.isEmpty && bars.allSatisfy(\.met) }

    /// What an evaluation prints without --json: the summary, then one line per bar.
    public var table: String { ([summary] + bars.map(\.line)).joined(separator: "\n") }

    /// The report as `eval --json` prints it: its fields, `bars` and `passes_bars`.
    public func json() throws -> Data { try EvalReportWithBars(report: self).evalJSON() }

    /// The end every evaluation with an output folder shares: `report.json` and the sheet
    /// `sheetName` written into `folder`.
    func write(to folder: String, sheetName: String, sheetRows: [RGBImage], captions: [String]) throws -> EvaluationResult<Self> {
        let reportPath = (folder as NSString).appendingPathComponent("report.json")
        let sheetPath = (folder as NSString).appendingPathComponent(sheetName)
        try json().write(to: URL(fileURLWithPath: reportPath), options: .atomic)
        try EvalSheet.write(sheetRows, captions: captions, to: sheetPath)
        return EvaluationResult(report: self, reportPath: reportPath, sheetPath: sheetPath)
    }
}

/// What an evaluation with an output folder returns: its report and the files it wrote there.
public struct EvaluationResult<Report: EvalReport> {
    public var report: Report
    /// `<out>/report.json`: the report as `json()` gives it.
    public var reportPath: String
    /// The sheet of what was rendered, one row per prompt or per way.
    public var sheetPath: String
}

extension Encodable {
    /// Pretty, key-sorted JSON, as every `eval` command prints it; a non-finite figure becomes a
    /// string rather than an error.
    public func evalJSON() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }
}

/// The report's synthesised fields and, in the same JSON object, `bars` and `passes_bars`.
private struct EvalReportWithBars<Report: EvalReport>: Encodable {
    let report: Report

    enum CodingKeys: String, CodingKey {
        case bars
        case passesBars = "passes_bars"
    }

    func encode(to encoder: Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(report.bars, forKey: .bars)
        try container.encode(report.passesBars, forKey: .passesBars)
    }
}

extension Collection {
    /// The share of elements for which `test` holds (0 for none).
    func share(where test: (Element) -> Bool) -> Double {
        Double(filter(test).count) / Double(Swift.max(count, 1))
    }

    /// The mean of `value` over the elements (0 for none).
    func mean(_ value: (Element) -> Double) -> Double {
        reduce(0) { $0 + value($1) } / Double(Swift.max(count, 1))
    }
}

/// One prompt of an evaluation with what each row made of it, keyed by row name.
public struct EvalSample<Outcome: Encodable>: Encodable {
    public var prompt: String
    public var seed: UInt64
    public var outcomes: [String: Outcome]
}

/// One bar of an evaluation: what is required, the measured value and whether it is met.
public struct EvalBar: Encodable {
    public var name: String
    public var requirement: String
    /// Absent when nothing measured it (then the bar counts as missed).
    public var value: Double?
    public var met: Bool

    public init(name: String, requirement: String, value: Double?, met: Bool) {
        self.name = name
        self.requirement = requirement
        self.value = value
        self.met = met
    }

    /// The bar as a line of a report's table.
    public var line: String {
        "bar \(met ? "met   " : "missed") \(requirement): \(value.map { String(format: "%.2f", $0) } ?? "not measured")"
    }
}

/// Rows of cells as aligned text: the first column left-aligned, the others right-aligned.
public struct TextTable {
    public var header: [String]
    public var rows: [[String]]

    public init(header: [String], rows: [[String]]) {
        self.header = header
        self.rows = rows
    }

    public var text: String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return all.map { cells in
            cells.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: max(widths[column] - cell.count, 0))
                return column == 0 ? cell + pad : pad + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// A confusion matrix as an aligned text table.
public struct ConfusionTable {
    public var labels: [String]
    public var counts: [[Int]]

    public init(labels: [String], counts: [[Int]]) {
        self.labels = labels
        self.counts = counts
    }

    public var text: String {
        TextTable(header: ["true \\ read"] + labels, rows: zip(labels, counts).map { [$0] + $1.map(String.init) }).text
    }
}

/// The evaluation sheet: one row per prompt (the model's frames, then the world's), prompts in
/// the PNG's text chunks.
enum EvalSheet {
    static func write(_ rows: [RGBImage], captions: [String], to path: String) throws {
        guard !rows.isEmpty else { return }
        let width = rows.map(\.width).max()!, gap = 2
        var sheet = try RGBImage(width: width, height: rows.reduce(0) { $0 + $1.height + gap }, fill: (255, 255, 255))
        var top = 0
        for row in rows {
            for y in 0..<row.height {
                for x in 0..<row.width { sheet[x: x, y: top + y] = row[x: x, y: y] }
            }
            top += row.height + gap
        }
        try PNGImage.write(sheet, to: path, text: captions.enumerated().map { ("prompt \($0.offset + 1)", $0.element) })
    }
}
