/// What a method can refuse, naming the clip, image, file or setting involved (principle 6).
public enum MethodError: Error, Equatable, CustomStringConvertible {
    /// No usable training item: `what` names the folder or list, `reason` says what was missing.
    case noTrainingData(what: String, reason: String)
    /// A training item that does not fit the run (wrong frame count or size).
    case badItem(name: String, reason: String)
    /// A run folder that cannot be started or resumed as asked.
    case badRun(folder: String, reason: String)
    /// A method setting or input that cannot be used (e.g. DECOR words that encode to nothing).
    case badSetting(name: String, reason: String)
    /// An adapter file that does not fit the method (e.g. Break-for-Make halves of another seed).
    case badAdapter(file: String, reason: String)

    public var description: String {
        switch self {
        case let .noTrainingData(what, reason): return "\(what): \(reason)"
        case let .badItem(name, reason): return "\(name): \(reason)"
        case let .badRun(folder, reason): return "\(folder): \(reason)"
        case let .badSetting(name, reason): return "\(name): \(reason)"
        case let .badAdapter(file, reason): return "\(file): \(reason)"
        }
    }
}
