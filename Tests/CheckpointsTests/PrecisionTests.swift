import XCTest
import Tensor

/// Float32 ↔ F16 / BF16 conversions, checked against Swift's own `Float16` (a correct IEEE
/// implementation) and against a bfloat16 rounding computed independently in Double.
final class PrecisionTests: XCTestCase {
    // MARK: F16

    func testEveryHalfWidensLikeFloat16() {
        for pattern in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: pattern))
            let widened = Precision.floatFromF16Bits(pattern)
            if expected.isNaN {
                XCTAssertTrue(widened.isNaN, "half 0x\(String(pattern, radix: 16))")
                XCTAssertEqual(widened.sign, expected.sign, "half 0x\(String(pattern, radix: 16))")
            } else {
                XCTAssertEqual(widened.bitPattern, expected.bitPattern, "half 0x\(String(pattern, radix: 16))")
            }
        }
    }

    func testHalfNarrowingMatchesFloat16AtValuesMidpointsAndNeighbours() {
        var checked = 0
        for pattern in 0...UInt16.max {
            let half = Float16(bitPattern: pattern)
            guard half.isFinite else { continue }
            let value = Float(half)
            // The midpoint to the next half up is exact in Float32 (12 significant bits), so it
            // is a true tie; its Float32 neighbours are just off the tie.
            let next = Float(half.nextUp)
            let midpoint = Float((Double(value) + Double(next)) / 2)
            for probe in [value, midpoint, midpoint.nextDown, midpoint.nextUp] where probe.isFinite {
                XCTAssertEqual(Precision.f16Bits(from: probe), Float16(probe).bitPattern, "float \(probe)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 200_000)
    }

    func testHalfNarrowingMatchesFloat16OnRandomBitPatterns() {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<1_000_000 {
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()))
            let expected = Float16(value)
            let narrowed = Precision.f16Bits(from: value)
            if value.isNaN {
                XCTAssertTrue(Float16(bitPattern: narrowed).isNaN)
                XCTAssertEqual(Float16(bitPattern: narrowed).sign, value.sign)
            } else {
                XCTAssertEqual(narrowed, expected.bitPattern, "float bits 0x\(String(value.bitPattern, radix: 16))")
            }
        }
    }

    func testHalfEdgeCases() {
        func narrowed(_ value: Float) -> Float { Float(Float16(bitPattern: Precision.f16Bits(from: value))) }
        XCTAssertEqual(narrowed(65504), 65504)
        XCTAssertEqual(narrowed(65519), 65504, "below the halfway point to 65536 rounds down")
        XCTAssertEqual(narrowed(65520), .infinity, "the halfway point to 65536 rounds to even: Inf")
        XCTAssertEqual(narrowed(1e10), .infinity)
        XCTAssertEqual(narrowed(-1e10), -.infinity)
        XCTAssertEqual(narrowed(.infinity), .infinity)
        XCTAssertEqual(narrowed(-.infinity), -.infinity)
        XCTAssertTrue(narrowed(.nan).isNaN)
        XCTAssertEqual(Precision.f16Bits(from: -.nan) & 0x8000, 0x8000, "NaN keeps its sign")
        XCTAssertTrue(narrowed(Float(bitPattern: 0x7F80_0001)).isNaN, "signalling NaN with a low payload stays NaN")
        let smallestSubnormal = Float(sign: .plus, exponent: -24, significand: 1)
        XCTAssertEqual(narrowed(smallestSubnormal), smallestSubnormal)
        XCTAssertEqual(narrowed(smallestSubnormal / 2), 0, "tie between 0 and the smallest subnormal goes to even (0)")
        XCTAssertEqual(narrowed(smallestSubnormal * 1.5), smallestSubnormal * 2, "tie goes to even (2 × 2^-24)")
        XCTAssertEqual(narrowed(smallestSubnormal * 0.75), smallestSubnormal)
        XCTAssertEqual(Precision.f16Bits(from: -1e-8), 0x8000, "underflow keeps the sign")
        XCTAssertEqual(narrowed(2049), 2048, "tie between 2048 and 2050 goes to even")
        XCTAssertEqual(narrowed(2051), 2052, "tie between 2050 and 2052 goes to even")
        XCTAssertEqual(Precision.floatFromF16Bits(0x0001), smallestSubnormal)
        XCTAssertEqual(Precision.floatFromF16Bits(0x03FF), Float(sign: .plus, exponent: -24, significand: 1023))
        XCTAssertEqual(Precision.floatFromF16Bits(0x7C00), .infinity)
        XCTAssertEqual(Precision.floatFromF16Bits(0xFC00), -.infinity)
        XCTAssertTrue(Precision.floatFromF16Bits(0x7C01).isNaN)
        XCTAssertEqual(Precision.floatFromF16Bits(0x8000).bitPattern, (-Float(0)).bitPattern)
    }

    // MARK: BF16

    func testBrainFloatWideningIsAShift() {
        for pattern: UInt16 in [0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x0001, 0x7F7F, 0x4049] {
            XCTAssertEqual(Precision.floatFromBF16ViaBuffer(pattern).bitPattern, UInt32(pattern) << 16)
        }
        XCTAssertEqual(Precision.floatFromBF16ViaBuffer(0x3F80), 1)
        XCTAssertTrue(Precision.floatFromBF16ViaBuffer(0x7FC0).isNaN)
    }

    func testBrainFloatNarrowingMatchesNearestEvenComputedInDouble() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<1_000_000 {
            let value = Float(bitPattern: UInt32(truncatingIfNeeded: generator.next()))
            guard !value.isNaN else { continue }
            XCTAssertEqual(Precision.bf16Bits(from: value), referenceBrainFloat(value),
                           "float bits 0x\(String(value.bitPattern, radix: 16))")
        }
    }

    func testBrainFloatEdgeCases() {
        func narrowed(_ value: Float) -> Float { Float(bitPattern: UInt32(Precision.bf16Bits(from: value)) << 16) }
        XCTAssertEqual(narrowed(1.00390625), 1, "1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1")
        XCTAssertEqual(narrowed(1.01171875), 1.015625, "1 + 3·2^-8 is a tie: even is 1 + 2^-6")
        XCTAssertEqual(narrowed(Float(1.00390625).nextUp), 1.0078125, "just above the tie rounds up")
        XCTAssertEqual(narrowed(Float(1.00390625).nextDown), 1, "just below the tie rounds down")
        XCTAssertEqual(narrowed(.greatestFiniteMagnitude), .infinity, "rounds past the largest bfloat16")
        XCTAssertEqual(narrowed(-.greatestFiniteMagnitude), -.infinity)
        XCTAssertEqual(narrowed(.infinity), .infinity)
        XCTAssertEqual(narrowed(-.infinity), -.infinity)
        XCTAssertEqual(narrowed(-0.0).bitPattern, (-Float(0)).bitPattern)
        for nan in [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFF80_0001)] {
            let result = narrowed(nan)
            XCTAssertTrue(result.isNaN, "NaN 0x\(String(nan.bitPattern, radix: 16)) must stay NaN")
            XCTAssertEqual(result.sign, nan.sign)
        }
        let subnormal = Float(bitPattern: 0x0000_8001)
        XCTAssertEqual(narrowed(subnormal).bitPattern, 0x0001_0000, "subnormals round like normals")
    }

    // MARK: Buffers

    func testBufferConversionsHandleUnalignedSources() {
        let values: [Float] = [1, -2.5, 0.099975586, 65504, -0.0, 3.0e-5]
        for misalignment in 0..<4 {
            var halfBytes = [UInt8](repeating: 0xAA, count: misalignment + values.count * 2)
            var brainBytes = halfBytes
            halfBytes.withUnsafeMutableBytes { Precision.f16FromFloats(values, count: values.count, into: $0.baseAddress! + misalignment) }
            brainBytes.withUnsafeMutableBytes { Precision.bf16FromFloats(values, count: values.count, into: $0.baseAddress! + misalignment) }
            XCTAssertEqual(halfBytes[..<misalignment].allSatisfy { $0 == 0xAA }, true, "nothing written before the buffer")
            var fromHalf = [Float](repeating: .nan, count: values.count)
            var fromBrain = fromHalf
            halfBytes.withUnsafeBytes { Precision.floatsFromF16($0.baseAddress! + misalignment, count: values.count, into: &fromHalf) }
            brainBytes.withUnsafeBytes { Precision.floatsFromBF16($0.baseAddress! + misalignment, count: values.count, into: &fromBrain) }
            for (index, value) in values.enumerated() {
                XCTAssertEqual(fromHalf[index].bitPattern, Float(Float16(value)).bitPattern)
                XCTAssertEqual(fromBrain[index].bitPattern, UInt32(referenceBrainFloat(value)) << 16)
                // Little-endian byte order in the buffer.
                let storedHalf = UInt16(halfBytes[misalignment + 2 * index]) | UInt16(halfBytes[misalignment + 2 * index + 1]) << 8
                XCTAssertEqual(storedHalf, Float16(value).bitPattern)
            }
        }
    }

    /// bfloat16 nearest to `value` with ties to even, found by comparing the two candidates'
    /// distances in Double rather than by the bit trick under test.
    private func referenceBrainFloat(_ value: Float) -> UInt16 {
        let truncated = UInt16(truncatingIfNeeded: value.bitPattern >> 16)
        let lower = Float(bitPattern: UInt32(truncated) << 16)
        guard lower.bitPattern != value.bitPattern else { return truncated }
        let upperPattern = truncated &+ 1  // one bfloat16 step away from zero
        let upper = Float(bitPattern: UInt32(upperPattern) << 16)
        let distanceLower = abs(Double(value) - Double(lower))
        // The step past the largest finite bfloat16 is Inf; measure it as the next power of two.
        let upperMagnitude = upper.isInfinite ? 0x1p128 : abs(Double(upper))
        let distanceUpper = abs(abs(Double(value)) - upperMagnitude)
        if distanceLower < distanceUpper { return truncated }
        if distanceUpper < distanceLower { return upperPattern }
        return truncated & 1 == 0 ? truncated : upperPattern
    }
}

extension Precision {
    /// Widens one bfloat16 through the buffer API.
    fileprivate static func floatFromBF16ViaBuffer(_ pattern: UInt16) -> Float {
        var result: Float = 0
        withUnsafeBytes(of: pattern.littleEndian) { floatsFromBF16($0.baseAddress!, count: 1, into: &result) }
        return result
    }
}

/// A small seeded generator so the random checks are reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
