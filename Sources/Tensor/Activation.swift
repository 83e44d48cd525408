import Foundation

/// Which GELU torch computes: the exact erf form (the default) or the tanh approximation
/// (`approximate="tanh"`, used by diffusers' `GELU(approximate="tanh")`).
public enum GELUApproximation: Sendable {
    case none
    case tanh
}

/// Activation functions (torch.nn.functional / diffusers.models.activations).
///
/// Each forward is one vectorised pass (VectorMath), and each backward one fused pass that
/// recomputes what it needs from the input, so no intermediate buffer is kept besides the input.
extension Tensor {
    public typealias Lanes = VectorMath.Vector

    /// x · sigmoid(x) (SiLU / swish, the U-Net's nonlinearity).
    public func silu() -> Tensor {
        Tensor.unary(self, op: "silu",
            forward: { x, y, n in VectorMath.apply(x, y, n) { VectorMath.silu($0) } },
            derivative: { x, _, g, d, n in
                VectorMath.apply(x, g, d, n) { x, g in
                    // s (1 + x (1 − s)) = s + x s − x s²; constants are vectors (see VectorMath.exp).
                    let s = VectorMath.sigmoid(x)
                    let xs = x * s
                    return g * (s + xs).addingProduct(Lanes() - xs, s)
                }
            })
    }

    /// GELU: x · Φ(x) with the exact normal CDF, or torch's tanh approximation.
    public func gelu(approximate: GELUApproximation = .none) -> Tensor {
        switch approximate {
        case .none:
            return Tensor.unary(self, op: "gelu",
                forward: { x, y, n in VectorMath.apply(x, y, n) { Tensor.geluErf($0) } },
                derivative: { x, _, g, d, n in VectorMath.apply(x, g, d, n) { x, g in g * Tensor.geluErfDerivative(x) } })
        case .tanh:
            return Tensor.unary(self, op: "gelu_tanh",
                forward: { x, y, n in VectorMath.apply(x, y, n) { Tensor.geluTanh($0) } },
                derivative: { x, _, g, d, n in VectorMath.apply(x, g, d, n) { x, g in g * Tensor.geluTanhDerivative(x) } })
        }
    }

    /// x · sigmoid(1.702 x): the GELU approximation OpenAI's CLIP was trained with (`quick_gelu`).
    public func quickGELU() -> Tensor {
        Tensor.unary(self, op: "quick_gelu",
            forward: { x, y, n in VectorMath.apply(x, y, n) { $0 * VectorMath.sigmoid($0 * Lanes(repeating: 1.702)) } },
            derivative: { x, _, g, d, n in
                VectorMath.apply(x, g, d, n) { x, g in
                    let ax = x * Lanes(repeating: 1.702)
                    let s = VectorMath.sigmoid(ax)
                    return g * s.addingProduct(ax * s, Lanes(repeating: 1) - s)
                }
            })
    }

    public func sigmoid() -> Tensor {
        Tensor.unary(self, op: "sigmoid",
            forward: { x, y, n in VectorMath.apply(x, y, n) { VectorMath.sigmoid($0) } },
            derivative: { _, y, g, d, n in VectorMath.apply(y, g, d, n) { y, g in g * y * (Lanes(repeating: 1) - y) } })
    }

    public func tanh() -> Tensor {
        Tensor.unary(self, op: "tanh",
            forward: { x, y, n in VectorMath.apply(x, y, n) { VectorMath.tanh($0) } },
            derivative: { _, y, g, d, n in VectorMath.apply(y, g, d, n) { y, g in g * (Lanes(repeating: 1) - y * y) } })
    }

    /// max(x, 0); the gradient at exactly 0 is 0, as in torch.
    public func relu() -> Tensor {
        Tensor.unary(self, op: "relu",
            forward: { x, y, n in VectorMath.apply(x, y, n) { $0.replacing(with: 0, where: $0 .< 0) } },
            derivative: { x, _, g, d, n in
                VectorMath.apply(x, g, d, n) { x, g in Lanes(repeating: 0).replacing(with: g, where: x .> 0) }
            })
    }

    /// diffusers' `GEGLU` after its projection: the last axis splits into halves (hidden, gate), and
    /// the result is hidden · gelu(gate), half as wide (`hidden_states, gate = proj(x).chunk(2, dim=-1)`).
    public func geglu(approximate: GELUApproximation = .none) throws -> Tensor {
        guard rank >= 1, shape[rank - 1] % 2 == 0 else {
            throw TensorError.invalidArgument(op: "geglu", reason: "last axis of \(shape) must have an even size")
        }
        let width = shape[rank - 1] / 2
        let rows = width == 0 ? 0 : count / (2 * width)
        let result = Tensor(uninitialized: Array(shape.dropLast()) + [width])
        let src = data, dst = result.data
        let exact = approximate == .none
        Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
            for row in range {
                let hidden = src + row * 2 * width
                VectorMath.apply(hidden, hidden + width, dst + row * width, width) { h, gate in
                    h * (exact ? Tensor.geluErf(gate) : Tensor.geluTanh(gate))
                }
            }
        }
        return Tensor.record(result, op: "geglu", inputs: [self]) { [shape] g in
            let dx = Tensor(uninitialized: shape)
            let x = self.data, pg = g.data, pd = dx.data
            Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
                for row in range {
                    let hidden = x + row * 2 * width, gate = hidden + width
                    let gradOut = pg + row * width
                    let dHidden = pd + row * 2 * width, dGate = dHidden + width
                    var i = 0
                    while i + 8 <= width {
                        let h = Tensor.load(hidden + i), z = Tensor.load(gate + i), go = Tensor.load(gradOut + i)
                        let (value, slope) = exact ? Tensor.geluErfWithDerivative(z) : (Tensor.geluTanh(z), Tensor.geluTanhDerivative(z))
                        Tensor.store(go * value, dHidden + i)
                        Tensor.store(go * h * slope, dGate + i)
                        i += 8
                    }
                    if i < width {
                        // The tail through one partial vector (padding lanes are computed and dropped).
                        let tail = width - i
                        var h = Lanes(), z = Lanes(), go = Lanes()
                        for lane in 0..<tail { h[lane] = hidden[i + lane]; z[lane] = gate[i + lane]; go[lane] = gradOut[i + lane] }
                        let (value, slope) = exact ? Tensor.geluErfWithDerivative(z) : (Tensor.geluTanh(z), Tensor.geluTanhDerivative(z))
                        let dh = go * value, dg = go * h * slope
                        for lane in 0..<tail { dHidden[i + lane] = dh[lane]; dGate[i + lane] = dg[lane] }
                    }
                }
            }
            return [dx]
        }
    }

    /// Inverted dropout (torch.nn.functional.dropout): in training, each element is zeroed with
    /// probability `p` and the survivors are scaled by 1 / (1 − p); otherwise the input is returned
    /// unchanged and the generator does not advance.
    public func dropout(p: Float, generator: inout RandomGenerator, training: Bool) throws -> Tensor {
        guard p >= 0, p <= 1 else {
            throw TensorError.invalidArgument(op: "dropout", reason: "probability \(p) must lie in [0, 1]")
        }
        guard training, p > 0 else { return self }
        let mask = generator.bernoulli(shape, probability: 1 - p)
        if p < 1 {
            let scale = 1 / (1 - p)
            let m = mask.data
            Parallel.forRanges(count: count) { range in
                for i in range { m[i] *= scale }
            }
        }
        let result = Tensor.zipMap(self, mask) { x, m, y, n in
            for i in 0..<n { y[i] = x[i] * m[i] }
        }
        return Tensor.record(result, op: "dropout", inputs: [self]) { g in
            [Tensor.zipMap(g, mask) { g, m, d, n in for i in 0..<n { d[i] = g[i] * m[i] } }]
        }
    }

    // MARK: Lane kernels

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> Lanes { UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }

    @inline(__always)
    static func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
    }

    // Constants are spelt as vectors on the right of operators: a scalar literal on the left
    // (`0.5 * x`) can scalarise the whole expression (see VectorMath.exp).

    @inline(__always)
    static func geluErf(_ x: Lanes) -> Lanes {
        let half = Lanes(repeating: 0.5)
        let hx = x * half
        return hx.addingProduct(hx, VectorMath.normalErf(x))
    }

    /// (x Φ(x), Φ(x) + x φ(x)) with one erf: GEGLU's backward needs both.
    @inline(__always)
    static func geluErfWithDerivative(_ x: Lanes) -> (value: Lanes, derivative: Lanes) {
        let half = Lanes(repeating: 0.5), hx = x * half
        let erf = VectorMath.normalErf(x)
        let cdf = half.addingProduct(half, erf)
        let density = VectorMath.exp(x * x * Lanes(repeating: -0.5)) * Lanes(repeating: 0.398_942_280_401_432_7)
        return (hx.addingProduct(hx, erf), cdf.addingProduct(x, density))
    }

    /// Φ(x) + x φ(x).
    @inline(__always)
    static func geluErfDerivative(_ x: Lanes) -> Lanes {
        let half = Lanes(repeating: 0.5)
        let cdf = half.addingProduct(half, VectorMath.normalErf(x))
        let density = VectorMath.exp(x * x * Lanes(repeating: -0.5)) * Lanes(repeating: 0.398_942_280_401_432_7)
        return cdf.addingProduct(x, density)
    }

    @inline(__always)
    static func geluTanh(_ x: Lanes) -> Lanes {
        let inner = x.addingProduct(x * x * x, Lanes(repeating: 0.044_715)) * Lanes(repeating: 0.797_884_560_802_865_4)
        let t = VectorMath.tanh(inner)
        let hx = x * Lanes(repeating: 0.5)
        return hx.addingProduct(hx, t)
    }

    @inline(__always)
    static func geluTanhDerivative(_ x: Lanes) -> Lanes {
        let one = Lanes(repeating: 1), half = Lanes(repeating: 0.5)
        let x2 = x * x
        let inner = x.addingProduct(x2 * x, Lanes(repeating: 0.044_715)) * Lanes(repeating: 0.797_884_560_802_865_4)
        let t = VectorMath.tanh(inner)
        let slope = one.addingProduct(x2, Lanes(repeating: 0.134_145)) * Lanes(repeating: 0.797_884_560_802_865_4)
        let halfX = x * half
        return half.addingProduct(half, t).addingProduct(halfX * (one - t * t), slope)
    }
}

extension VectorMath {
    /// z[i] = f(x[i], y[i]) in lanes of eight, padding the tail (backward passes: input and gradient).
    @inline(__always)
    public static func apply(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ z: UnsafeMutablePointer<Float>, _ n: Int,
                             _ f: (Vector, Vector) -> Vector) {
        var i = 0
        while i + 8 <= n {
            let a = UnsafeRawPointer(x + i).loadUnaligned(as: Vector.self)
            let b = UnsafeRawPointer(y + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(z + i).storeBytes(of: f(a, b), as: Vector.self)
            i += 8
        }
        if i < n {
            var a = Vector(repeating: 0), b = Vector(repeating: 0)
            for lane in 0..<(n - i) { a[lane] = x[i + lane]; b[lane] = y[i + lane] }
            let r = f(a, b)
            for lane in 0..<(n - i) { z[i + lane] = r[lane] }
        }
    }
}
