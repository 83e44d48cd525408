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

    /// Set on the threads of `independentGroups`: each runs its group alone, as a one-thread run would.
    @TaskLocal static var isGroupWorker = false

    /// The number of worker threads. Set it once at start-up (the CLI's `--threads`), before any work.
    /// Inside `independentGroups` it reads 1: each group has one thread to itself.
    public static var threadCount: Int {
        get { isGroupWorker ? 1 : configuredThreads }
        set {
            configuredThreads = max(1, newValue)
            BLAS.setThreads(configuredThreads)
        }
    }

    /// Runs `body` on `count` items split into one group per worker thread, the groups side by side,
    /// each on its own thread as a one-thread run would compute it (`threadCount` reads 1 there and
    /// OpenBLAS runs single-threaded); returns the groups' results in order. For work made of
    /// independent items (the samples of an inference batch) this spends no time waking threads or
    /// waiting at the end of each small operation, which on small models is a large share of a
    /// split-by-operation run. Returns nil, running nothing, when there is one thread or fewer items
    /// than threads. Item ranges depend only on `count` and the thread count, so results do too.
    /// The caller's grad mode holds on the worker threads; an error of the lowest failing group is rethrown.
    /// OpenBLAS's thread count is one setting for the whole process: other engine work must not run
    /// beside this call, and the count it found is put back when it returns.
    public static func independentGroups<T>(count: Int, _ body: (Range<Int>) throws -> T) throws -> [T]? {
        let groups = threadCount
        guard groups > 1, count >= groups else { return nil }
        let gradEnabled = GradMode.isEnabled
        var outcomes = [Result<T, Error>?](repeating: nil, count: groups)
        let lock = NSLock()
        let previous = BLAS.threads
        BLAS.setThreads(1)
        defer { BLAS.setThreads(previous) }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: groups) { group in
                let range = count * group / groups..<count * (group + 1) / groups
                let outcome = Result {
                    try $isGroupWorker.withValue(true) {
                        try GradMode.$isEnabled.withValue(gradEnabled) { try body(range) }
                    }
                }
                lock.withLock { outcomes[group] = outcome }
            }
        }
        return try outcomes.map { try $0!.get() }
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
