import Foundation
import Tensor

/// Chooses OpenBLAS's kernel set before the library reads it.
enum OpenBLASSetup {
    /// Set in the child so a failed choice can never loop.
    static let marker = "CUSTOMIZE_OPENBLAS_REEXEC"

    static func reexecIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard (environment["OPENBLAS_CORETYPE"] ?? "").isEmpty, environment[marker] == nil,
              let core = BLAS.preferredCoreType(cpuFlags: BLAS.cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(marker, "1", 1)
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // exec failed (no /proc?): carry on with OpenBLAS's own choice.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
