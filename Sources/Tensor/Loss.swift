import Foundation

/// Training objectives and similarity measures (torch.nn.functional's mse_loss, l1_loss,
/// cosine_similarity), the mean of the top-k entries of each row, and finiteness checks.
///
/// Reductions run over fixed chunks whose partial sums combine in chunk order, so a loss is
/// bit-identical on any thread count.
extension Tensor {
    /// Mean of (a − b)² over all elements (mse_loss, reduction "mean"): the diffusion objective.
    public static func mseLoss(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { throw TensorError.shapeMismatch(op: "mseLoss", lhs: a.shape, rhs: b.shape) }
        let n = a.count
        let pa = a.data, pb = b.data
        let total = chunkedSum(count: n) { range in
            var acc = Lanes(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let d = load(pa + i) - load(pb + i)
                acc += d * d
                i += 8
            }
            var sum = Double(acc.sum())
            while i < range.upperBound { let d = pa[i] - pb[i]; sum += Double(d * d); i += 1 }
            return sum
        }
        let result = Tensor(scalar: n == 0 ? .nan : Float(total / Double(n)))
        return record(result, op: "mse_loss", inputs: [a, b]) { g in
            let factor = 2 * g.item / Float(Swift.max(n, 1))
            let da = a.needsGrad ? zipMap(a, b) { x, y, d, count in
                for i in 0..<count { d[i] = factor * (x[i] - y[i]) }
            } : nil
            let db = b.needsGrad ? zipMap(a, b) { x, y, d, count in
                for i in 0..<count { d[i] = factor * (y[i] - x[i]) }
            } : nil
            return [da, db]
        }
    }

    /// Mean of |a − b| over all elements (l1_loss, reduction "mean"); the gradient at a tie is 0.
    public static func l1Loss(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard a.shape == b.shape else { throw TensorError.shapeMismatch(op: "l1Loss", lhs: a.shape, rhs: b.shape) }
        let n = a.count
        let pa = a.data, pb = b.data
        let total = chunkedSum(count: n) { range in
            var acc = Lanes(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let d = load(pa + i) - load(pb + i)
                acc += d.replacing(with: -d, where: d .< 0)
                i += 8
            }
            var sum = Double(acc.sum())
            while i < range.upperBound { sum += Double(Swift.abs(pa[i] - pb[i])); i += 1 }
            return sum
        }
        let result = Tensor(scalar: n == 0 ? .nan : Float(total / Double(n)))
        return record(result, op: "l1_loss", inputs: [a, b]) { g in
            let factor = g.item / Float(Swift.max(n, 1))
            func signs(_ sign: Float) -> Tensor {
                zipMap(a, b) { x, y, d, count in
                    for i in 0..<count {
                        let diff = x[i] - y[i]
                        d[i] = diff > 0 ? sign * factor : (diff < 0 ? -sign * factor : 0)
                    }
                }
            }
            return [a.needsGrad ? signs(1) : nil, b.needsGrad ? signs(-1) : nil]
        }
    }

    /// Cosine similarity along `axis` (torch.nn.functional.cosine_similarity, whose default axis is 1):
    /// a·b / (max(‖a‖, ε) · max(‖b‖, ε)), as torch documents it. The operands broadcast to a common
    /// shape and `axis` is removed from it. Where a norm is clamped to ε it is a constant for the gradient.
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, axis: Int = 1, epsilon: Float = 1e-8) throws -> Tensor {
        let common = try BroadcastPlan(a.shape, b.shape, op: "cosineSimilarity").outputShape
        var x = try a.broadcast(to: common), y = try b.broadcast(to: common)
        guard !common.isEmpty else {
            throw TensorError.invalidArgument(op: "cosineSimilarity", reason: "needs at least one axis, got scalars")
        }
        let resolved = try x.resolveAxes([axis], op: "cosineSimilarity")[0]
        if resolved != common.count - 1 {
            // Bring the reduced axis last so each pair of vectors is two contiguous runs.
            let order = (0..<common.count).filter { $0 != resolved } + [resolved]
            x = try x.permuted(order)
            y = try y.permuted(order)
        }
        let width = common[resolved]
        let outShape = common.enumerated().filter { $0.offset != resolved }.map(\.element)
        let rows = outShape.reduce(1, *)
        let result = Tensor(uninitialized: outShape)
        // Per row: the clamped norms (negative when the clamp was active) for the backward.
        var norms = [Float](repeating: 0, count: 2 * rows)
        let px = x.data, py = y.data, out = result.data
        norms.withUnsafeMutableBufferPointer { normBuffer in
            let saved = normBuffer.baseAddress!
            Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
                for row in range {
                    let u = px + row * width, v = py + row * width
                    var dot = Lanes(repeating: 0), uu = Lanes(repeating: 0), vv = Lanes(repeating: 0)
                    var i = 0
                    while i + 8 <= width {
                        let p = load(u + i), q = load(v + i)
                        dot += p * q; uu += p * p; vv += q * q
                        i += 8
                    }
                    var d = dot.sum(), su = uu.sum(), sv = vv.sum()
                    while i < width { d += u[i] * v[i]; su += u[i] * u[i]; sv += v[i] * v[i]; i += 1 }
                    let nu = su.squareRoot(), nv = sv.squareRoot()
                    let cu = Swift.max(nu, epsilon), cv = Swift.max(nv, epsilon)
                    out[row] = d / (cu * cv)
                    saved[2 * row] = nu > epsilon ? cu : -cu
                    saved[2 * row + 1] = nv > epsilon ? cv : -cv
                }
            }
        }
        return record(result, op: "cosine_similarity", inputs: [x, y]) { g in
            let pg = g.data
            func gradient(of first: Tensor, other second: Tensor, normIndex: Int) -> Tensor {
                let d = Tensor(uninitialized: first.shape)
                let p = first.data, q = second.data, pd = d.data
                norms.withUnsafeBufferPointer { normBuffer in
                    let saved = normBuffer.baseAddress!
                    Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
                        for row in range {
                            let own = saved[2 * row + normIndex], other = saved[2 * row + 1 - normIndex]
                            let product = Swift.abs(own) * Swift.abs(other)
                            // d/dp [p·q / (|p| |q|)] = q / (|p| |q|) − s p / |p|², the second term absent when |p| is clamped.
                            let a = pg[row] / product
                            let b = own > 0 ? pg[row] * out[row] / (own * own) : 0
                            let u = p + row * width, v = q + row * width, du = pd + row * width
                            for i in 0..<width { du[i] = a * v[i] - b * u[i] }
                        }
                    }
                }
                return d
            }
            return [x.needsGrad ? gradient(of: x, other: y, normIndex: 0) : nil,
                    y.needsGrad ? gradient(of: y, other: x, normIndex: 1) : nil]
        }
    }

    /// Mean of the `k` largest entries of each row of the last axis (shape without the last axis).
    /// Ties go to the lower index; the gradient flows to the selected positions only, 1/k each.
    public static func topKMean(_ x: Tensor, k: Int) throws -> Tensor {
        try x.topKMeanOfRows(k: k)
    }

    func topKMeanOfRows(k: Int) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.invalidArgument(op: "topKMean", reason: "needs at least one axis, got a scalar") }
        let width = shape[rank - 1]
        guard k >= 1, k <= width else {
            throw TensorError.invalidArgument(op: "topKMean", reason: "k \(k) must lie in 1...\(width) (the last axis of \(shape))")
        }
        let rows = count / width
        let result = Tensor(uninitialized: Array(shape.dropLast()))
        var selected = [Int32](repeating: 0, count: rows * k)
        let src = data, out = result.data
        selected.withUnsafeMutableBufferPointer { selectedBuffer in
            let chosen = selectedBuffer.baseAddress!
            Parallel.forRanges(count: rows, grain: Swift.max(1, 4096 / width)) { range in
                var order = [Int32](repeating: 0, count: width)
                order.withUnsafeMutableBufferPointer { order in
                    for row in range {
                        let values = src + row * width
                        for i in 0..<width { order[i] = Int32(i) }
                        order.sort { values[Int($0)] > values[Int($1)] || (values[Int($0)] == values[Int($1)] && $0 < $1) }
                        var sum: Float = 0
                        for j in 0..<k {
                            sum += values[Int(order[j])]
                            chosen[row * k + j] = order[j]
                        }
                        out[row] = sum / Float(k)
                    }
                }
            }
        }
        return Tensor.record(result, op: "topk_mean", inputs: [self]) { [shape] g in
            let d = Tensor(zeros: shape)
            let pd = d.data, pg = g.data
            let scale = 1 / Float(k)
            for row in 0..<rows {
                for j in 0..<k { pd[row * width + Int(selected[row * k + j])] = pg[row] * scale }
            }
            return [d]
        }
    }

    /// True when no element is NaN or infinite.
    public var isFinite: Bool {
        let p = data
        let bad = Tensor.chunkedSum(count: count) { range in
            // x · 0 is 0 for finite x and NaN otherwise, so one NaN anywhere poisons the lane sums.
            var acc = Lanes(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound { acc += Tensor.load(p + i) * 0; i += 8 }
            var sum = acc.sum()
            while i < range.upperBound { sum += p[i] * 0; i += 1 }
            return sum == 0 ? 0 : 1
        }
        return bad == 0
    }

    /// Throws `.nonFinite` naming the first tensor with a NaN or infinity: each is named `what` plus
    /// its `name` (or position), e.g. "gradient of down_blocks.0.attentions.0.proj_in.lora_A.weight".
    /// Tensors that are finite cost one vectorised pass; the element scan of `checkFinite` runs only
    /// for the offender.
    public static func assertFinite(_ tensors: [Tensor], what: String) throws {
        for (index, tensor) in tensors.enumerated() where !tensor.isFinite {
            try tensor.checkFinite("\(what) of \(tensor.name ?? "tensor #\(index) \(tensor.shape)")")
        }
    }

    /// Sum of `partial(range)` over fixed chunks of `0..<count`, combined in chunk order.
    static func chunkedSum(count: Int, _ partial: (Range<Int>) -> Double) -> Double {
        guard count > 0 else { return 0 }
        let chunks = Swift.min(64, Swift.max(1, count / 16_384))
        var partials = [Double](repeating: 0, count: chunks)
        partials.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            Parallel.forEach(chunks: chunks) { chunk in
                base[chunk] = partial((count * chunk / chunks)..<(count * (chunk + 1) / chunks))
            }
        }
        return partials.reduce(0, +)
    }
}
