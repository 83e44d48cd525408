import Foundation

/// Softmax and log-softmax along an axis (torch.softmax / torch.log_softmax), with the row maximum
/// subtracted before exponentiating so large logits never overflow.
///
/// The last axis runs over contiguous rows; any other axis is swapped to the end and back (two
/// copies), which the gradient follows through `permuted`.
extension Tensor {
    public func softmax(axis: Int = -1) throws -> Tensor {
        try rowwise(axis: axis, op: "softmax") { $0.lastAxisSoftmax(log: false) }
    }

    public func logSoftmax(axis: Int = -1) throws -> Tensor {
        try rowwise(axis: axis, op: "logSoftmax") { $0.lastAxisSoftmax(log: true) }
    }

    private func rowwise(axis: Int, op: String, _ body: (Tensor) throws -> Tensor) throws -> Tensor {
        guard rank >= 1 else {
            throw TensorError.invalidArgument(op: op, reason: "needs at least one axis, got a scalar")
        }
        let resolved = try resolveAxes([axis], op: op)[0]
        if resolved == rank - 1 { return try body(self) }
        var order = Array(0..<rank)
        order.swapAt(resolved, rank - 1)
        return try body(try permuted(order)).permuted(order)
    }

    private func lastAxisSoftmax(log: Bool) -> Tensor {
        let width = shape[rank - 1]
        let rows = width == 0 ? 0 : count / width
        let output = Tensor(uninitialized: shape)
        let src = data, dst = output.data
        let grain = Swift.max(1, 16_384 / Swift.max(width, 1))
        Parallel.forRanges(count: rows, grain: grain) { range in
            for row in range {
                let x = src + row * width, y = dst + row * width
                if log {
                    Tensor.logSoftmaxRow(x, y, width)
                } else {
                    Tensor.softmaxRow(x, y, width)
                }
            }
        }
        return Tensor.record(output, op: log ? "logSoftmax" : "softmax", inputs: [self]) { [shape] g, output in
            let dx = Tensor(uninitialized: shape)
            let gp = g.data, yp = output.data, dp = dx.data
            Parallel.forRanges(count: rows, grain: grain) { range in
                for row in range {
                    let o = row * width
                    if log {
                        Tensor.logSoftmaxBackwardRow(yp + o, gp + o, dp + o, width)
                    } else {
                        Tensor.softmaxBackwardRow(yp + o, gp + o, dp + o, width)
                    }
                }
            }
            return [dx]
        }
    }

    // MARK: Row kernels (shared with attention)

    /// Maximum of a run (−∞ for an empty run).
    @inline(__always)
    static func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        typealias V = SIMD8<Float>
        var i = 0
        var best = -Float.infinity
        if n >= 8 {
            var m = UnsafeRawPointer(x).loadUnaligned(as: V.self)
            i = 8
            while i + 8 <= n {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
                m = m.replacing(with: v, where: v .> m)
                i += 8
            }
            best = VectorMath.horizontalMax(m)
        }
        while i < n { best = Swift.max(best, x[i]); i += 1 }
        return best
    }

    /// y = e^(x − shift) over a run; returns Σ y. `x` and `y` may be the same buffer.
    @inline(__always)
    static func expShifted(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        typealias V = SIMD8<Float>
        let s = V(repeating: shift)
        var acc = V()
        var i = 0
        while i + 8 <= n {
            let e = VectorMath.exp(UnsafeRawPointer(x + i).loadUnaligned(as: V.self) - s)
            UnsafeMutableRawPointer(y + i).storeBytes(of: e, as: V.self)
            acc += e
            i += 8
        }
        var total = acc.sum()
        if i < n {
            var v = V(repeating: shift)
            for lane in 0..<(n - i) { v[lane] = x[i + lane] }
            let e = VectorMath.exp(v - s)
            for lane in 0..<(n - i) { y[i + lane] = e[lane]; total += e[lane] }
        }
        return total
    }

    /// y[i] *= factor over a run.
    @inline(__always)
    static func scaleRun(_ y: UnsafeMutablePointer<Float>, _ n: Int, _ factor: Float) {
        typealias V = SIMD8<Float>
        let f = V(repeating: factor)
        var i = 0
        while i + 8 <= n {
            UnsafeMutableRawPointer(y + i).storeBytes(of: UnsafeRawPointer(y + i).loadUnaligned(as: V.self) * f, as: V.self)
            i += 8
        }
        while i < n { y[i] *= factor; i += 1 }
    }

    /// The shift that keeps e^(x − shift) finite: the row maximum, or 0 when the row is all −∞
    /// (a fully masked row then yields equal tiny weights instead of NaN).
    @inline(__always)
    static func safeShift(_ maximum: Float) -> Float {
        maximum.isFinite ? maximum : 0
    }

    @inline(__always)
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let shift = safeShift(rowMax(x, n))
        let total = expShifted(x, y, n, shift: shift)
        scaleRun(y, n, 1 / total)
    }

    @inline(__always)
    static func logSoftmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let shift = safeShift(rowMax(x, n))
        let total = expShifted(x, y, n, shift: shift)
        let offset = shift + Foundation.log(total)
        for i in 0..<n { y[i] = x[i] - offset }
    }

    /// dx = y ∘ (g − Σ g∘y).
    @inline(__always)
    static func softmaxBackwardRow(_ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        let dot = V(repeating: dotRun(g, y, n))
        var i = 0
        while i + 8 <= n {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: yv * (gv - dot), as: V.self)
            i += 8
        }
        while i < n { dx[i] = y[i] * (g[i] - dot[0]); i += 1 }
    }

    /// dx = g − e^y · Σ g.
    @inline(__always)
    static func logSoftmaxBackwardRow(_ y: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        let total = sumRun(g, n)
        let t = V(repeating: total)
        var i = 0
        while i + 8 <= n {
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
            let gv = UnsafeRawPointer(g + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: gv - VectorMath.exp(yv) * t, as: V.self)
            i += 8
        }
        while i < n { dx[i] = g[i] - VectorMath.exp(y[i]) * total; i += 1 }
    }

    /// Σ a∘b over a run.
    @inline(__always)
    static func dotRun(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        typealias V = SIMD8<Float>
        var acc0 = V(), acc1 = V()
        var i = 0
        while i + 16 <= n {
            acc0 += UnsafeRawPointer(a + i).loadUnaligned(as: V.self) * UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            acc1 += UnsafeRawPointer(a + i + 8).loadUnaligned(as: V.self) * UnsafeRawPointer(b + i + 8).loadUnaligned(as: V.self)
            i += 16
        }
        while i + 8 <= n {
            acc0 += UnsafeRawPointer(a + i).loadUnaligned(as: V.self) * UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
            i += 8
        }
        var total = (acc0 + acc1).sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
    }
}
