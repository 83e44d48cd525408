/// Reductions over axes: sum, mean, max. Results keep reduced axes as size 1 when `keepDims` is true.
extension Tensor {
    /// Normalises possibly negative axes and checks them against the rank.
    func resolveAxes(_ axes: [Int], op: String) throws -> [Int] {
        var resolved: [Int] = []
        for axis in axes {
            let a = axis < 0 ? axis + rank : axis
            guard a >= 0, a < rank else {
                throw TensorError.invalidArgument(op: op, reason: "axis \(axis) is out of range for shape \(shape)")
            }
            if !resolved.contains(a) { resolved.append(a) }
        }
        return resolved.sorted()
    }

    /// The reduction's geometry: the shape kept (reduced axes as 1) and whether the reduced axes form
    /// one contiguous trailing block (then each output is a run of `inner` consecutive elements).
    private func reducedShape(_ axes: [Int]) -> [Int] {
        var kept = shape
        for axis in axes { kept[axis] = 1 }
        return kept
    }

    /// Sum over all elements (a scalar) or over `axes`.
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let axes = try resolveAxes(axes ?? Array(0..<rank), op: "sum")
        let kept = reducedShape(axes)
        let result: Tensor
        if let run = trailingRun(axes) {
            result = Tensor(uninitialized: kept)
            let src = data, dst = result.data
            let outer = count / Swift.max(run, 1)
            Parallel.forRanges(count: outer, grain: Swift.max(1, 16_384 / Swift.max(run, 1))) { rows in
                for row in rows { dst[row] = Tensor.sumRun(src + row * run, run) }
            }
        } else {
            result = try self.detached().sumToShape(kept)
        }
        let output = keepDims ? result : result.reshapedView(kept.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
        return Tensor.record(output, op: "sum", inputs: [self]) { [shape] g in
            [try g.reshapedView(kept).broadcast(to: shape)]
        }
    }

    /// Mean over all elements or over `axes`.
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let resolved = try resolveAxes(axes ?? Array(0..<rank), op: "mean")
        let n = resolved.reduce(1) { $0 * shape[$1] }
        return try sum(axes: resolved, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Maximum over `axes`; the gradient flows to the first position holding the maximum.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let axes = try resolveAxes(axes ?? Array(0..<rank), op: "max")
        guard count > 0 else { throw TensorError.invalidArgument(op: "max", reason: "empty tensor \(shape)") }
        let kept = reducedShape(axes)
        // Move reduced axes last so each output reads one contiguous run.
        let keptAxes = (0..<rank).filter { !axes.contains($0) }
        let moved = keptAxes == Array(0..<keptAxes.count) ? self.detached() : try self.detached().permuted(keptAxes + axes)
        let run = axes.reduce(1) { $0 * shape[$1] }
        let outer = count / run
        let result = Tensor(uninitialized: kept)
        var argmax = [Int](repeating: 0, count: outer)
        let src = moved.data, dst = result.data
        argmax.withUnsafeMutableBufferPointer { arg in
            let argPointer = arg.baseAddress!
            Parallel.forRanges(count: outer, grain: Swift.max(1, 16_384 / run)) { rows in
                for row in rows {
                    let p = src + row * run
                    var best = p[0], index = 0
                    for i in 1..<run where p[i] > best { best = p[i]; index = i }
                    dst[row] = best
                    argPointer[row] = index
                }
            }
        }
        let output = keepDims ? result : result.reshapedView(keptAxes.map { shape[$0] })
        return Tensor.record(output, op: "max", inputs: [self]) { [shape] g in
            let spread = Tensor(zeros: moved.shape)
            for row in 0..<outer { spread.data[row * run + argmax[row]] = g.data[row] }
            let inverse = (0..<shape.count).map { (keptAxes + axes).firstIndex(of: $0)! }
            return [keptAxes == Array(0..<keptAxes.count) ? spread : try spread.permuted(inverse)]
        }
    }

    /// When the reduced axes are exactly the trailing axes, the length of each contiguous run.
    private func trailingRun(_ axes: [Int]) -> Int? {
        guard axes == Array((rank - axes.count)..<rank) else { return nil }
        return axes.reduce(1) { $0 * shape[$1] }
    }

    /// Sum of a contiguous run in a fixed order (eight lanes, then the lanes in order): reproducible.
    @inline(__always)
    static func sumRun(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = acc.sum()
        while i < n { total += p[i]; i += 1 }
        return total
    }
}
