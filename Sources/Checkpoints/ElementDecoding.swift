import Foundation
import Tensor

/// Widening of every safetensors element type that has one Float per element into Float32.
/// Integers round to the nearest Float; the 8-bit float formats follow the definitions of
/// PyTorch's `float8_*` dtypes (OCP FP8 and the AMD "fnuz" variants), decoded through a table.
enum ElementDecoding {
    /// Converts `count` elements of `dtype` at `source` (any alignment, little-endian) into
    /// `destination`. Returns false for dtypes without a per-element Float (see `convertsToFloat`).
    static func decode(_ dtype: SafeTensors.DType, from source: UnsafeRawPointer, count: Int,
                       into destination: UnsafeMutablePointer<Float>) -> Bool {
        switch dtype {
        case .f32:
            // Little-endian Float32 is the in-memory layout on every platform this builds for.
            UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: count * 4)
        case .f16: Precision.floatsFromF16(source, count: count, into: destination)
        case .bf16: Precision.floatsFromBF16(source, count: count, into: destination)
        case .f64: widen(source, count: count, into: destination) { (value: UInt64) in Float(Double(bitPattern: UInt64(littleEndian: value))) }
        case .i64: widen(source, count: count, into: destination) { (value: Int64) in Float(Int64(littleEndian: value)) }
        case .u64: widen(source, count: count, into: destination) { (value: UInt64) in Float(UInt64(littleEndian: value)) }
        case .i32: widen(source, count: count, into: destination) { (value: Int32) in Float(Int32(littleEndian: value)) }
        case .u32: widen(source, count: count, into: destination) { (value: UInt32) in Float(UInt32(littleEndian: value)) }
        case .i16: widen(source, count: count, into: destination) { (value: Int16) in Float(Int16(littleEndian: value)) }
        case .u16: widen(source, count: count, into: destination) { (value: UInt16) in Float(UInt16(littleEndian: value)) }
        case .i8: widen(source, count: count, into: destination) { (value: Int8) in Float(value) }
        case .u8: widen(source, count: count, into: destination) { (value: UInt8) in Float(value) }
        case .bool: widen(source, count: count, into: destination) { (value: UInt8) in value == 0 ? 0 : 1 }
        case .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ:
            let table = eightBitTable(dtype)
            table.withUnsafeBufferPointer { table in
                widen(source, count: count, into: destination) { (value: UInt8) in table[Int(value)] }
            }
        case .f4, .f6E2M3, .f6E3M2, .c64:
            return false
        }
        return true
    }

    @inline(__always)
    private static func widen<Element>(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>,
                                       _ convert: (Element) -> Float) {
        let stride = MemoryLayout<Element>.size
        for index in 0..<count {
            destination[index] = convert(source.loadUnaligned(fromByteOffset: index &* stride, as: Element.self))
        }
    }

    /// The Float32 value of each of the 256 bit patterns of an 8-bit float format.
    static func eightBitTable(_ dtype: SafeTensors.DType) -> [Float] {
        (0..<256).map { pattern in
            let bits = UInt8(pattern)
            switch dtype {
            case .f8E5M2:
                // The upper byte of an IEEE half: same exponent, Inf and NaN.
                return Precision.floatFromF16Bits(UInt16(bits) << 8)
            case .f8E4M3:
                // E4M3FN: bias 7, no infinities, only S.1111.111 is NaN.
                if bits & 0x7F == 0x7F { return .nan }
                return minifloat(bits, exponentBits: 4, mantissaBits: 3, bias: 7)
            case .f8E4M3FNUZ:
                // Bias 8, no infinities, no negative zero: 0x80 is the only NaN.
                if bits == 0x80 { return .nan }
                return minifloat(bits, exponentBits: 4, mantissaBits: 3, bias: 8)
            case .f8E5M2FNUZ:
                if bits == 0x80 { return .nan }
                return minifloat(bits, exponentBits: 5, mantissaBits: 2, bias: 16)
            case .f8E8M0:
                // E8M0FNU: an unsigned power of two 2^(bits - 127); 0xFF is NaN.
                if bits == 0xFF { return .nan }
                return Float(sign: .plus, exponent: Int(bits) - 127, significand: 1)
            default:
                preconditionFailure("eightBitTable called for \(dtype.rawValue)")
            }
        }
    }

    /// A sign / exponent / mantissa byte without special values (the caller handles NaN).
    private static func minifloat(_ bits: UInt8, exponentBits: Int, mantissaBits: Int, bias: Int) -> Float {
        let sign: FloatingPointSign = bits & 0x80 != 0 ? .minus : .plus
        let exponent = Int(bits >> mantissaBits) & ((1 << exponentBits) - 1)
        let mantissa = Float(Int(bits) & ((1 << mantissaBits) - 1))
        if exponent == 0 {
            return Float(sign: sign, exponent: 1 - bias - mantissaBits, significand: mantissa)
        }
        return Float(sign: sign, exponent: exponent - bias, significand: 1 + mantissa / Float(1 << mantissaBits))
    }
}
