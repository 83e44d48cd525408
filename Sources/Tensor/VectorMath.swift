/// Vectorised transcendental functions over raw buffers.
///
/// libm's `expf` is a scalar call per element; these evaluate eight lanes at once with
/// polynomial approximations accurate to a couple of ULP (Cephes' expf scheme), which is what
/// softmax, SiLU, GELU and friends spend their time on.
public enum VectorMath {
    public typealias Vector = SIMD8<Float>

    /// e^x for eight lanes; inputs are clamped to the range where the result is finite and normal.
    @inline(__always)
    public static func exp(_ x: Vector) -> Vector {
        // Compares with `replacing` and the shifter below compile to vector instructions; SIMD
        // `clamped`, `rounded`, `pointwiseMin/Max` and Float-to-Int32 conversion become per-lane
        // calls (10-30x slower).
        var clamped = x.replacing(with: Vector(repeating: 88.37626), where: x .> 88.37626)
        clamped = clamped.replacing(with: Vector(repeating: -87.33654), where: clamped .< -87.33654)
        // x = n ln2 + r, |r| <= ln2/2; adding 1.5·2^23 rounds to the nearest integer (ties to even)
        // and leaves n in the low mantissa bits of `shifted`.
        let shifted = clamped * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        var r = clamped - n * 0.693_359_375
        r = r + n * 2.121_944_4e-4
        // Polynomial for e^r - 1 - r, Cephes expf coefficients.
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        let er = p * (r * r) + r + 1
        // Multiply by 2^n through the exponent bits.
        let bits = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return er * unsafeBitCast(bits, to: Vector.self)
    }

    /// Scalar e^x with the same arithmetic as the vector version, for loop tails.
    @inline(__always)
    public static func exp(_ x: Float) -> Float {
        exp(Vector(repeating: x))[0]
    }

    /// y[i] = e^x[i].
    public static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        apply(x, y, n) { exp($0) }
    }

    /// tanh through e^(2x): tanh x = 1 - 2 / (e^(2x) + 1); saturates cleanly at ±1.
    @inline(__always)
    public static func tanh(_ x: Vector) -> Vector {
        let e = exp(x * 2)
        return 1 - 2 / (e + 1)
    }

    /// 1 / (1 + e^-x).
    @inline(__always)
    public static func sigmoid(_ x: Vector) -> Vector {
        1 / (1 + exp(-x))
    }

    /// erf(x), Abramowitz & Stegun 7.1.26 refined (max abs error about 1.2e-7).
    @inline(__always)
    public static func erf(_ x: Vector) -> Vector {
        // Uses erf(x) = 1 - t * exp(-x^2 + P(t)) with t = 1 / (1 + 0.5|x|) (Numerical Recipes' erfc).
        let z = x.replacing(with: -x, where: x .< 0)
        let t = 1 / (1 + 0.5 * z)
        var p = Vector(repeating: 0.170_872_77)
        p = p * t - 0.822_152_23
        p = p * t + 1.488_515_87
        p = p * t - 1.135_203_98
        p = p * t + 0.278_868_07
        p = p * t - 0.186_288_06
        p = p * t + 0.096_784_18
        p = p * t + 0.374_091_96
        p = p * t + 1.000_023_68
        p = p * t - 1.265_512_23
        let erfc = t * exp(p - z * z)
        let result = 1 - erfc
        return result.replacing(with: -result, where: x .< 0)
    }

    /// Applies a vector function to a buffer in lanes of eight, padding the tail.
    @inline(__always)
    public static func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                             _ f: (Vector) -> Vector) {
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: f(v), as: Vector.self)
            i += 8
        }
        if i < n {
            var v = Vector(repeating: 0)
            for lane in 0..<(n - i) { v[lane] = x[i + lane] }
            let r = f(v)
            for lane in 0..<(n - i) { y[i + lane] = r[lane] }
        }
    }
}
