import Foundation

/// Element-wise arithmetic with broadcasting, scalar arithmetic and element-wise math.
///
/// Kernels run over raw buffers in long runs (see `BroadcastPlan`) and are split across threads;
/// closures are called once per run, never per element.
extension Tensor {
    @usableFromInline
    enum BinaryKind { case add, sub, mul, div }

    @usableFromInline
    static func binary(_ a: Tensor, _ b: Tensor, _ kind: BinaryKind, op: String) throws -> Tensor {
        let plan = try BroadcastPlan(a.shape, b.shape, op: op)
        let result = Tensor(uninitialized: plan.outputShape)
        let pa = a.data, pb = b.data, out = result.data
        plan.forEachRun { o, oa, ob, sa, sb, n in
            let x = pa + oa, y = pb + ob, z = out + o
            switch (kind, sa, sb) {
            case (.add, 1, 1): for i in 0..<n { z[i] = x[i] + y[i] }
            case (.add, 1, 0): let c = y[0]; for i in 0..<n { z[i] = x[i] + c }
            case (.add, 0, 1): let c = x[0]; for i in 0..<n { z[i] = c + y[i] }
            case (.sub, 1, 1): for i in 0..<n { z[i] = x[i] - y[i] }
            case (.sub, 1, 0): let c = y[0]; for i in 0..<n { z[i] = x[i] - c }
            case (.sub, 0, 1): let c = x[0]; for i in 0..<n { z[i] = c - y[i] }
            case (.mul, 1, 1): for i in 0..<n { z[i] = x[i] * y[i] }
            case (.mul, 1, 0): let c = y[0]; for i in 0..<n { z[i] = x[i] * c }
            case (.mul, 0, 1): let c = x[0]; for i in 0..<n { z[i] = c * y[i] }
            case (.div, 1, 1): for i in 0..<n { z[i] = x[i] / y[i] }
            case (.div, 1, 0): let c = y[0]; for i in 0..<n { z[i] = x[i] / c }
            case (.div, 0, 1): let c = x[0]; for i in 0..<n { z[i] = c / y[i] }
            case (.add, _, _): for i in 0..<n { z[i] = x[i * sa] + y[i * sb] }
            case (.sub, _, _): for i in 0..<n { z[i] = x[i * sa] - y[i * sb] }
            case (.mul, _, _): for i in 0..<n { z[i] = x[i * sa] * y[i * sb] }
            case (.div, _, _): for i in 0..<n { z[i] = x[i * sa] / y[i * sb] }
            }
        }
        return record(result, op: op, inputs: [a, b]) { g, quotient in
            let ga: Tensor?, gb: Tensor?
            switch kind {
            case .add:
                ga = a.needsGrad ? try g.sumToShape(a.shape) : nil
                gb = b.needsGrad ? try g.sumToShape(b.shape) : nil
            case .sub:
                ga = a.needsGrad ? try g.sumToShape(a.shape) : nil
                gb = b.needsGrad ? try (-g).sumToShape(b.shape) : nil
            case .mul:
                ga = a.needsGrad ? try (g * b).sumToShape(a.shape) : nil
                gb = b.needsGrad ? try (g * a).sumToShape(b.shape) : nil
            case .div:
                ga = a.needsGrad ? try (g / b).sumToShape(a.shape) : nil
                gb = b.needsGrad ? try (-(g * quotient) / b).sumToShape(b.shape) : nil
            }
            return [ga, gb]
        }
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, .add, op: "add") }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, .sub, op: "sub") }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, .mul, op: "mul") }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, .div, op: "div") }

    // MARK: Scalars

    /// `self * scale + shift`, element-wise, in one pass.
    public func affine(scale: Float, shift: Float = 0) -> Tensor {
        let result = Tensor.map(self) { x, y, n in
            for i in 0..<n { y[i] = x[i] * scale + shift }
        }
        return Tensor.record(result, op: "affine", inputs: [self]) { g in
            [g.affine(scale: scale)]
        }
    }

    public static func + (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: b) }
    public static func + (a: Float, b: Tensor) -> Tensor { b.affine(scale: 1, shift: a) }
    public static func - (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1, shift: -b) }
    public static func - (a: Float, b: Tensor) -> Tensor { b.affine(scale: -1, shift: a) }
    public static func * (a: Tensor, b: Float) -> Tensor { a.affine(scale: b) }
    public static func * (a: Float, b: Tensor) -> Tensor { b.affine(scale: a) }
    public static func / (a: Tensor, b: Float) -> Tensor { a.affine(scale: 1 / b) }
    public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1) }

    // MARK: Kernel helpers shared by element-wise ops

    /// A new tensor of `x`'s shape filled by `kernel(source, destination, count)` over parallel runs.
    @inlinable
    public static func map(_ x: Tensor, _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let result = Tensor(uninitialized: x.shape)
        let src = x.data, dst = result.data
        Parallel.forRanges(count: x.count) { range in
            kernel(src + range.lowerBound, dst + range.lowerBound, range.count)
        }
        return result
    }

    /// A new tensor filled by `kernel(a, b, destination, count)` from two same-shaped tensors.
    @inlinable
    public static func zipMap(_ a: Tensor, _ b: Tensor,
                              _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let result = Tensor(uninitialized: a.shape)
        let pa = a.data, pb = b.data, dst = result.data
        Parallel.forRanges(count: a.count) { range in
            let o = range.lowerBound
            kernel(pa + o, pb + o, dst + o, range.count)
        }
        return result
    }

    /// An element-wise function y = f(x) whose derivative is computed from x, y and the incoming gradient.
    /// `derivative(x, y, g, dx, n)` writes dL/dx = g * f'(x) for a run of n elements.
    @inlinable
    public static func unary(_ x: Tensor, op: String,
                             forward: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                             derivative: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let y = map(x, forward)
        return record(y, op: op, inputs: [x]) { g, y in
            let dx = Tensor(uninitialized: x.shape)
            let px = x.data, py = y.data, pg = g.data, pd = dx.data
            Parallel.forRanges(count: x.count) { range in
                let o = range.lowerBound
                derivative(px + o, py + o, pg + o, pd + o, range.count)
            }
            return [dx]
        }
    }

    // MARK: Element-wise math

    public func exp() -> Tensor {
        Tensor.unary(self, op: "exp",
            forward: { x, y, n in VectorMath.exp(x, y, n) },
            derivative: { _, y, g, d, n in for i in 0..<n { d[i] = g[i] * y[i] } })
    }

    public func log() -> Tensor {
        Tensor.unary(self, op: "log",
            forward: { x, y, n in for i in 0..<n { y[i] = Foundation.log(x[i]) } },
            derivative: { x, _, g, d, n in for i in 0..<n { d[i] = g[i] / x[i] } })
    }

    public func sqrt() -> Tensor {
        Tensor.unary(self, op: "sqrt",
            forward: { x, y, n in for i in 0..<n { y[i] = x[i].squareRoot() } },
            derivative: { _, y, g, d, n in for i in 0..<n { d[i] = g[i] * 0.5 / y[i] } })
    }

    public func pow(_ exponent: Float) -> Tensor {
        if exponent == 2 {
            return Tensor.unary(self, op: "pow",
                forward: { x, y, n in for i in 0..<n { y[i] = x[i] * x[i] } },
                derivative: { x, _, g, d, n in for i in 0..<n { d[i] = 2 * x[i] * g[i] } })
        }
        return Tensor.unary(self, op: "pow",
            forward: { x, y, n in for i in 0..<n { y[i] = Foundation.pow(x[i], exponent) } },
            derivative: { x, _, g, d, n in
                for i in 0..<n { d[i] = g[i] * exponent * Foundation.pow(x[i], exponent - 1) }
            })
    }

    public func abs() -> Tensor {
        Tensor.unary(self, op: "abs",
            forward: { x, y, n in for i in 0..<n { y[i] = Swift.abs(x[i]) } },
            derivative: { x, _, g, d, n in
                for i in 0..<n { d[i] = x[i] > 0 ? g[i] : (x[i] < 0 ? -g[i] : 0) }
            })
    }

    /// Clamps to [lower, upper]; the gradient passes where the value was inside.
    public func clamp(_ lower: Float, _ upper: Float) -> Tensor {
        Tensor.unary(self, op: "clamp",
            forward: { x, y, n in for i in 0..<n { y[i] = Swift.min(Swift.max(x[i], lower), upper) } },
            derivative: { x, _, g, d, n in
                for i in 0..<n { d[i] = (x[i] >= lower && x[i] <= upper) ? g[i] : 0 }
            })
    }
}
