/// Everything that can go wrong creating, combining, saving or loading adapters. Each case names
/// the adapter, module path, file or key involved and says what was expected (principle 6).
public enum AdapterError: Error, CustomStringConvertible, Sendable {
    /// A LoRA file whose keys do not fit the model: every problem found, listed at once.
    case incompatibleFile(file: String, problems: [LoRAFileProblem])
    /// Loading only what fits (allow-partial) found nothing that fits.
    case nothingFits(file: String, problems: [LoRAFileProblem])
    /// No adapter of this name is in the set.
    case unknownAdapter(String, known: [String])
    /// An adapter of this name is already in the set.
    case duplicateAdapter(String)
    /// None of the patterns selects an adaptable layer (Linear, Conv2d, temporal Conv3d).
    case noMatchingModules(adapter: String, patterns: [String])
    /// A module-path pattern that cannot be used.
    case invalidPattern(String, reason: String)
    /// A LoRA setting outside its range (rank, alpha, dropout, shapes).
    case invalidConfiguration(String)
    /// The operation does not fit the adapter's state (e.g. training a merged adapter).
    case invalidState(adapter: String, reason: String)

    public var description: String {
        switch self {
        case let .incompatibleFile(file, problems):
            var lines = ["\(file): LoRA does not fit the model (\(problems.count) problem\(problems.count == 1 ? "" : "s"); "
                         + "render, compose and animate take --allow-partial to load the modules that fit):"]
            lines += problems.map { "  \($0)" }
            return lines.joined(separator: "\n")
        case let .nothingFits(file, problems):
            return (["\(file): no module of this LoRA fits the model (\(problems.count) problem\(problems.count == 1 ? "" : "s")):"]
                    + problems.map { "  \($0)" }).joined(separator: "\n")
        case let .unknownAdapter(name, known):
            return "no adapter named \"\(name)\" (adapters: \(known.isEmpty ? "none" : known.joined(separator: ", ")))"
        case let .duplicateAdapter(name):
            return "an adapter named \"\(name)\" already exists; remove it first or choose another name"
        case let .noMatchingModules(adapter, patterns):
            return "adapter \"\(adapter)\": no Linear, Conv2d or temporal Conv3d layer matches \(patterns.joined(separator: ", "))"
        case let .invalidPattern(pattern, reason):
            return "module pattern \"\(pattern)\": \(reason)"
        case let .invalidConfiguration(reason):
            return reason
        case let .invalidState(adapter, reason):
            return "adapter \"\(adapter)\": \(reason)"
        }
    }
}

/// One reason a tensor (or a module's pair of tensors) of a LoRA file does not fit the model.
public struct LoRAFileProblem: Equatable, Sendable, CustomStringConvertible {
    /// The tensor name in the file (or the module path when the problem concerns a pair).
    public let key: String
    public let reason: String

    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }

    public var description: String { "\(key): \(reason)" }
}
