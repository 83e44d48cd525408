import Foundation

// OpenBLAS reads its settings when the library loads, before any Swift code runs: it misdetects
// some current CPUs, and its idle threads spin for ~0.1 s after each call. Re-execute once with
// OPENBLAS_CORETYPE chosen from the CPU's features and OPENBLAS_THREAD_TIMEOUT=4. A value already
// in the environment is respected as it is.
OpenBLASSetup.reexecIfNeeded()

Customize.main()
