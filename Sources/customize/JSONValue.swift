import Foundation

/// Any JSON document, decoded without losing the difference between integers, numbers and
/// booleans (which `JSONSerialization`'s NSNumbers blur on Linux). Used to read diffusers'
/// `model_index.json` and `config.json` files, whose keys vary by component class.
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int.self) { self = .integer(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// Reads and decodes a JSON file; the error names the file and, where Foundation says, the place.
    static func read(path: String) throws -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InspectFailure(path: path, reason: "cannot read the file")
        }
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch let DecodingError.dataCorrupted(context) {
            let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            throw InspectFailure(path: path, reason: "not valid JSON" + (detail.map { ": \($0)" } ?? ""))
        } catch {
            throw InspectFailure(path: path, reason: "not valid JSON: \(error)")
        }
    }

    var fact: Fact {
        switch self {
        case .null: return .text("null")
        case .bool(let value): return .flag(value)
        case .integer(let value): return .integer(value)
        case .number(let value): return .number(value)
        case .string(let value): return .text(value)
        case .array(let items): return .list(items.map(\.fact))
        case .object(let object): return .record(object.sorted { $0.key < $1.key }.map { ($0.key, $0.value.fact) })
        }
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// A number, or a string that holds one (kohya writes `ss_network_alpha` as text).
    var double: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .number(let value): return value
        case .string(let value): return Double(value.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }
}
