/// Errors from building, loading and running models. Each names the file, key or path involved.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    /// A weight file that does not fit the model: every missing key, unexpected key and shape mismatch at once.
    case weightsMismatch(file: String, missing: [String], unexpected: [String], shapeMismatches: [(key: String, expected: [Int], found: [Int])])
    /// A config.json (or YAML) whose key is missing, malformed or names something unsupported.
    case badConfig(file: String, key: String, reason: String)
    /// A model folder lacking a component or file.
    case missingComponent(folder: String, component: String)
    /// A tokenizer file that cannot be used.
    case badTokenizer(file: String, reason: String)
    /// Inputs whose shapes the model cannot take.
    case badInput(String)

    public var description: String {
        switch self {
        case let .weightsMismatch(file, missing, unexpected, shapes):
            var lines = ["\(file): weights do not fit the model"]
            func list(_ title: String, _ items: [String]) {
                guard !items.isEmpty else { return }
                let shown = items.prefix(20).map { "    \($0)" }
                lines.append("  \(title) (\(items.count)):")
                lines += shown
                if items.count > 20 { lines.append("    … and \(items.count - 20) more") }
            }
            list("missing keys", missing)
            list("unexpected keys", unexpected)
            list("shape mismatches", shapes.map { "\($0.key): model \($0.expected), file \($0.found)" })
            return lines.joined(separator: "\n")
        case let .badConfig(file, key, reason):
            return "\(file): key \"\(key)\": \(reason)"
        case let .missingComponent(folder, component):
            return "\(folder): missing \(component)"
        case let .badTokenizer(file, reason):
            return "\(file): \(reason)"
        case let .badInput(reason):
            return reason
        }
    }
}
