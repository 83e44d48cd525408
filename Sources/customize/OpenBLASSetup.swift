import Foundation
import Tensor

/// Sets OpenBLAS's load-time environment before the library reads it: the kernel set
/// (OPENBLAS_CORETYPE, from the CPU's features) and how long idle threads spin
/// (OPENBLAS_THREAD_TIMEOUT); and glibc's malloc arenas (MALLOC_ARENA_MAX=1), read at start-up
/// too. Tensors freed by worker threads otherwise spread over an arena per thread, and sampling's
/// resident set then swung between 280 and 350 MB from run to run for 108 MB of live tensors; with
/// one arena it stayed at 250–275 MB (`customize bench model --arch unet3d --threads 2`, AMD EPYC
/// Zen 4, 2 cores) at the same speed. A variable the environment already set is kept as it is.
enum OpenBLASSetup {
    /// Set in the child so a failed choice can never loop.
    static let marker = "CUSTOMIZE_OPENBLAS_REEXEC"

    /// The variables to set for `environment` (none when all are set already).
    static func choices(environment: [String: String], cpuFlags: Set<String>) -> [(String, String)] {
        var choices: [(String, String)] = []
        func unset(_ name: String) -> Bool { (environment[name] ?? "").isEmpty }
        if unset("OPENBLAS_CORETYPE"), let core = BLAS.preferredCoreType(cpuFlags: cpuFlags) {
            choices.append(("OPENBLAS_CORETYPE", core))
        }
        if unset("OPENBLAS_THREAD_TIMEOUT") { choices.append(("OPENBLAS_THREAD_TIMEOUT", BLAS.preferredThreadTimeout)) }
        if unset("MALLOC_ARENA_MAX") { choices.append(("MALLOC_ARENA_MAX", "1")) }
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
