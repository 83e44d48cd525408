import CBLAS
import Foundation

/// The OpenBLAS library: its thread count, the kernel set it chose, and a Swift-shaped sgemm.
public enum BLAS {
    /// Sets OpenBLAS's thread count (with `Parallel.threadCount`; `withSingleThreadedCalls` and
    /// `Parallel.independentGroups` lower it for a while and put it back).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(count))
    }

    /// OpenBLAS's thread count now.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The core (kernel set) OpenBLAS chose when it loaded, e.g. "Haswell", "SkylakeX", "Prescott".
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// How long an idle OpenBLAS thread spins before it sleeps, as the library read
    /// OPENBLAS_THREAD_TIMEOUT when it loaded: 2^n cycles, n in 4...30; nil when unset (OpenBLAS's
    /// default, 2^28 cycles, about a tenth of a second).
    public static var threadTimeout: Int? {
        let value = Int(openblas_thread_timeout())
        return value > 0 ? Swift.min(Swift.max(value, 4), 30) : nil  // OpenBLAS clamps it so
    }

    /// The OPENBLAS_THREAD_TIMEOUT `customize` sets when the environment leaves it unset: idle
    /// OpenBLAS threads sleep after 2^4 cycles instead of spinning on sched_yield for ~0.1 s after
    /// every call, which on two cores took time from the engine's own element-wise workers (U-Net
    /// training ran 1.18 step/s with the default and 1.56-1.65 with this value, README).
    public static let preferredThreadTimeout = "4"

    /// The kernel set to request for this CPU through OPENBLAS_CORETYPE, from its features:
    /// AVX-512 → SKYLAKEX, AVX2 → HASWELL; nil when neither (OpenBLAS's own choice is then kept).
    /// OpenBLAS 0.3.21 does not recognise some current server CPUs and falls back to generic
    /// Prescott kernels that run sgemm 4-6x slower.
    public static func preferredCoreType(cpuFlags: Set<String>) -> String? {
        if cpuFlags.contains("avx512f") && cpuFlags.contains("avx512bw") && cpuFlags.contains("avx512vl") {
            return "SKYLAKEX"
        }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return "HASWELL" }
        return nil
    }

    /// The CPU's model name as Linux reports it in /proc/cpuinfo ("AMD EPYC 9R14 96-Core
    /// Processor"), or "unknown" where unavailable: printed beside every benchmark figure.
    public static func cpuModel() -> String {
        guard let name = cpuInfo("model name"), !name.isEmpty else { return "unknown" }
        return name
    }

    /// The CPU feature flags Linux reports in /proc/cpuinfo (empty where unavailable).
    public static func cpuFlags() -> Set<String> {
        Set((cpuInfo("flags") ?? "").split(separator: " ").map(String.init))
    }

    /// The value of the first `key : value` line of /proc/cpuinfo, trimmed; nil where unavailable.
    static func cpuInfo(_ key: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// C = alpha · op(A) · op(B) + beta · C on row-major buffers, op(X) = X or Xᵀ.
    /// `m×k` is op(A)'s shape, `k×n` op(B)'s; leading dimensions are those of the stored matrices.
    @inline(__always)
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
