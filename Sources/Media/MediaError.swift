import Foundation

/// Every failure of the Media target: each case names the file involved and says what went wrong,
/// so the CLI can print `description` as is.
public enum MediaError: Error, CustomStringConvertible, LocalizedError {
    /// The file could not be opened or read (missing, a directory, not local, timed out, I/O error).
    case unreadable(path: String, reason: String)
    /// The file was read but its contents are damaged or not what its format promises.
    case corrupt(path: String, reason: String)
    /// The file (or a requested operation on it) uses a format, codec or option we refuse or lack.
    case unsupported(path: String, reason: String)
    /// The file exceeds a configured safety limit (`what` is e.g. "width", `limit` the allowed maximum).
    case tooLarge(path: String, what: String, limit: String)
    /// Writing the file failed; nothing was left at the destination.
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read '\(path)': \(reason)"
        case let .corrupt(path, reason): return "'\(path)' is corrupt: \(reason)"
        case let .unsupported(path, reason): return "'\(path)' is not supported: \(reason)"
        case let .tooLarge(path, what, limit): return "'\(path)' is too large: \(what) exceeds the limit of \(limit)"
        case let .writeFailed(path, reason): return "cannot write '\(path)': \(reason)"
        }
    }

    public var errorDescription: String? { description }
}
