import Foundation

/// The one error type of the Media library. Every case names the file (or the argument) involved
/// and says what was wrong, so the CLI can print `description` and exit non-zero.
public enum MediaError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The file could not be opened or read at all (missing, a directory, no permission).
    case unreadable(path: String, reason: String)
    /// The file was read but its bytes are not a valid stream of the expected format.
    case corrupt(path: String, reason: String)
    /// The file is valid but uses a feature this library does not handle.
    case unsupported(path: String, reason: String)
    /// A size read from the file exceeds a limit checked before anything is allocated.
    case tooLarge(path: String, what: String, limit: String)
    /// Writing the output failed; no partial file is left behind.
    case writeFailed(path: String, reason: String)
    /// A value passed in code (not read from a file) is invalid, e.g. a pixel count that does not
    /// match the dimensions.
    case invalidArgument(what: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read '\(path)': \(reason)"
        case let .corrupt(path, reason):
            return "'\(path)' is corrupt: \(reason)"
        case let .unsupported(path, reason):
            return "'\(path)' is not supported: \(reason)"
        case let .tooLarge(path, what, limit):
            return "'\(path)' is too large: \(what) (limit \(limit))"
        case let .writeFailed(path, reason):
            return "cannot write '\(path)': \(reason)"
        case let .invalidArgument(what, reason):
            return "invalid \(what): \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
