import Foundation

/// diffusers' `model_index.json`: the pipeline's `_class_name`, the `_diffusers_version` that wrote
/// it, and one `"name": ["library", "ClassName"]` entry per component (`[null, null]` marks a
/// component the pipeline was saved without, such as a missing safety checker). Boolean pipeline
/// settings (`"requires_safety_checker": false`) are kept in `flags`; other keys that start with
/// `_` (`_name_or_path`) are ignored.
public struct ModelIndex: Equatable, Sendable {
    public struct Component: Equatable, Sendable {
        public var library: String
        public var className: String

        public init(library: String, className: String) {
            self.library = library
            self.className = className
        }
    }

    public var className: String
    public var diffusersVersion: String?
    public var components: [String: Component]
    public var flags: [String: Bool]

    public init(className: String, diffusersVersion: String?, components: [String: Component], flags: [String: Bool] = [:]) {
        self.className = className
        self.diffusersVersion = diffusersVersion
        self.components = components
        self.flags = flags
    }

    /// Parses `data`; errors name `file` and the key.
    public static func decode(_ data: Data, file: String) throws -> ModelIndex {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.badConfig(file: file, key: "", reason: "not a JSON object")
        }
        guard let className = object["_class_name"] as? String else {
            throw ModelError.badConfig(file: file, key: "_class_name", reason: object["_class_name"] == nil ? "missing" : "expected a string")
        }
        var components: [String: Component] = [:]
        var flags: [String: Bool] = [:]
        let scalars = (try? JSONDecoder().decode([String: FixedConfigValue].self, from: data)) ?? [:]
        for (name, value) in object where !name.hasPrefix("_") {
            if case .bool(let flag)? = scalars[name] {
                flags[name] = flag
                continue
            }
            guard let pair = value as? [Any], pair.count == 2 else {
                throw ModelError.badConfig(file: file, key: name, reason: "expected [\"library\", \"ClassName\"], found \(value)")
            }
            if pair[0] is NSNull, pair[1] is NSNull { continue }
            guard let library = pair[0] as? String, let componentClass = pair[1] as? String else {
                throw ModelError.badConfig(file: file, key: name, reason: "expected [\"library\", \"ClassName\"], found \(pair)")
            }
            components[name] = Component(library: library, className: componentClass)
        }
        return ModelIndex(className: className, diffusersVersion: object["_diffusers_version"] as? String, components: components,
                          flags: flags)
    }

    /// The JSON diffusers writes: keys sorted, two-space indent, trailing newline.
    public func encoded() throws -> Data {
        var object: [String: Any] = ["_class_name": className]
        if let diffusersVersion { object["_diffusers_version"] = diffusersVersion }
        for (name, component) in components { object[name] = [component.library, component.className] }
        for (name, flag) in flags { object[name] = flag }
        return try JSONFiles.encode(object)
    }
}

/// JSON as diffusers and transformers write their config files (`json.dumps(indent=2, sort_keys=True) + "\n"`).
enum JSONFiles {
    static func encode(_ object: Any) throws -> Data {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        data.append(UInt8(ascii: "\n"))
        return data
    }

    static func encode<Value: Encodable>(_ value: Value) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        return data
    }

    /// `encode(value)` with the whole-number values of `decimalKeys` written as decimals (`1.0`,
    /// not `1`): transformers 5 checks its config fields' types and refuses an integer where a
    /// float belongs (`initializer_factor`). Works on the pretty-printed text, one key per line.
    static func encode<Value: Encodable>(_ value: Value, decimalKeys: Set<String>) throws -> Data {
        let text = String(decoding: try encode(value), as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.drop { $0 == " " }
            guard let close = trimmed.dropFirst().firstIndex(of: "\""), trimmed.first == "\"",
                  decimalKeys.contains(String(trimmed[trimmed.index(after: trimmed.startIndex)..<close])) else { return String(line) }
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(" : ") else { return String(line) }
            var number = rest.dropFirst(3)
            let comma = number.hasSuffix(",")
            if comma { number = number.dropLast() }
            let digits = number.hasPrefix("-") ? number.dropFirst() : number
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return String(line) }
            return String(line.prefix(line.count - rest.count + 3)) + number + ".0" + (comma ? "," : "")
        }
        return Data(lines.joined(separator: "\n").utf8)
    }
}
