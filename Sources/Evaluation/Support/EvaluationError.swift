import Foundation

/// A failure of an evaluation, or of the work it shares with the command line (reading training
/// folders, resolving LoRA files, training runs): its message names the file, option or setting
/// involved. The command line prints the message after "customize: " and exits with status 1.
public struct EvaluationError: Error, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The text of any error: the libraries' errors describe themselves with their context.
public func describe(_ error: Error) -> String {
    if let localized = error as? LocalizedError, let text = localized.errorDescription { return text }
    return String(describing: error)
}

extension FileHandle {
    /// Writes `text` as UTF-8 (progress lines and warnings on standard error).
    public func write(_ text: String) { write(Data(text.utf8)) }
}

/// Writes text atomically (Foundation writes a temporary file beside `path`, then renames it),
/// as the loss log and diffusers folders do.
public func atomicWrite(_ text: String, to path: String) throws {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw EvaluationError("cannot write \(path): \(error.localizedDescription)")
    }
}
