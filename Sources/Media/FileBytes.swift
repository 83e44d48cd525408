#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic whole-file writes with errno-based reasons. POSIX calls rather
/// than `FileManager` because its `contents(atPath:)` returns nil without saying why.
enum FileBytes {
    /// Reads the whole file, refusing files above `limit` bytes before allocating for them.
    static func readAll(path: String, limit: Int) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw MediaError.unreadable(path: path, reason: errnoReason()) }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw MediaError.unreadable(path: path, reason: errnoReason()) }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw MediaError.unreadable(path: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size <= limit else {
            throw MediaError.tooLarge(path: path, what: "file of \(size) bytes", limit: "\(limit) bytes")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let count = bytes.withUnsafeMutableBytes { buffer in
                read(descriptor, buffer.baseAddress! + filled, size - filled)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw MediaError.unreadable(path: path, reason: errnoReason())
            }
            if count == 0 { break } // The file shrank while being read; keep what is there.
            filled += count
        }
        if filled < size { bytes.removeSubrange(filled...) }
        return bytes
    }

    /// Writes `bytes` to a temporary file in the destination's folder, flushes it to disk and
    /// renames it over `path`, so readers see the old file or the complete new one, never a part.
    static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty else { throw MediaError.writeFailed(path: path, reason: "the path names a folder") }
        let temporary = "\(folder).\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw MediaError.writeFailed(path: path, reason: "cannot create a temporary file beside it: \(errnoReason())")
        }
        var failure: String?
        var written = 0
        while written < bytes.count, failure == nil {
            let count = bytes.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, bytes.count - written)
            }
            if count < 0 {
                if errno != EINTR { failure = errnoReason() }
            } else {
                written += count
            }
        }
        if failure == nil, fsync(descriptor) != 0 { failure = errnoReason() }
        if close(descriptor) != 0, failure == nil { failure = errnoReason() }
        if failure == nil, rename(temporary, path) != 0 { failure = errnoReason() }
        if let failure {
            unlink(temporary)
            throw MediaError.writeFailed(path: path, reason: failure)
        }
    }

    static func errnoReason() -> String {
        String(cString: strerror(errno))
    }
}
