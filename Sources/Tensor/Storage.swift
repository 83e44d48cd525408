import Foundation

/// A contiguous Float32 buffer aligned to 64 bytes (one cache line, one AVX-512 register).
///
/// Storage is a reference type so that views (reshape, slices along the first axis) share it
/// without copying. The memory is released when the last tensor referring to it goes away.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats. The contents are uninitialised unless `zeroed` is true.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let status = posix_memalign(&raw, 64, bytes)
        guard status == 0, let raw else {
            fatalError("Storage: cannot allocate \(bytes) bytes (posix_memalign returned \(status))")
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit { free(pointer) }
}
