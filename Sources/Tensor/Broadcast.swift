/// NumPy broadcasting: shapes are aligned at their trailing axes; an axis of size 1 stretches.
///
/// `BroadcastPlan` turns two shapes into a short list of collapsed axes with per-operand strides
/// (0 on stretched axes), so kernels run long contiguous inner loops instead of walking indices.
@usableFromInline
struct BroadcastPlan {
    let outputShape: [Int]
    /// Collapsed sizes and strides, outermost first; the last axis is the inner loop.
    let sizes: [Int]
    let stridesA: [Int]
    let stridesB: [Int]

    @usableFromInline
    init(_ a: [Int], _ b: [Int], op: String) throws {
        let rank = max(a.count, b.count)
        let paddedA = [Int](repeating: 1, count: rank - a.count) + a
        let paddedB = [Int](repeating: 1, count: rank - b.count) + b
        var out = [Int](repeating: 1, count: rank)
        for axis in 0..<rank {
            let (x, y) = (paddedA[axis], paddedB[axis])
            guard x == y || x == 1 || y == 1 else { throw TensorError.shapeMismatch(op: op, lhs: a, rhs: b) }
            out[axis] = x == 1 ? y : x
        }
        outputShape = out
        let fullA = Tensor.strides(of: paddedA), fullB = Tensor.strides(of: paddedB)
        var sizes: [Int] = [], sa: [Int] = [], sb: [Int] = []
        for axis in 0..<rank where out[axis] != 1 {
            let strideA = paddedA[axis] == 1 ? 0 : fullA[axis]
            let strideB = paddedB[axis] == 1 ? 0 : fullB[axis]
            // Merge with the previous axis when both operands step through them as one run.
            if let last = sizes.indices.last,
               sa[last] == strideA * out[axis], sb[last] == strideB * out[axis] {
                sizes[last] *= out[axis]
                sa[last] = strideA
                sb[last] = strideB
            } else {
                sizes.append(out[axis]); sa.append(strideA); sb.append(strideB)
            }
        }
        if sizes.isEmpty { sizes = [1]; sa = [0]; sb = [0] }
        self.sizes = sizes
        stridesA = sa
        stridesB = sb
    }

    var innerCount: Int { sizes[sizes.count - 1] }
    var outerCount: Int { sizes.dropLast().reduce(1, *) }

    /// Element offsets of operand A and B at the start of outer row `row`.
    @inline(__always)
    func offsets(ofRow row: Int) -> (Int, Int) {
        var rest = row, offA = 0, offB = 0
        var axis = sizes.count - 2
        while axis >= 0 {
            let index = rest % sizes[axis]
            rest /= sizes[axis]
            offA += index * stridesA[axis]
            offB += index * stridesB[axis]
            axis -= 1
        }
        return (offA, offB)
    }

    /// Calls `body(outOffset, aOffset, bOffset, innerStrideA, innerStrideB, length)` for every inner run,
    /// spread over threads when the output is large.
    func forEachRun(_ body: (Int, Int, Int, Int, Int, Int) -> Void) {
        let inner = innerCount, rows = outerCount
        let innerA = stridesA[stridesA.count - 1], innerB = stridesB[stridesB.count - 1]
        if rows == 1 {
            // One long run: split it so both cores work.
            Parallel.forRanges(count: inner) { range in
                body(range.lowerBound, range.lowerBound * innerA, range.lowerBound * innerB,
                     innerA, innerB, range.count)
            }
            return
        }
        let rowsPerChunk = max(1, 16_384 / max(1, inner))
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        Parallel.forEach(chunks: min(chunks, 256)) { chunk in
            let chunkCount = min(chunks, 256)
            let begin = rows * chunk / chunkCount, end = rows * (chunk + 1) / chunkCount
            for row in begin..<end {
                let (offA, offB) = offsets(ofRow: row)
                body(row * inner, offA, offB, innerA, innerB, inner)
            }
        }
    }
}

extension Tensor {
    /// Sums `self` down to `target` shape, undoing a broadcast (the backward of broadcasting ops).
    public func sumToShape(_ target: [Int]) throws -> Tensor {
        if target == shape { return self }
        let plan = try BroadcastPlan(shape, target, op: "sumToShape")
        guard plan.outputShape == shape else {
            throw TensorError.shapeMismatch(op: "sumToShape", lhs: shape, rhs: target)
        }
        let result = Tensor(zeros: target)
        let src = data, dst = result.data
        // Serial scatter-add: the order of additions is fixed, so results are reproducible.
        let inner = plan.innerCount, innerB = plan.stridesB[plan.stridesB.count - 1]
        for row in 0..<plan.outerCount {
            let (_, offB) = plan.offsets(ofRow: row)
            let s = src + row * inner
            if innerB == 0 {
                var sum: Float = 0
                for i in 0..<inner { sum += s[i] }
                dst[offB] += sum
            } else {
                let d = dst + offB
                for i in 0..<inner { d[i] += s[i] }
            }
        }
        return Tensor.record(result, op: "sumToShape", inputs: [self]) { [shape] g in
            [try g.broadcast(to: shape)]
        }
    }

    /// Repeats `self` to `target` shape under broadcasting rules (a copy).
    public func broadcast(to target: [Int]) throws -> Tensor {
        if target == shape { return self }
        let plan = try BroadcastPlan(shape, target, op: "broadcast")
        guard plan.outputShape == target else {
            throw TensorError.shapeMismatch(op: "broadcast", lhs: shape, rhs: target)
        }
        let result = Tensor(uninitialized: target)
        let src = data, dst = result.data
        plan.forEachRun { out, a, _, strideA, _, length in
            if strideA == 0 {
                (dst + out).update(repeating: src[a], count: length)
            } else {
                (dst + out).update(from: src + a, count: length)
            }
        }
        return Tensor.record(result, op: "broadcast", inputs: [self]) { [shape] g in
            [try g.sumToShape(shape)]
        }
    }
}
