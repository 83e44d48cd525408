#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A file written through a temporary sibling and renamed over the destination on `commit`, so
/// that readers see either the old file or the complete new one, never a torn write, and a
/// failed or interrupted write leaves the old file in place.
final class AtomicFileOutput {
    let destination: String
    private let temporaryPath: String
    private var descriptor: Int32

    init(destination: String) throws(CheckpointError) {
        self.destination = destination
        let url = URL(fileURLWithPath: destination)
        let directory = url.deletingLastPathComponent().path
        // Same folder as the destination, so the final rename never crosses file systems.
        temporaryPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw .cannotWrite(path: destination, reason: "cannot create \(temporaryPath): \(MappedFile.lastErrorText())")
        }
    }

    deinit {
        // Reached without `commit`: an error was thrown while writing.
        if descriptor >= 0 {
            close(descriptor)
            unlink(temporaryPath)
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws(CheckpointError) {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let written = systemWrite(descriptor, next, min(remaining, 1 << 30))
            if written < 0 {
                if errno == EINTR { continue }
                throw .cannotWrite(path: destination, reason: MappedFile.lastErrorText())
            }
            next += written
            remaining -= written
        }
    }

    func write(_ bytes: [UInt8]) throws(CheckpointError) {
        // `withUnsafeBytes` rethrows untyped errors; carry the typed one out by hand.
        var failure: CheckpointError?
        bytes.withUnsafeBytes { buffer in
            do throws(CheckpointError) { try write(buffer) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Flushes the data to disk and renames the temporary file over the destination.
    func commit() throws(CheckpointError) {
        let syncFailure = fsync(descriptor) == 0 ? nil : "fsync: \(MappedFile.lastErrorText())"
        let closeFailure = close(descriptor) == 0 ? nil : "close: \(MappedFile.lastErrorText())"
        descriptor = -1
        if let reason = syncFailure ?? closeFailure {
            unlink(temporaryPath)
            throw .cannotWrite(path: destination, reason: reason)
        }
        if rename(temporaryPath, destination) != 0 {
            let reason = MappedFile.lastErrorText()
            unlink(temporaryPath)
            throw .cannotWrite(path: destination, reason: "rename from \(temporaryPath): \(reason)")
        }
    }
}

/// `write(2)`, named apart from `AtomicFileOutput.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(descriptor, bytes, count)
    #else
    return Darwin.write(descriptor, bytes, count)
    #endif
}
