import XCTest
@testable import Tensor

final class StorageTests: XCTestCase {
    func testAlignmentAndZeroing() {
        for count in [0, 1, 17, 4096, BufferPool.minimumBytes / 4, BufferPool.minimumBytes / 4 + 5] {
            let storage = Storage(count: count)
            XCTAssertEqual(Int(bitPattern: storage.pointer) % 64, 0)
            for i in 0..<count { XCTAssertEqual(storage.pointer[i], 0) }
        }
    }

    /// A large buffer goes back to the pool and serves the next request of its page count, zeroed
    /// again when asked to be; a smaller one does not come from the pool.
    func testLargeBuffersAreReusedBySize() {
        BufferPool.trim()
        XCTAssertEqual(BufferPool.freeBytes, 0)
        let count = BufferPool.minimumBytes / 4 + 1000
        var first: Storage? = Storage(count: count, zeroed: false)
        let address = first!.pointer
        first!.pointer.update(repeating: 7, count: count)
        let freeBefore = BufferPool.freeBytes
        first = nil
        XCTAssertEqual(BufferPool.freeBytes, freeBefore + BufferPool.pageRounded(count * 4))
        let second = Storage(count: count + 3)
        XCTAssertEqual(BufferPool.freeBytes, freeBefore)
        XCTAssertEqual(second.pointer, address, "same page count: the same buffer")
        XCTAssertTrue((0..<second.count).allSatisfy { second.pointer[$0] == 0 })
        XCTAssertEqual(BufferPool.pageRounded(4097), 8192)
        XCTAssertEqual(BufferPool.pageRounded(8192), 8192)
    }

    /// Free buffers are kept up to the larger of `keptBytes` and the most that was ever live, the
    /// least recently released unmapped first. (The buffers are mapped, never touched: no memory.)
    func testFreeBuffersAreBoundedOldestReleasedFirst() {
        BufferPool.trim()
        let target = max(BufferPool.keptBytes, BufferPool.mostLiveBytes) + (64 << 20)
        func phase(_ base: Int) -> [Storage] {
            var storages: [Storage] = []
            var total = 0, index = 0
            while total < target {
                let count = (base + index * 4096) / 4
                storages.append(Storage(count: count, zeroed: false))
                total += BufferPool.pageRounded(count * 4)
                index += 1
            }
            return storages
        }
        var old: [Storage]? = phase(8 << 20)
        let oldCounts = old!.map(\.count)
        old = nil
        var recent: [Storage]? = phase(9 << 20 + 2048)
        let recentCounts = recent!.map(\.count), recentAddresses = Set(recent!.map(\.pointer))
        recent = nil
        XCTAssertLessThanOrEqual(BufferPool.freeBytes, max(BufferPool.keptBytes, BufferPool.mostLiveBytes))
        let again = recentCounts.map { Storage(count: $0, zeroed: false) }
        XCTAssertEqual(Set(again.map(\.pointer)), recentAddresses, "the recently released buffers were kept")
        let free = BufferPool.freeBytes
        let oldest = Storage(count: oldCounts[0], zeroed: false)
        XCTAssertEqual(BufferPool.freeBytes, free, "the first buffer released was unmapped: a new one is mapped")
        withExtendedLifetime(oldest) {}
    }
}
