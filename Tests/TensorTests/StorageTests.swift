import XCTest
@testable import Tensor

final class StorageTests: XCTestCase {
    func testAlignmentAndZeroing() {
        for count in [0, 1, 17, 4096] {
            let storage = Storage(count: count)
            XCTAssertEqual(Int(bitPattern: storage.pointer) % 64, 0)
            for i in 0..<count { XCTAssertEqual(storage.pointer[i], 0) }
        }
    }
}
