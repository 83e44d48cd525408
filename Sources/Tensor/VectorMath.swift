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
        // Codegen notes (checked in the disassembly): compares with `replacing` and the shifter
        // below compile to vector instructions, while SIMD `clamped`, `rounded`, `pointwiseMin/Max`
        // and Float-to-Int32 conversion become per-lane calls (10-30x slower). Swift does not fuse
        // `a * b + c`, so the fused multiply-adds are spelt `addingProduct`; a scalar literal on the
        // left of an operator (`1 - v`) can scalarise whole expressions, so constants are vectors.
        var clamped = x.replacing(with: Vector(repeating: 88.37626), where: x .> 88.37626)
        clamped = clamped.replacing(with: Vector(repeating: -87.33654), where: clamped .< -87.33654)
        // x = n ln2 + r, |r| <= ln2/2; adding 1.5·2^23 (in the same rounding as the product) rounds
        // to the nearest integer (ties to even) and leaves n in the low mantissa bits of `shifted`.
        let shifter = Vector(repeating: 12_582_912)
        let shifted = shifter.addingProduct(clamped, Vector(repeating: 1.442_695_04))
        let n = shifted - shifter
        var r = clamped.addingProduct(n, Vector(repeating: -0.693_359_375))
        r = r.addingProduct(n, Vector(repeating: 2.121_944_4e-4))
        // Cephes expf polynomial for e^r - 1 - r, evaluated in Estrin's scheme (shorter dependency
        // chains than Horner's, so more lanes are in flight).
        let r2 = r * r
        let c45 = Vector(repeating: 5.000_000_120_1e-1).addingProduct(r, Vector(repeating: 1.666_666_545_9e-1))
        let c23 = Vector(repeating: 4.166_579_589_4e-2).addingProduct(r, Vector(repeating: 8.333_451_907_3e-3))
        let c01 = Vector(repeating: 1.398_199_950_7e-3).addingProduct(r, Vector(repeating: 1.987_569_15e-4))
        let p = c45.addingProduct(r2, c23.addingProduct(r2, c01))
        let er = (r + Vector(repeating: 1)).addingProduct(p, r2)
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
        let one = Vector(repeating: 1), two = Vector(repeating: 2)
        let e = exp(x * two)
        return one - two / (e + one)
    }

    /// 1 / (1 + e^-x).
    @inline(__always)
    public static func sigmoid(_ x: Vector) -> Vector {
        let one = Vector(repeating: 1)
        return one / (exp(Vector() - x) + one)
    }

    /// x / (1 + e^-x), SiLU with one division and no extra multiply.
    @inline(__always)
    public static func silu(_ x: Vector) -> Vector {
        x / (exp(Vector() - x) + Vector(repeating: 1))
    }

    /// erf(x / √2), so that the standard normal CDF is Φ(x) = (1 + normalErf(x)) / 2: what GELU needs.
    ///
    /// A rational function odd in x, x · P(x²) / Q(x²) with P and Q of degree 5 in x², evaluated
    /// in two independent Horner chains and one division: no exp, about half the operations of
    /// erfc's t · e^(−x² + poly(t)) form. The coefficients are XNNPACK's f32 GELU kernels'
    /// (`f32-vgelu` rational-12-10). Inputs are clamped at ±5.1638284, from where it rounds to ±1.
    /// Measured in float32 against double precision every 2e-6 over ±12: at most 3.3e-7 absolute,
    /// and GELU x Φ(x) within 2.1e-7 · max(1, |x|) of exact: about two units in its last place for
    /// x ≥ 0, an absolute bound for x < 0, where GELU is small (VectorMathAccuracyTests checks
    /// 2 000 001 points). The erfc form this replaced, t · e^(−x² + poly(t)), was within
    /// 1.2e-7; the rational form takes 0.46 of its time in GEGLU.
    @inline(__always)
    public static func normalErf(_ x: Vector) -> Vector {
        let limit = Vector(repeating: 5.163_828_373), negativeLimit = Vector(repeating: -5.163_828_373)
        var z = x.replacing(with: limit, where: x .> limit)
        z = z.replacing(with: negativeLimit, where: z .< negativeLimit)
        let t = z * z
        var p = Vector(repeating: 4.583_532_131_6e-08)
        p = Vector(repeating: 1.260_978_388_0e-05).addingProduct(p, t)
        p = Vector(repeating: 3.297_311_486_7e-04).addingProduct(p, t)
        p = Vector(repeating: 9.306_513_704_4e-03).addingProduct(p, t)
        p = Vector(repeating: 6.697_217_375_0e-02).addingProduct(p, t)
        p = Vector(repeating: 7.978_845_238_7e-01).addingProduct(p, t)
        var q = Vector(repeating: 1.198_880_568_2e-06)
        q = Vector(repeating: 7.226_765_592_3e-05).addingProduct(q, t)
        q = Vector(repeating: 1.862_284_261_7e-03).addingProduct(q, t)
        q = Vector(repeating: 2.843_197_807_7e-02).addingProduct(q, t)
        q = Vector(repeating: 2.506_035_268_3e-01).addingProduct(q, t)
        q = Vector(repeating: 1).addingProduct(q, t)
        return z * p / q
    }

    /// The largest lane. `SIMD.max()` is a generic, out-of-line call; this is four vector instructions.
    @inline(__always)
    public static func horizontalMax(_ v: Vector) -> Float {
        let low = v.lowHalf, high = v.highHalf
        let four = low.replacing(with: high, where: high .> low)
        let two = four.lowHalf.replacing(with: four.highHalf, where: four.highHalf .> four.lowHalf)
        return two[1] > two[0] ? two[1] : two[0]
    }

    /// The sum of the lanes as a tree (halves, quarters, pair), three vector adds instead of seven scalar ones.
    @inline(__always)
    public static func horizontalSum(_ v: Vector) -> Float {
        let four = v.lowHalf + v.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
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
