import Foundation

/// Conversions between Float32 and the 16-bit storage formats of checkpoints: IEEE 754 half
/// (`torch.float16`, safetensors `F16`) and bfloat16 (`torch.bfloat16`, safetensors `BF16`).
///
/// The 16-bit side is a raw byte buffer in little-endian order, as safetensors stores it. Its
/// address may be odd: a tensor's data offset inside a safetensors file is arbitrary, so every
/// access goes through `loadUnaligned` / `storeBytes`, which compile to plain moves on x86_64.
///
/// Rounding is round-to-nearest-even in both directions where it matters (narrowing); NaN stays
/// NaN (quieted), infinities stay infinities, values beyond the F16 range become ±Inf and tiny
/// values become F16 subnormals or ±0. The loops are branch-light integer code so that the
/// optimiser can vectorise them; this type depends on nothing but the standard library.
public enum Precision {
    // MARK: - Widening (exact)

    /// Widens `count` little-endian IEEE half values at `src` into Float32 values at `dst`.
    /// Every half value, subnormals included, is exactly representable in Float32.
    public static func floatsFromF16(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for index in 0..<count {
            let half = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
            dst[index] = floatFromF16Bits(half)
        }
    }

    /// Widens `count` little-endian bfloat16 values at `src` into Float32 values at `dst`.
    /// bfloat16 is the upper half of a Float32, so widening is a shift.
    public static func floatsFromBF16(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        for index in 0..<count {
            let brain = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
            dst[index] = Float(bitPattern: UInt32(brain) << 16)
        }
    }

    // MARK: - Narrowing (rounded to nearest even)

    /// Narrows `count` Float32 values at `src` to little-endian IEEE half values at `dst`.
    public static func f16FromFloats(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for index in 0..<count {
            dst.storeBytes(of: f16Bits(from: src[index]).littleEndian, toByteOffset: index &* 2, as: UInt16.self)
        }
    }

    /// Narrows `count` Float32 values at `src` to little-endian bfloat16 values at `dst`.
    public static func bf16FromFloats(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        for index in 0..<count {
            dst.storeBytes(of: bf16Bits(from: src[index]).littleEndian, toByteOffset: index &* 2, as: UInt16.self)
        }
    }

    // MARK: - Single values

    /// The Float32 value of one IEEE half bit pattern.
    ///
    /// Moves the exponent and mantissa into place and rebiases the exponent; the two special
    /// exponents are fixed up afterwards: all-ones (Inf/NaN) gets the Float32 all-ones exponent,
    /// and zero (subnormals) is normalised by letting the FPU subtract an exact power of two.
    @inline(__always)
    public static func floatFromF16Bits(_ half: UInt16) -> Float {
        let halfExponentMask: UInt32 = 0x7C00 << 13
        var bits = UInt32(half & 0x7FFF) << 13
        let exponent = bits & halfExponentMask
        bits &+= (127 - 15) << 23
        if exponent == halfExponentMask {
            bits &+= (128 - 16) << 23
        } else if exponent == 0 {
            // 2^-14 (the smallest normal half) in Float32: subtracting it from 2^-14 * (1 + m/1024)
            // leaves exactly m * 2^-24, the subnormal's value.
            let smallestNormal = Float(bitPattern: 113 << 23)
            bits &+= 1 << 23
            bits = (Float(bitPattern: bits) - smallestNormal).bitPattern
        }
        bits |= UInt32(half & 0x8000) << 16
        return Float(bitPattern: bits)
    }

    /// The IEEE half bit pattern nearest to `value` (ties to even); NaN becomes the quiet NaN
    /// 0x7E00 with the sign kept, values at or past 65520 become Inf.
    @inline(__always)
    public static func f16Bits(from value: Float) -> UInt16 {
        var bits = value.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        let result: UInt32
        if bits >= (127 + 16) << 23 {
            // |value| >= 65536, Inf or NaN: the half exponent is all ones either way.
            result = bits > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if bits < 113 << 23 {
            // |value| < 2^-14: the result is a half subnormal or zero. Adding 0.5 aligns the ten
            // mantissa bits at the bottom of the Float32, and the FPU rounds to nearest even.
            let alignment = Float(bitPattern: ((127 - 15) + (23 - 10) + 1) << 23)
            result = (Float(bitPattern: bits) + alignment).bitPattern &- alignment.bitPattern
        } else {
            // Normal half (or the round-up to Inf just below 65536): rebias the exponent, then
            // add just under half an ulp plus the lowest kept bit, so ties go to even.
            let keptLowestBit = (bits >> 13) & 1
            bits &+= UInt32(bitPattern: Int32(15 - 127) << 23) &+ 0xFFF &+ keptLowestBit
            result = bits >> 13
        }
        return UInt16(truncatingIfNeeded: result | (sign >> 16))
    }

    /// The bfloat16 bit pattern nearest to `value` (ties to even); NaN is kept and quieted,
    /// values that round past the largest bfloat16 become Inf.
    @inline(__always)
    public static func bf16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7FFF_FFFF > 0x7F80_0000 {
            // Truncating a NaN could clear every mantissa bit and produce Inf; setting the quiet
            // bit keeps it a NaN.
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        let roundingBias = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }
}
