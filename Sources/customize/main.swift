import Foundation

// OpenBLAS picks its kernels when the library loads, before any Swift code runs, and
// misdetects some current CPUs; re-execute once with OPENBLAS_CORETYPE chosen from the CPU's
// features. A value already in the environment is respected as it is.
OpenBLASSetup.reexecIfNeeded()

Customize.main()
