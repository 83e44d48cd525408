import Evaluation

/// What `customize inspect` found out about one path: ordered facts that print either as indented
/// text or as JSON, so the two outputs always carry the same facts.
indirect enum Fact {
    case text(String)
    case integer(Int)
    case number(Double)
    case flag(Bool)
    case list([Fact])
    /// Keys in the order they should be read; JSON keeps that order too.
    case record([(String, Fact)])

    var isScalar: Bool {
        switch self {
        case .text, .integer, .number, .flag: return true
        case .list, .record: return false
        }
    }
}

// MARK: - JSON

extension Fact {
    /// Compact JSON. Numbers use Swift's shortest round-tripping form; non-finite numbers, which
    /// JSON cannot carry, become null.
    var json: String {
        var output = ""
        writeJSON(into: &output)
        return output
    }

    private func writeJSON(into output: inout String) {
        switch self {
        case .text(let string): Self.writeJSONString(string, into: &output)
        case .integer(let value): output += String(value)
        case .number(let value):
            if !value.isFinite {
                output += "null"
            } else if value == value.rounded(), abs(value) < 1e15 {
                output += String(Int(value))
            } else {
                output += "\(value)"
            }
        case .flag(let value): output += value ? "true" : "false"
        case .list(let items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                item.writeJSON(into: &output)
            }
            output += "]"
        case .record(let pairs):
            output += "{"
            for (index, (key, value)) in pairs.enumerated() {
                if index > 0 { output += "," }
                Self.writeJSONString(key, into: &output)
                output += ":"
                value.writeJSON(into: &output)
            }
            output += "}"
        }
    }

    private static func writeJSONString(_ string: String, into output: inout String) {
        output += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}

// MARK: - Text

extension Fact {
    /// Indented lines for a terminal: scalars and lists of scalars on one line, records and lists
    /// of records as indented blocks. Keys are shown with spaces instead of underscores.
    func textLines(indent: String = "") -> [String] {
        guard case .record(let pairs) = self else { return [indent + inlineText] }
        let width = pairs.filter { $0.1.isInline }.map { Self.label($0.0).count }.max() ?? 0
        var lines: [String] = []
        for (key, value) in pairs {
            let label = Self.label(key)
            if value.isInline {
                lines.append(indent + label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value.inlineText)
            } else if case .list(let items) = value {
                lines.append(indent + label + ":")
                for item in items {
                    let block = item.textLines(indent: indent + "    ")
                    guard let first = block.first else { continue }
                    lines.append(indent + "  - " + first.dropFirst(indent.count + 4))
                    lines.append(contentsOf: block.dropFirst())
                }
            } else {
                lines.append(indent + label + ":")
                lines.append(contentsOf: value.textLines(indent: indent + "  "))
            }
        }
        return lines
    }

    /// Whether the value prints on its key's line: scalars, lists of scalars, records of numbers
    /// only (such as dtype counts), and empty containers.
    private var isInline: Bool {
        switch self {
        case .text, .integer, .number, .flag: return true
        case .list(let items): return items.allSatisfy(\.isScalar)
        case .record(let pairs): return pairs.allSatisfy { $0.1.isNumeric }
        }
    }

    private var isNumeric: Bool {
        switch self {
        case .integer, .number: return true
        default: return false
        }
    }

    private var inlineText: String {
        switch self {
        case .text(let string):
            // Metadata values can be whole JSON documents (kohya's ss_tag_frequency); --json has them in full.
            let shown = string.contains("\n") ? string.debugDescription : string
            return shown.count <= Self.longestInlineText ? shown
                : shown.prefix(Self.longestInlineText) + "… (\(string.count) characters)"
        case .integer(let value): return String(value)
        case .number(let value): return NumberText.format(value)
        case .flag(let value): return value ? "yes" : "no"
        case .list(let items): return items.isEmpty ? "(none)" : items.map(\.inlineText).joined(separator: ", ")
        case .record(let pairs):
            return pairs.isEmpty ? "(none)" : pairs.map { "\(Self.label($0.0)) \($0.1.inlineText)" }.joined(separator: ", ")
        }
    }

    private static let longestInlineText = 160

    /// `_class_name` reads "class name": diffusers' private-key underscore means nothing to a reader.
    private static func label(_ key: String) -> String {
        String(key.drop(while: { $0 == "_" })).replacingOccurrences(of: "_", with: " ")
    }
}
