import XCTest
@testable import Tensor

final class RandomTests: XCTestCase {
    /// Known answers from Random123's kat_vectors (philox4x32 with 10 rounds).
    func testPhiloxKnownAnswers() {
        func check(_ counter: Philox4x32.Block, _ key: (UInt32, UInt32), _ expected: [UInt32], line: UInt = #line) {
            let r = Philox4x32.block(counter: counter, key: key)
            XCTAssertEqual([r.0, r.1, r.2, r.3], expected, line: line)
        }
        check((0, 0, 0, 0), (0, 0), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
        check((.max, .max, .max, .max), (.max, .max), [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
        check((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), (0xa409_3822, 0x299f_31d0),
              [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
    }

    /// The generator's counter layout: (position low, position high, stream low, stream high), key = seed.
    func testGeneratorBlockLayoutMatchesPhilox() {
        let generator = RandomGenerator(seed: 0x299f_31d0_a409_3822, stream: 0x0370_7344_1319_8a2e)
        let r = generator.block(at: 0x85a3_08d3_243f_6a88)
        XCTAssertEqual([r.0, r.1, r.2, r.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])

        var uniform = RandomGenerator(seed: 0)
        let values = uniform.uniformValues(count: 4)
        XCTAssertEqual(values[0], Float(0x6627_e8d5 >> 8) * 0x1p-24)
        XCTAssertEqual(values[3], Float(0x9b00_dbd8 >> 8) * 0x1p-24)
    }

    func testOffsetAdvancesByCountersUsed() throws {
        var generator = RandomGenerator(seed: 7)
        _ = generator.uniform([10])
        XCTAssertEqual(generator.offset, 3)
        _ = generator.normal([2, 2])
        XCTAssertEqual(generator.offset, 4)
        _ = try generator.integers(below: 10, count: 5)
        XCTAssertEqual(generator.offset, 7)
        _ = generator.shuffled(Array(0..<4))
        XCTAssertEqual(generator.offset, 9)

        // Two draws that fill whole blocks equal one draw of both.
        var split = RandomGenerator(seed: 3), whole = RandomGenerator(seed: 3)
        let first = split.normal([8]).values, second = split.normal([8]).values
        XCTAssertEqual(first + second, whole.normal([16]).values)
        XCTAssertEqual(split.offset, whole.offset)
        // Resuming from an offset reproduces the rest of a stream.
        var resumed = RandomGenerator(seed: 3, offset: 2)
        XCTAssertEqual(resumed.normal([8]).values, second)
    }

    func testSameResultOnAnyThreadCount() {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        func draw() -> [[Float]] {
            var generator = RandomGenerator(seed: 42).derived(3)
            return [generator.normal([100_003]).values, generator.uniform([70_001], low: -2, high: 5).values,
                    generator.bernoulli([50_000], probability: 0.3).values]
        }
        Parallel.threadCount = 1
        let single = draw()
        Parallel.threadCount = 2
        let double = draw()
        XCTAssertEqual(single, double)
    }

    func testNormalMoments() {
        var generator = RandomGenerator(seed: 1234)
        let x = generator.normal([200_000]).values.map(Double.init)
        let mean = x.reduce(0, +) / Double(x.count)
        let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(x.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance.squareRoot(), 1, accuracy: 0.01)
        // Fourth moment of a standard normal is 3: catches a wrong Box–Muller radius.
        let kurtosis = x.map { Foundation.pow($0 - mean, 4) }.reduce(0, +) / Double(x.count) / (variance * variance)
        XCTAssertEqual(kurtosis, 3, accuracy: 0.1)
        let scaled = generator.normal([100_000], mean: 3, std: 0.5).values.map(Double.init)
        let scaledMean = scaled.reduce(0, +) / Double(scaled.count)
        let scaledStd = (scaled.map { ($0 - scaledMean) * ($0 - scaledMean) }.reduce(0, +) / Double(scaled.count)).squareRoot()
        XCTAssertEqual(scaledMean, 3, accuracy: 0.01)
        XCTAssertEqual(scaledStd, 0.5, accuracy: 0.01)
        XCTAssertTrue(scaled.allSatisfy(\.isFinite))
    }

    func testUniformIntegersBernoulliShuffle() throws {
        var generator = RandomGenerator(seed: 99)
        let u = generator.uniform([100_000], low: -3, high: 2).values
        XCTAssertTrue(u.allSatisfy { $0 >= -3 && $0 < 2 })
        XCTAssertEqual(Double(u.reduce(0, +)) / Double(u.count), -0.5, accuracy: 0.02)

        let n = try generator.integers(below: 10, count: 50_000)
        XCTAssertTrue(n.allSatisfy { (0..<10).contains($0) })
        for value in 0..<10 {
            XCTAssertEqual(Double(n.filter { $0 == value }.count) / 50_000, 0.1, accuracy: 0.01)
        }
        XCTAssertThrowsError(try generator.integers(below: 0, count: 1))

        let b = generator.bernoulli([100_000], probability: 0.25).values
        XCTAssertTrue(b.allSatisfy { $0 == 0 || $0 == 1 })
        XCTAssertEqual(Double(b.reduce(0, +)) / 100_000, 0.25, accuracy: 0.01)

        let items = Array(0..<100)
        let shuffled = generator.shuffled(items)
        XCTAssertEqual(shuffled.sorted(), items)
        XCTAssertNotEqual(shuffled, items)
        // Each position is uniform: item 0 lands in the first half about half of the time.
        var firstHalf = 0
        for _ in 0..<2000 where generator.shuffled(Array(0..<10)).firstIndex(of: 0)! < 5 { firstHalf += 1 }
        XCTAssertEqual(Double(firstHalf) / 2000, 0.5, accuracy: 0.05)
    }

    func testDerivedStreams() {
        var parent = RandomGenerator(seed: 5)
        let before = parent.derived(2)
        _ = parent.uniform([100])
        // A derived stream depends on (seed, stream, index), not on how much the parent drew.
        XCTAssertEqual(parent.derived(2), before)
        var a = parent.derived(0), b = parent.derived(1), root = RandomGenerator(seed: 5)
        let va = a.uniformValues(count: 64), vb = b.uniformValues(count: 64), vr = root.uniformValues(count: 64)
        XCTAssertNotEqual(va, vb)
        XCTAssertNotEqual(va, vr)
        XCTAssertNotEqual(RandomGenerator(seed: 6).derived(0), parent.derived(0))
        XCTAssertNotEqual(parent.derived(0).derived(0), parent.derived(0))
        XCTAssertEqual(before.offset, 0)
    }
}
