import Foundation
import Synchronization

/// A contiguous Float32 buffer aligned to 64 bytes (one cache line, one AVX-512 register).
///
/// Storage is a reference type so that views (reshape, slices along the first axis) share it
/// without copying. The memory is released when the last tensor referring to it goes away: to
/// malloc, or for a large buffer to `BufferPool`.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats. The contents are uninitialised unless `zeroed` is true.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        var raw: UnsafeMutableRawPointer?
        let bytes = Storage.bytes(count)
        if bytes >= BufferPool.minimumBytes {
            raw = BufferPool.take(bytes)
        } else {
            let status = posix_memalign(&raw, 64, bytes)
            guard status == 0 else {
                fatalError("Storage: cannot allocate \(bytes) bytes (posix_memalign returned \(status))")
            }
        }
        pointer = raw!.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        if zeroed { pointer.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit {
        let bytes = Storage.bytes(count)
        if bytes >= BufferPool.minimumBytes { BufferPool.give(UnsafeMutableRawPointer(pointer), bytes: bytes) } else { free(pointer) }
    }

    /// The bytes behind `count` floats (at least one, so every storage has an address of its own).
    private static func bytes(_ count: Int) -> Int { max(count, 1) * MemoryLayout<Float>.stride }
}

/// Large tensor buffers: whole pages mapped from the kernel, and on release kept for the next
/// request of the same page count instead of unmapped.
///
/// A sampling or training step frees and allocates the same large buffers (activations, attention
/// scores, Winograd tiles) every step. From malloc's single heap (`MALLOC_ARENA_MAX` 1, see the
/// CLI's OpenBLASSetup) the two engine threads' interleaved requests fragmented it: the benchmark
/// UNet3D's sampling peak swung between 230 and 860 MB from run to run for about 110 MB of live
/// tensors. Mapped and unmapped each time instead, every step faults its pages back in (sampling
/// took 1.6 times as long). Reused by size, a step after the first maps nothing. Free buffers are
/// kept up to the larger of `keptBytes` and the most that was ever live from the pool at once;
/// beyond that the least recently released go back to the kernel, so the pool holds at most its
/// largest live set plus the larger of 256 MB and that set; `trim()` unmaps every free buffer.
/// (Unmapping free buffers on every miss instead, to hold no more than the
/// live set, kept the peak lower but made sampling as slow as mapping every time: a step's live
/// sizes change from layer to layer, and each eviction became the next miss.) Measured on a 2-core
/// AMD EPYC Zen 4 (`customize bench model --threads 2`, three runs each): UNet3D's sampling peak
/// 227-228 MB against 488-799 MB from malloc in the same session, AnimateDiff's 179-185 MB against
/// 145-159 MB; guided sampling steps from the pool took 0.99-1.00 of malloc's time (12 rounds
/// alternating in one process).
enum BufferPool {
    /// Buffers of at least this many bytes come from the pool; smaller ones from malloc. (From
    /// 1 MB up the UNet3D sampling peak read 240-248 MB over four runs, from 128 KB up 235-236.)
    static let minimumBytes = 128 << 10
    /// Free bytes the pool may always keep.
    static let keptBytes = 256 << 20

    private struct State {
        /// Free buffers by page-rounded size, each list oldest release first; no empty lists, so an
        /// eviction scans only the sizes that have a free buffer.
        var free: [Int: [(pointer: UnsafeMutableRawPointer, released: Int)]] = [:]
        var freeBytes = 0
        var liveBytes = 0
        var mostLiveBytes = 0
        var releases = 0
    }
    private static let state = Mutex(State())

    static func pageRounded(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

    /// Bytes of free buffers held, and the most ever live from the pool at once (tests read them).
    static var freeBytes: Int { state.withLock { $0.freeBytes } }
    static var mostLiveBytes: Int { state.withLock { $0.mostLiveBytes } }

    static func take(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = pageRounded(bytes)
        let reused: UnsafeMutableRawPointer? = state.withLock { state in
            state.liveBytes += size
            state.mostLiveBytes = max(state.mostLiveBytes, state.liveBytes)
            guard let last = state.free[size]?.popLast() else { return nil }
            if state.free[size]!.isEmpty { state.free[size] = nil }
            state.freeBytes -= size
            return last.pointer
        }
        if let reused { return reused }
        guard let mapped = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), mapped != MAP_FAILED else {
            fatalError("Storage: cannot map \(size) bytes (errno \(errno))")
        }
        return mapped
    }

    static func give(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        let size = pageRounded(bytes)
        var evicted: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
        state.withLock { state in
            state.releases += 1
            state.liveBytes -= size
            state.free[size, default: []].append((pointer, state.releases))
            state.freeBytes += size
            while state.freeBytes > max(keptBytes, state.mostLiveBytes) {
                var oldest: (size: Int, released: Int)?
                for (size, list) in state.free {
                    if let first = list.first, first.released < oldest?.released ?? .max { oldest = (size, first.released) }
                }
                guard let oldest else { break }
                evicted.append((state.free[oldest.size]!.removeFirst().pointer, oldest.size))
                if state.free[oldest.size]!.isEmpty { state.free[oldest.size] = nil }
                state.freeBytes -= oldest.size
            }
        }
        for buffer in evicted { munmap(buffer.pointer, buffer.size) }
    }

    /// Unmaps every free buffer (tests start from an empty pool; a caller done with a large phase
    /// may hand its memory back).
    static func trim() {
        let buffers: [(size: Int, pointers: [UnsafeMutableRawPointer])] = state.withLock { state in
            let all = state.free.map { ($0.key, $0.value.map(\.pointer)) }
            state.free = [:]
            state.freeBytes = 0
            return all
        }
        for (size, pointers) in buffers { for pointer in pointers { munmap(pointer, size) } }
    }
}
