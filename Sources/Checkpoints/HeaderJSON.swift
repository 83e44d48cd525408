import Foundation

/// A JSON value as the safetensors header needs it: objects keep their members in order and
/// keep duplicates, which Foundation's `JSONSerialization` silently merges, so that the header
/// reader can report a duplicated tensor name instead of loading one of the two.
indirect enum HeaderJSON: Equatable {
    case object([Member])
    case array([HeaderJSON])
    case string(String)
    /// The number's literal text; the header only needs exact non-negative integers from it.
    case number(String)
    case bool(Bool)
    case null

    struct Member: Equatable {
        let key: String
        let value: HeaderJSON
        /// Byte offset of the key inside the parsed text, for error messages.
        let offset: Int
    }

    /// A short rendering of the value for "expected …, found …" messages.
    var summary: String {
        switch self {
        case .object(let members): return "an object with \(members.count) members"
        case .array(let items): return "an array of \(items.count) items"
        case .string(let text): return "the string \"\(text.count > 40 ? text.prefix(40) + "…" : Substring(text))\""
        case .number(let literal): return "the number \(literal)"
        case .bool(let flag): return "\(flag)"
        case .null: return "null"
        }
    }

    /// The value as a non-negative integer that fits in `Int`, or nil (fractions, exponents,
    /// signs and overflow included).
    var nonNegativeInteger: Int? {
        guard case .number(let literal) = self, !literal.isEmpty,
              literal.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int(literal)
    }
}

/// Why the header text is not JSON, and where (a byte offset into the text).
struct HeaderJSONSyntaxError: Error {
    let offset: Int
    let reason: String
}

/// A strict RFC 8259 parser over UTF-8 bytes (the caller has already checked that they are valid
/// UTF-8). Like serde_json, which the reference uses, it accepts whitespace after the value and
/// nothing else.
struct HeaderJSONParser {
    /// Deep nesting has no use in a header; the limit keeps recursion off the end of the stack.
    static let maximumDepth = 128

    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    private init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws(HeaderJSONSyntaxError) -> HeaderJSON {
        var parser = HeaderJSONParser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        if parser.index != bytes.count {
            throw parser.error("unexpected \(parser.describeCurrent()) after the end of the JSON value")
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue(depth: Int) throws(HeaderJSONSyntaxError) -> HeaderJSON {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        guard index < bytes.count else { throw error("unexpected end of header, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        default: throw error("unexpected \(describeCurrent()), expected a value")
        }
    }

    private mutating func parseObject(depth: Int) throws(HeaderJSONSyntaxError) -> HeaderJSON {
        index += 1
        var members: [HeaderJSON.Member] = []
        skipWhitespace()
        if consume(UInt8(ascii: "}")) { return .object(members) }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw error("unexpected \(describeCurrent()), expected a string key")
            }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else { throw error("unexpected \(describeCurrent()), expected ':'") }
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            members.append(HeaderJSON.Member(key: key, value: value, offset: keyOffset))
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            if consume(UInt8(ascii: "}")) { return .object(members) }
            throw error("unexpected \(describeCurrent()), expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws(HeaderJSONSyntaxError) -> HeaderJSON {
        index += 1
        var items: [HeaderJSON] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) { return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            if consume(UInt8(ascii: "]")) { return .array(items) }
            throw error("unexpected \(describeCurrent()), expected ',' or ']'")
        }
    }

    private mutating func parseString() throws(HeaderJSONSyntaxError) -> String {
        let start = index
        index += 1
        var decoded: [UInt8] = []
        var segmentStart = index
        while true {
            guard index < bytes.count else {
                index = start
                throw error("unterminated string")
            }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                decoded.append(contentsOf: bytes[segmentStart..<index])
                index += 1
                return String(decoding: decoded, as: UTF8.self)
            }
            if byte < 0x20 {
                throw error("control character 0x\(String(byte, radix: 16)) inside a string must be escaped")
            }
            if byte == UInt8(ascii: "\\") {
                decoded.append(contentsOf: bytes[segmentStart..<index])
                try parseEscape(into: &decoded)
                segmentStart = index
            } else {
                index += 1
            }
        }
    }

    /// Decodes the escape at `index` (a backslash) and appends its UTF-8 bytes.
    private mutating func parseEscape(into decoded: inout [UInt8]) throws(HeaderJSONSyntaxError) {
        let escapeStart = index
        index += 1
        guard index < bytes.count else { throw error("unterminated escape sequence") }
        let letter = bytes[index]
        index += 1
        switch letter {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(letter)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalarValue = UInt32(try parseHexQuad())
            if (0xD800...0xDBFF).contains(scalarValue) {
                // A UTF-16 high surrogate must be followed by an escaped low surrogate.
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    index = escapeStart
                    throw error("unpaired UTF-16 surrogate in \\u escape")
                }
                index += 2
                let low = UInt32(try parseHexQuad())
                guard (0xDC00...0xDFFF).contains(low) else {
                    index = escapeStart
                    throw error("unpaired UTF-16 surrogate in \\u escape")
                }
                scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(scalarValue) else {
                index = escapeStart
                throw error("unpaired UTF-16 surrogate in \\u escape")
            }
            decoded.append(contentsOf: String(Character(scalar)).utf8)
        default:
            index = escapeStart
            throw error("invalid escape sequence")
        }
    }

    private mutating func parseHexQuad() throws(HeaderJSONSyntaxError) -> UInt16 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit \(describeCurrent()) in \\u escape")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    /// Checks the number grammar `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?` and returns its text.
    private mutating func parseNumber() throws(HeaderJSONSyntaxError) -> String {
        let start = index
        _ = consume(UInt8(ascii: "-"))
        if consume(UInt8(ascii: "0")) {
            // A leading zero stands alone.
        } else if try consumeDigits() == 0 {
            throw error("unexpected \(describeCurrent()), expected a digit")
        }
        if consume(UInt8(ascii: ".")), try consumeDigits() == 0 {
            throw error("unexpected \(describeCurrent()), expected a digit after '.'")
        }
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            if try consumeDigits() == 0 { throw error("unexpected \(describeCurrent()), expected an exponent digit") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func consumeDigits() throws(HeaderJSONSyntaxError) -> Int {
        let start = index
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
        return index - start
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(HeaderJSONSyntaxError) {
        let text = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        guard index + text.count <= bytes.count, bytes[index..<index + text.count].elementsEqual(text) else {
            throw error("unexpected \(describeCurrent()), expected a value")
        }
        index += text.count
    }

    // MARK: Helpers

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private func describeCurrent() -> String {
        guard index < bytes.count else { return "end of header" }
        let byte = bytes[index]
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    private func error(_ reason: String) -> HeaderJSONSyntaxError {
        HeaderJSONSyntaxError(offset: index, reason: reason)
    }
}

/// Writes JSON text the way serde_json does, so that headers match the reference byte for byte:
/// no whitespace, and strings escaped minimally (quote, backslash, control characters; other
/// characters, non-ASCII included, written as UTF-8).
enum HeaderJSONWriter {
    static func appendString(_ text: String, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): output.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): output.append(contentsOf: "\\\\".utf8)
            case 0x08: output.append(contentsOf: "\\b".utf8)
            case 0x0C: output.append(contentsOf: "\\f".utf8)
            case 0x0A: output.append(contentsOf: "\\n".utf8)
            case 0x0D: output.append(contentsOf: "\\r".utf8)
            case 0x09: output.append(contentsOf: "\\t".utf8)
            case 0x00..<0x20:
                let hexDigits = Array("0123456789abcdef".utf8)
                output.append(contentsOf: "\\u00".utf8)
                output.append(hexDigits[Int(byte >> 4)])
                output.append(hexDigits[Int(byte & 0xF)])
            default: output.append(byte)
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    static func appendIntegers(_ values: [Int], to output: inout [UInt8]) {
        output.append(UInt8(ascii: "["))
        for (position, value) in values.enumerated() {
            if position > 0 { output.append(UInt8(ascii: ",")) }
            output.append(contentsOf: String(value).utf8)
        }
        output.append(UInt8(ascii: "]"))
    }
}
