import Dispatch
import Foundation
import Synchronization

/// How many threads the engine's own kernels use, and the one primitive that splits work over them.
///
/// Work is always split into the same chunks for a given problem size, whatever the thread count,
/// and reductions combine chunk results in chunk order; so results are bit-identical across
/// thread counts for element-wise work and reductions alike.
public enum Parallel {
    nonisolated(unsafe) private static var configuredThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The number of worker threads. Set it once at start-up (the CLI's `--threads`), before any work.
    public static var threadCount: Int {
        get { configuredThreads }
        set {
            configuredThreads = max(1, newValue)
            BLAS.setThreads(configuredThreads)
        }
    }

    /// Runs `body(chunkIndex)` for every chunk in `0..<chunks`, spread over the worker threads.
    /// Runs inline when there is one chunk or one thread, so small work pays no dispatch cost.
    @inlinable
    public static func forEach(chunks: Int, _ body: (Int) -> Void) {
        if chunks <= 0 { return }
        if chunks == 1 || threadCount == 1 {
            for chunk in 0..<chunks { body(chunk) }
            return
        }
        let workers = min(threadCount, chunks)
        // Workers take the next chunk from a shared counter, so when another process holds a core
        // the worker that runs takes on more chunks instead of waiting at the end for the one that
        // does not. Which thread computes a chunk never changes what the chunk computes, so results
        // stay deterministic.
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let chunk = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if chunk >= chunks { break }
                    body(chunk)
                }
            }
        }
    }

    /// Splits `0..<count` into ranges of at least `grain` elements and runs `body` on each range in parallel.
    /// The split depends only on `count` and `grain`, never on the thread count.
    @inlinable
    public static func forRanges(count: Int, grain: Int = 16_384, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(64, max(1, count / max(1, grain)))
        forEach(chunks: chunks) { chunk in
            let begin = count * chunk / chunks
            let end = count * (chunk + 1) / chunks
            body(begin..<end)
        }
    }
}
