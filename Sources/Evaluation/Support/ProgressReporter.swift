import Foundation

/// Shows progress of long work: a live bar with rate and ETA when standard error is a terminal,
/// a log line at most every few seconds otherwise (CI logs, files).
public final class ProgressReporter {
    public let label: String
    public let total: Int
    public let unit: String
    private let start = Date()
    private let interactive: Bool
    private var lastPrint = Date.distantPast
    private var lastWidth = 0
    /// Items already done when this reporter started (a resumed run): the rate counts only new ones.
    private let completedBefore: Int

    public init(_ label: String, total: Int, unit: String = "it", completedBefore: Int = 0) {
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.completedBefore = max(0, completedBefore)
        interactive = isatty(STDERR_FILENO) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    /// Reports that `completed` of `total` items are done; `note` is shown after the figures (e.g. a loss).
    public func update(_ completed: Int, note: String = "") {
        let now = Date()
        let done = completed >= total
        let interval = interactive ? 0.1 : 5.0
        guard done || now.timeIntervalSince(lastPrint) >= interval else { return }
        lastPrint = now
        let elapsed = now.timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(max(0, completed - completedBefore)) / elapsed : 0
        let remaining = rate > 0 ? Double(total - completed) / rate : .nan
        let figures = "\(completed)/\(total) \(Self.formatRate(rate, unit: unit)) "
            + (done ? "in \(Self.formatDuration(elapsed))" : "ETA \(Self.formatDuration(remaining))")
        if interactive {
            let width = 24
            let filled = min(width, completed * width / total)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            var line = "\(label) \(bar) \(figures)\(note.isEmpty ? "" : "  \(note)")"
            let padding = max(0, lastWidth - line.count)
            lastWidth = line.count
            line += String(repeating: " ", count: padding)
            FileHandle.standardError.write("\r\(line)\(done ? "\n" : "")")
        } else {
            FileHandle.standardError.write("\(label): \(figures)\(note.isEmpty ? "" : "  \(note)")\n")
        }
    }

    public static func formatRate(_ rate: Double, unit: String) -> String {
        if rate >= 1 || rate == 0 { return String(format: "%.2f \(unit)/s", rate) }
        return String(format: "%.2f s/\(unit)", 1 / rate)
    }

    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }
}
