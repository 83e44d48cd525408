import Foundation
import Tensor

/// Sets OpenBLAS's load-time environment before the library reads it: the kernel set
/// (OPENBLAS_CORETYPE, from the CPU's features) and how long idle threads spin
/// (OPENBLAS_THREAD_TIMEOUT); and glibc malloc's arenas and when it hands pages back, read at start-up
/// too. Tensors freed by worker threads otherwise spread over an arena per thread, and sampling's
/// resident set then swung between 280 and 350 MB from run to run for 108 MB of live tensors; with
/// one arena it stayed at 250–275 MB (`customize bench model --arch unet3d --threads 2`, AMD EPYC
/// Zen 4, 2 cores) at the same speed. glibc also hands freed pages back to the kernel: a buffer
/// above its mmap threshold (128 KB at first, then the largest mapped buffer freed so far) is
/// mapped for each allocation and unmapped when freed, and the heap's free top is trimmed beyond
/// twice that. Every sampling step then faulted its tensors' pages back in, zero-filled: about
/// 10 K page faults per unet3d forward, 5–7% of sampling's time in the kernel. `MALLOC_MMAP_THRESHOLD_` 32 MB
/// and `MALLOC_TRIM_THRESHOLD_` 256 MB keep freed pages in the heap for the next step: page faults
/// 279 K → 50 K over 20 unet3d forwards, forward time 226 → 206 ms (medians of 5 alternating
/// processes); `customize bench model --arch unet3d` peak resident set 228–250 → 232–245 MB. A variable the environment already
/// set is kept as it is.
enum OpenBLASSetup {
    /// Set in the child so a failed choice can never loop.
    static let marker = "CUSTOMIZE_OPENBLAS_REEXEC"

    /// Buffers below this come from the heap and are reused there; glibc's dynamic threshold
    /// would grow to the same 32 MB cap, but only after first mapping and unmapping each size.
    /// 32 MB is also the largest value glibc accepts (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit):
    /// a larger one would be ignored.
    static let mmapThresholdBytes = 32 << 20
    /// The heap's free top is handed back to the kernel only beyond this.
    static let trimThresholdBytes = 256 << 20

    /// The variables to set for `environment` (none when all are set already).
    static func choices(environment: [String: String], cpuFlags: Set<String>) -> [(String, String)] {
        var choices: [(String, String)] = []
        func unset(_ name: String) -> Bool { (environment[name] ?? "").isEmpty }
        if unset("OPENBLAS_CORETYPE"), let core = BLAS.preferredCoreType(cpuFlags: cpuFlags) {
            choices.append(("OPENBLAS_CORETYPE", core))
        }
        if unset("OPENBLAS_THREAD_TIMEOUT") { choices.append(("OPENBLAS_THREAD_TIMEOUT", BLAS.preferredThreadTimeout)) }
        if unset("MALLOC_ARENA_MAX") { choices.append(("MALLOC_ARENA_MAX", "1")) }
        if unset("MALLOC_MMAP_THRESHOLD_") { choices.append(("MALLOC_MMAP_THRESHOLD_", String(mmapThresholdBytes))) }
        if unset("MALLOC_TRIM_THRESHOLD_") { choices.append(("MALLOC_TRIM_THRESHOLD_", String(trimThresholdBytes))) }
        return choices
    }

    static func reexecIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard environment[marker] == nil else { return }
        let choices = choices(environment: environment, cpuFlags: BLAS.cpuFlags())
        guard !choices.isEmpty else { return }
        for (name, value) in choices { setenv(name, value, 1) }
        setenv(marker, "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // exec failed (no /proc?): carry on with OpenBLAS's own choices.
        for (name, _) in choices { unsetenv(name) }
        unsetenv(marker)
    }
}
