import CBLAS
@testable import Tensor
import XCTest

/// `Parallel.independentGroups`: one group of items per thread, each run as a one-thread run.
final class ParallelTests: XCTestCase {
    struct Failure: Error, Equatable { let group: Int }

    func testGroupsSplitTheItemsAndRunEachOnOneThread() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 2
        let seen = try Tensor.withoutGrad {
            try Parallel.independentGroups(count: 5) { range in
                (range, Parallel.threadCount, Int(openblas_get_num_threads()), GradMode.isEnabled)
            }
        }
        let groups = try XCTUnwrap(seen)
        XCTAssertEqual(groups.map(\.0), [0..<2, 2..<5])
        XCTAssertEqual(groups.map(\.1), [1, 1], "each group sees one thread")
        XCTAssertEqual(groups.map(\.2), [1, 1], "OpenBLAS runs single-threaded inside")
        XCTAssertEqual(groups.map(\.3), [false, false], "the caller's grad mode holds on the workers")
        XCTAssertEqual(Parallel.threadCount, 2)
        XCTAssertEqual(openblas_get_num_threads(), 2, "OpenBLAS gets its threads back")

        BLAS.withSingleThreadedCalls {
            XCTAssertNotNil(try? Parallel.independentGroups(count: 2) { _ in 0 })
            XCTAssertEqual(openblas_get_num_threads(), 1, "the count it found is put back")
        }
        Parallel.threadCount = 3
        XCTAssertEqual(try Parallel.independentGroups(count: 7) { $0 }, [0..<2, 2..<4, 4..<7])
        XCTAssertNil(try Parallel.independentGroups(count: 2) { $0 }, "fewer items than threads: nothing runs")
        Parallel.threadCount = 1
        XCTAssertNil(try Parallel.independentGroups(count: 4) { $0 }, "one thread: nothing runs")
    }

    func testTheLowestFailingGroupsErrorIsRethrown() {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 3
        XCTAssertThrowsError(try Parallel.independentGroups(count: 3) { range -> Int in
            if range.lowerBound >= 1 { throw Failure(group: range.lowerBound) }
            return 0
        }) { XCTAssertEqual($0 as? Failure, Failure(group: 1)) }
        XCTAssertEqual(openblas_get_num_threads(), 3)
    }
}
