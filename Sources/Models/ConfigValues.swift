import Foundation

/// A config value diffusers accepts either as one integer or as a list (`sample_size`,
/// `attention_head_dim`); re-encoded the way it was read.
public enum IntOrList: Codable, Equatable, Sendable {
    case single(Int)
    case list([Int])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Int.self) {
            self = .single(value)
        } else {
            self = .list(try container.decode([Int].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .single(let value): try container.encode(value)
        case .list(let values): try container.encode(values)
        }
    }

    /// One value per block: the single value repeated, or the list as given.
    public func perBlock(_ count: Int) -> [Int] {
        switch self {
        case .single(let value): return Array(repeating: value, count: count)
        case .list(let values): return values
        }
    }
}

/// Reads a diffusers config.json into a Codable config, turning decoding failures into
/// `ModelError.badConfig` naming the file and the key.
enum ConfigFile {
    static func load<Config: Decodable>(_ type: Config.Type, path: String) throws -> Config {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelError.missingComponent(folder: (path as NSString).deletingLastPathComponent,
                                              component: (path as NSString).lastPathComponent)
        }
        return try decode(type, from: data, file: path)
    }

    static func decode<Config: Decodable>(_ type: Config.Type, from data: Data, file: String) throws -> Config {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            switch error {
            case .typeMismatch(let expected, let context):
                throw ModelError.badConfig(file: file, key: keyPath(context), reason: "expected \(expected): \(context.debugDescription)")
            case .valueNotFound(let expected, let context):
                throw ModelError.badConfig(file: file, key: keyPath(context), reason: "expected \(expected), found null")
            case .keyNotFound(let key, let context):
                throw ModelError.badConfig(file: file, key: (context.codingPath + [key]).map(\.stringValue).joined(separator: "."),
                                           reason: "missing")
            case .dataCorrupted(let context):
                throw ModelError.badConfig(file: file, key: keyPath(context), reason: "not valid JSON: \(context.debugDescription)")
            @unknown default:
                throw ModelError.badConfig(file: file, key: "", reason: "\(error)")
            }
        }
    }

    private static func keyPath(_ context: DecodingError.Context) -> String {
        context.codingPath.map(\.stringValue).joined(separator: ".")
    }
}

/// A config value read only to check that it keeps diffusers' default: the keys of features this
/// implementation does not build (class embeddings, added conditions, dual attention, …).
public enum FixedConfigValue: Equatable, Decodable, CustomStringConvertible, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case other

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else { self = .other }
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .number(let value): return value == value.rounded() ? String(Int(value)) : String(value)
        case .string(let value): return "\"\(value)\""
        case .other: return "a list or object"
        }
    }
}

/// Any JSON object key.
struct AnyConfigKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    /// The keys among `defaults` whose value in the file is not diffusers' default, each with a
    /// reason naming what was found and what is supported; absent keys keep their default.
    func settingsOffDefault(_ defaults: [String: FixedConfigValue]) throws -> [String: String] {
        let container = try self.container(keyedBy: AnyConfigKey.self)
        var found: [String: String] = [:]
        for (key, expected) in defaults {
            guard container.contains(AnyConfigKey(key)) else { continue }
            let value = try container.decode(FixedConfigValue.self, forKey: AnyConfigKey(key))
            if value != expected {
                found[key] = "\(value) is not supported (only diffusers' default \(expected))"
            }
        }
        return found
    }
}
