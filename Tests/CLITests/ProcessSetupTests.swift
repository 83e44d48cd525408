import Tensor
import XCTest
@testable import customize

/// The load-time environment the CLI re-executes itself with: its own choices where a variable is
/// unset, and whatever the environment already says where it is set.
final class ProcessSetupTests: XCTestCase {
    func testChoicesFillOnlyUnsetVariables() {
        let flags: Set<String> = ["avx2", "fma"]
        let fresh = Dictionary(uniqueKeysWithValues: OpenBLASSetup.choices(environment: [:], cpuFlags: flags))
        XCTAssertEqual(fresh["MALLOC_ARENA_MAX"], "1")
        XCTAssertEqual(fresh["OPENBLAS_THREAD_TIMEOUT"], BLAS.preferredThreadTimeout)
        XCTAssertEqual(fresh["MALLOC_MMAP_THRESHOLD_"], "33554432")
        XCTAssertEqual(fresh["MALLOC_TRIM_THRESHOLD_"], "268435456")
        let set = ["MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072", "OPENBLAS_THREAD_TIMEOUT": "7", "OPENBLAS_CORETYPE": "Haswell"]
        XCTAssertTrue(OpenBLASSetup.choices(environment: set, cpuFlags: flags).isEmpty, "a set variable is never overridden")
        let empty = OpenBLASSetup.choices(environment: ["MALLOC_ARENA_MAX": ""], cpuFlags: flags)
        XCTAssertTrue(empty.contains { $0 == ("MALLOC_ARENA_MAX", "1") }, "an empty variable counts as unset")
    }
}
