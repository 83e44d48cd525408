import CBLAS

extension BLAS {
    /// Runs `body` with OpenBLAS single-threaded, then restores its thread count.
    ///
    /// Kernels that split work over the engine's own threads and issue many small sgemm calls from
    /// each (attention blocks) want every call single-threaded: OpenBLAS 0.3.21 (pthreads) would
    /// otherwise hand each call above its size threshold to its own thread pool, and concurrent
    /// multithreaded calls oversubscribe the cores and contend on OpenBLAS's level-3 lock.
    /// OpenBLAS's thread count is process-wide (0.3.21 has no per-call or thread-local setting), so
    /// this is meant for the engine's ops, which run one at a time.
    public static func withSingleThreadedCalls<T>(_ body: () throws -> T) rethrows -> T {
        let previous = openblas_get_num_threads()
        if previous <= 1 { return try body() }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(previous) }
        return try body()
    }
}
