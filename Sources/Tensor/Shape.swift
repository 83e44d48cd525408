/// Shape operations: reshape (a free view), permute/transpose, slicing, concatenation, split,
/// padding and repetition (copies).
extension Tensor {
    /// The same storage under another shape with the same element count; `-1` infers one size.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var target = newShape
        if let inferred = target.firstIndex(of: -1) {
            let known = target.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
            }
            target[inferred] = count / known
        }
        guard target.allSatisfy({ $0 >= 0 }), target.reduce(1, *) == count else {
            throw TensorError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
        }
        return reshapedView(target)
    }

    /// Reshape for shapes already known to hold `count` elements (internal use).
    func reshapedView(_ target: [Int]) -> Tensor {
        if target == shape && node == nil && !requiresGrad { return self }
        let view = Tensor(shape: target, storage: storage, offset: offset)
        return Tensor.record(view, op: "reshape", inputs: [self]) { [shape] g in
            [g.reshapedView(shape)]
        }
    }

    /// Rows `range` along the first axis: a view sharing storage.
    public func slice(rows range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw TensorError.invalidArgument(op: "slice", reason: "rows \(range) outside shape \(shape)")
        }
        let rowSize = count / Swift.max(shape[0], 1)
        let view = Tensor(shape: [range.count] + shape.dropFirst(), storage: storage, offset: offset + range.lowerBound * rowSize)
        return Tensor.record(view, op: "slice", inputs: [self]) { [shape] g in
            let full = Tensor(zeros: shape)
            (full.data + range.lowerBound * rowSize).update(from: g.data, count: g.count)
            return [full]
        }
    }

    /// Axes reordered: result axis i is input axis `order[i]` (torch.permute).
    public func permuted(_ order: [Int]) throws -> Tensor {
        guard order.count == rank, Set(order) == Set(0..<rank) else {
            throw TensorError.invalidArgument(op: "permute", reason: "order \(order) is not a permutation of the axes of \(shape)")
        }
        if order == Array(0..<rank) { return self }
        let outShape = order.map { shape[$0] }
        let inStrides = strides
        let result = Tensor(uninitialized: outShape)
        Tensor.permuteCopy(src: data, dst: result.data, outShape: outShape, srcStrides: order.map { inStrides[$0] })
        var inverse = [Int](repeating: 0, count: rank)
        for (i, axis) in order.enumerated() { inverse[axis] = i }
        return Tensor.record(result, op: "permute", inputs: [self]) { g in [try g.permuted(inverse)] }
    }

    /// Swaps two axes (a copy).
    public func transposed(_ axis0: Int = -2, _ axis1: Int = -1) throws -> Tensor {
        let axes = try resolveAxes([axis0, axis1], op: "transpose")
        guard axes.count == 2 else { return self }
        var order = Array(0..<rank)
        order.swapAt(axes[0], axes[1])
        return try permuted(order)
    }

    /// Writes the elements of a strided source into a contiguous destination of `outShape`.
    static func permuteCopy(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, outShape: [Int], srcStrides: [Int]) {
        let rank = outShape.count
        let inner = outShape[rank - 1], innerStride = srcStrides[rank - 1]
        let rows = outShape.dropLast().reduce(1, *)
        Parallel.forRanges(count: rows, grain: Swift.max(1, 8192 / Swift.max(inner, 1))) { range in
            for row in range {
                var rest = row, offset = 0
                var axis = rank - 2
                while axis >= 0 {
                    offset += (rest % outShape[axis]) * srcStrides[axis]
                    rest /= outShape[axis]
                    axis -= 1
                }
                let d = dst + row * inner, s = src + offset
                if innerStride == 1 {
                    d.update(from: s, count: inner)
                } else {
                    for i in 0..<inner { d[i] = s[i * innerStride] }
                }
            }
        }
    }

    /// Elements `range` along `axis` (a copy unless the axis is the first).
    public func slice(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let axis = try resolveAxes([axis], op: "slice")[0]
        guard range.lowerBound >= 0, range.upperBound <= shape[axis] else {
            throw TensorError.invalidArgument(op: "slice", reason: "range \(range) outside axis \(axis) of \(shape)")
        }
        if axis == 0 { return try slice(rows: range) }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        var outShape = shape
        outShape[axis] = range.count
        let result = Tensor(uninitialized: outShape)
        let srcRow = shape[axis] * inner, dstRow = range.count * inner
        let src = data, dst = result.data
        for o in 0..<outer {
            (dst + o * dstRow).update(from: src + o * srcRow + range.lowerBound * inner, count: dstRow)
        }
        return Tensor.record(result, op: "slice", inputs: [self]) { [shape] g in
            let full = Tensor(zeros: shape)
            for o in 0..<outer {
                (full.data + o * srcRow + range.lowerBound * inner).update(from: g.data + o * dstRow, count: dstRow)
            }
            return [full]
        }
    }

    /// Joins tensors along `axis`; all other axes must match.
    public static func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
        guard let first = tensors.first else {
            throw TensorError.invalidArgument(op: "concat", reason: "no tensors to join")
        }
        let axis = try first.resolveAxes([axis], op: "concat")[0]
        for t in tensors.dropFirst() {
            var a = t.shape, b = first.shape
            guard a.count == b.count else { throw TensorError.shapeMismatch(op: "concat", lhs: first.shape, rhs: t.shape) }
            a[axis] = 0; b[axis] = 0
            guard a == b else { throw TensorError.shapeMismatch(op: "concat", lhs: first.shape, rhs: t.shape) }
        }
        var outShape = first.shape
        outShape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        let outer = first.shape[..<axis].reduce(1, *), inner = first.shape[(axis + 1)...].reduce(1, *)
        let result = Tensor(uninitialized: outShape)
        let outRow = outShape[axis] * inner
        var start = 0
        var starts: [Int] = []
        for t in tensors {
            starts.append(start)
            let row = t.shape[axis] * inner
            for o in 0..<outer {
                (result.data + o * outRow + start).update(from: t.data + o * row, count: row)
            }
            start += row
        }
        return record(result, op: "concat", inputs: tensors) { g in
            tensors.enumerated().map { index, t in
                guard t.needsGrad else { return nil }
                let part = Tensor(uninitialized: t.shape)
                let row = t.shape[axis] * inner
                for o in 0..<outer {
                    (part.data + o * row).update(from: g.data + o * outRow + starts[index], count: row)
                }
                return part
            }
        }
    }

    /// Splits along `axis` into pieces of the given sizes (which must add up to the axis).
    public func split(sizes: [Int], axis: Int) throws -> [Tensor] {
        let resolved = try resolveAxes([axis], op: "split")[0]
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[resolved] else {
            throw TensorError.invalidArgument(op: "split", reason: "sizes \(sizes) do not add up to axis \(axis) of \(shape)")
        }
        var start = 0
        return try sizes.map { size in
            defer { start += size }
            return try slice(axis: resolved, start..<(start + size))
        }
    }

    /// Splits along `axis` into `parts` equal pieces (torch.chunk with an exact division).
    public func chunked(_ parts: Int, axis: Int) throws -> [Tensor] {
        let resolved = try resolveAxes([axis], op: "chunk")[0]
        guard parts > 0, shape[resolved] % parts == 0 else {
            throw TensorError.invalidArgument(op: "chunk", reason: "axis \(axis) of \(shape) does not divide into \(parts)")
        }
        return try split(sizes: Array(repeating: shape[resolved] / parts, count: parts), axis: resolved)
    }

    /// Zero (or `value`) padding: `padding[i]` = (before, after) for axis i; missing leading axes are unpadded.
    public func padded(_ padding: [(Int, Int)], value: Float = 0) throws -> Tensor {
        guard padding.count <= rank, padding.allSatisfy({ $0.0 >= 0 && $0.1 >= 0 }) else {
            throw TensorError.invalidArgument(op: "pad", reason: "padding \(padding) does not fit shape \(shape)")
        }
        let pads = [(Int, Int)](repeating: (0, 0), count: rank - padding.count) + padding
        let outShape = zip(shape, pads).map { $0 + $1.0 + $1.1 }
        let result = Tensor(repeating: value, shape: outShape)
        let outStrides = Tensor.strides(of: outShape)
        let origin = zip(pads, outStrides).reduce(0) { $0 + $1.0.0 * $1.1 }
        // Copy each innermost row of the input into its place.
        let inner = shape.last ?? 1, rows = count / Swift.max(inner, 1)
        let src = data, dst = result.data
        func destination(ofRow row: Int) -> Int {
            var rest = row, offset = origin
            var axis = rank - 2
            while axis >= 0 {
                offset += (rest % shape[axis]) * outStrides[axis]
                rest /= shape[axis]
                axis -= 1
            }
            return offset
        }
        if rank == 0 { return self }
        for row in 0..<rows { (dst + destination(ofRow: row)).update(from: src + row * inner, count: inner) }
        return Tensor.record(result, op: "pad", inputs: [self]) { [shape] g in
            let part = Tensor(uninitialized: shape)
            for row in 0..<rows { (part.data + row * inner).update(from: g.data + destination(ofRow: row), count: inner) }
            return [part]
        }
    }

    /// Tiles the tensor `times[i]` times along axis i (torch.Tensor.repeat).
    public func repeated(_ times: [Int]) throws -> Tensor {
        guard times.count == rank, times.allSatisfy({ $0 >= 1 }) else {
            throw TensorError.invalidArgument(op: "repeat", reason: "repeat counts \(times) do not fit shape \(shape)")
        }
        // Interleave a size-1 axis before each axis, broadcast it, and fold it back in.
        let expandedIn = shape.flatMap { [1, $0] }
        let expandedOut = zip(times, shape).flatMap { [$0, $1] }
        let tiled = try reshapedView(expandedIn).broadcast(to: expandedOut)
        return tiled.reshapedView(zip(times, shape).map { $0 * $1 })
    }
}
