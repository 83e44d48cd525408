import Evaluation
import Foundation

/// A prompt file of `render --prompts`: one prompt per line, options after ` | `.
///
///     # comment lines and blank lines are skipped; `#` outside quotes ends a line
///     a large red circle on a blue background | seed=3 frames=1
///     a small cat moving left | frames=8 | negative="dark, blurry" | lora=style:0.8 | out=cat
///
/// After the first `|`, options are `key=value`, separated by `|` and/or spaces; a value with spaces
/// (or `|`, `#`) goes in double quotes, where `\"` and `\\` stand for `"` and `\`.
enum PromptFile {
    /// The keys a line may set, in the order the documentation lists them.
    static let keys = ["seed", "frames", "steps", "guidance", "negative", "scheduler", "lora", "out"]

    /// One entry per line that is neither blank nor only a comment, in file order.
    static func parse(_ text: String) -> [PromptFileEntry] {
        var body = Substring(text)
        if body.hasPrefix("\u{FEFF}") { body = body.dropFirst() }
        var entries: [PromptFileEntry] = []
        for (index, rawLine) in body.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = rawLine
            if line.hasSuffix("\r") { line = line.dropLast() }
            if let entry = parseLine(String(line), number: index + 1) { entries.append(entry) }
        }
        return entries
    }

    /// nil for a blank or comment-only line.
    static func parseLine(_ line: String, number: Int) -> PromptFileEntry? {
        let characters = Array(line)
        let separator = characters.firstIndex { $0 == "|" || $0 == "#" }
        let promptEnd = separator ?? characters.endIndex
        let prompt = String(characters[..<promptEnd]).trimmingCharacters(in: .whitespaces)
        let hasOptions = separator.map { characters[$0] == "|" } ?? false
        if prompt.isEmpty && !hasOptions { return nil }
        func failure(_ message: String) -> PromptFileEntry {
            .error(PromptLineError(number: number, prompt: prompt, message: message))
        }
        guard !prompt.isEmpty else { return failure("no prompt before ' | ' (expected: prompt text | key=value ...)") }
        guard hasOptions, let separator else { return .line(PromptLine(number: number, prompt: prompt, options: .init())) }

        let pairs: [(key: String, value: String)]
        do {
            var scanner = OptionScanner(characters[(separator + 1)...])
            pairs = try scanner.pairs()
        } catch {
            return failure(describe(error))
        }
        var options = PromptLineOptions()
        var seen: Set<String> = []
        for (key, value) in pairs {
            if key != "lora", !seen.insert(key).inserted { return failure("\(key)= is given twice") }
            do {
                try options.set(key, to: value)
            } catch {
                return failure(describe(error))
            }
        }
        return .line(PromptLine(number: number, prompt: prompt, options: options))
    }
}

enum PromptFileEntry: Equatable {
    case line(PromptLine)
    case error(PromptLineError)

    var number: Int {
        switch self {
        case let .line(line): return line.number
        case let .error(error): return error.number
        }
    }
}

/// A prompt line that parsed: its prompt and the options it sets.
struct PromptLine: Equatable {
    /// 1-based, counting every line of the file.
    let number: Int
    let prompt: String
    let options: PromptLineOptions
}

/// A line that cannot render, and why; `prompt` is what stood before ` | ` (maybe empty).
struct PromptLineError: Error, Equatable {
    let number: Int
    let prompt: String
    let message: String
}

/// A line's options; nil where the line leaves the command line's value in place.
struct PromptLineOptions: Equatable {
    var seed: UInt64?
    var frames: Int?
    var steps: Int?
    var guidance: Float?
    var negative: String?
    var scheduler: String?
    /// Replaces the command line's `--lora` list; `lora=none` gives the empty list.
    var loras: [LoRARequest]?
    /// The output name (without folder; an extension is optional).
    var out: String?

    mutating func set(_ key: String, to value: String) throws {
        func invalid(_ expected: String) -> PromptOptionError {
            PromptOptionError(description: "\(key)=\(Self.quoted(value)): expected \(expected)")
        }
        switch key {
        case "seed":
            guard let number = UInt64(value) else { throw invalid("a whole number from 0 to \(UInt64.max)") }
            seed = number
        case "frames":
            guard let number = Int(value), number >= 1 else { throw invalid("a whole number of frames, at least 1") }
            frames = number
        case "steps":
            guard let number = Int(value), number >= 1 else { throw invalid("a whole number of steps, at least 1") }
            steps = number
        case "guidance":
            guard let number = Float(value), number.isFinite else { throw invalid("a number (1 or less turns guidance off)") }
            guidance = number
        case "negative":
            negative = value
        case "scheduler":
            guard Render.schedulers[value] != nil else { throw invalid("ddim or euler") }
            scheduler = value
        case "lora":
            if value == "none" {
                guard loras?.isEmpty ?? true else { throw invalid("NAME[:SCALE]; lora=none cannot follow another lora=") }
                loras = []
                break
            }
            if let loras, loras.isEmpty { throw invalid("nothing after lora=none (it means: no LoRAs on this line)") }
            do {
                loras = (loras ?? []) + [try LoRARequest(parsing: value)]
            } catch {
                throw PromptOptionError(description: "lora=\(describe(error))")
            }
        case "out":
            if let reason = OutputName.problem(value) { throw invalid("a file name inside the output folder (\(reason))") }
            out = value
        default:
            throw PromptOptionError(description: "unknown key \"\(key)\" (keys: \(PromptFile.keys.joined(separator: ", ")))")
        }
    }

    /// A value as it could be written back: quoted when it holds spaces or is empty.
    static func quoted(_ value: String) -> String {
        value.isEmpty || value.contains(where: { $0.isWhitespace || $0 == "|" || $0 == "#" || $0 == "\"" })
            ? "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            : value
    }
}

struct PromptOptionError: Error, CustomStringConvertible {
    let description: String
}

/// Splits the text after a line's first `|` into `key=value` pairs.
private struct OptionScanner {
    let characters: [Character]
    var position = 0

    init(_ characters: ArraySlice<Character>) { self.characters = Array(characters) }

    static func isSeparator(_ character: Character) -> Bool { character.isWhitespace || character == "|" }

    mutating func pairs() throws -> [(key: String, value: String)] {
        var pairs: [(key: String, value: String)] = []
        while true {
            while position < characters.count, Self.isSeparator(characters[position]) { position += 1 }
            guard position < characters.count, characters[position] != "#" else { return pairs }
            let start = position
            while position < characters.count, !Self.isSeparator(characters[position]), characters[position] != "=",
                  characters[position] != "#", characters[position] != "\"" {
                position += 1
            }
            let key = String(characters[start..<position])
            guard position < characters.count, characters[position] == "=", !key.isEmpty else {
                var end = position
                while end < characters.count, !Self.isSeparator(characters[end]) { end += 1 }
                let word = String(characters[start..<max(end, start + 1)])
                throw PromptOptionError(description: "expected key=value after ' | ', found \"\(word)\""
                    + (pairs.isEmpty ? "" : " (a value with spaces goes in double quotes: \(pairs.last!.key)=\"...\")"))
            }
            position += 1
            pairs.append((key, try value(of: key)))
        }
    }

    private mutating func value(of key: String) throws -> String {
        guard position < characters.count, characters[position] == "\"" else {
            let start = position
            while position < characters.count, !Self.isSeparator(characters[position]), characters[position] != "#" {
                position += 1
            }
            return String(characters[start..<position])
        }
        position += 1
        var value = ""
        while position < characters.count {
            let character = characters[position]
            position += 1
            switch character {
            case "\"":
                guard position == characters.count || Self.isSeparator(characters[position]) || characters[position] == "#" else {
                    throw PromptOptionError(description: "\(key)=\"\(value)\": expected a space or '|' after the closing quote, found \"\(characters[position])\"")
                }
                return value
            case "\\" where position < characters.count && (characters[position] == "\"" || characters[position] == "\\"):
                value.append(characters[position])
                position += 1
            default:
                value.append(character)
            }
        }
        throw PromptOptionError(description: "\(key)=\"\(value): the closing double quote is missing")
    }
}

/// Names a line's `out=` may take: a plain file name that stays inside the output folder.
enum OutputName {
    /// Why `name` cannot be used, or nil when it can.
    static func problem(_ name: String) -> String? {
        if name.isEmpty { return "the name is empty" }
        if name.contains("/") || name.contains("\\") { return "no '/' or '\\'" }
        if name.hasPrefix(".") { return "no leading '.'" }
        if name.contains("..") { return "no '..'" }
        if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) { return "no control characters" }
        if name.utf8.count > 200 { return "at most 200 bytes" }
        return nil
    }
}
