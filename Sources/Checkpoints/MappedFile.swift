#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A whole file mapped read-only into memory, so that a multi-gigabyte checkpoint costs no
/// copy until a tensor is converted, and only the pages of the tensors touched are read.
/// (The reference's Python bindings do the same through `memmap2`.)
final class MappedFile: @unchecked Sendable {
    let path: String
    /// Start of the mapping; nil for an empty file, which cannot be mapped.
    let bytes: UnsafeRawPointer?
    let size: Int

    init(path: String) throws(CheckpointError) {
        self.path = path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .cannotOpen(path: path, reason: Self.lastErrorText()) }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .cannotOpen(path: path, reason: Self.lastErrorText()) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw .cannotOpen(path: path, reason: "not a regular file")
        }
        size = Int(status.st_size)
        guard size > 0 else {
            bytes = nil
            return
        }
        let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let mapping, mapping != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap failed: \(Self.lastErrorText())")
        }
        bytes = UnsafeRawPointer(mapping)
    }

    deinit {
        if let bytes { munmap(UnsafeMutableRawPointer(mutating: bytes), size) }
    }

    static func lastErrorText() -> String { String(cString: strerror(errno)) }
}
