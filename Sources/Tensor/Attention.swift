import Foundation

/// Fused scaled-dot-product attention, softmax(Q Kᵀ · scale + mask) V, as
/// torch.nn.functional.scaled_dot_product_attention (diffusers' AttnProcessor2_0 core) with
/// heads folded into the batch axis.
///
/// Memory-lean in the FlashAttention-2 manner: the forward pass keeps only the per-row
/// logsumexp (B·Lq floats) besides its inputs and output; the backward pass recomputes the
/// scores block by block (P = e^(S − lse)) instead of keeping the [B, Lq, Lk] probabilities.
///
/// Three kernels, each with a forward and a backward pass; `.automatic` picks each pass's kernel by
/// measurement (`automaticKernel`, `automaticBackwardKernel`), since a backward pass needs only the
/// forward's output and logsumexp, whichever kernel made them:
/// - small head (AttentionSmallHead.swift): vectorised over keys; the forward for heads of up to 4
///   channels over up to 16 keys, the backward for heads up to 16 over up to 64 keys.
/// - blocked: per (batch, block of query rows) the scores of the block against all keys live in a
///   cache-sized scratch buffer; the products are sgemm calls, the softmax runs over the scratch rows.
///   Work units are spread over the engine's threads with OpenBLAS single-threaded per call. Every
///   other forward pass.
/// - direct: scores, softmax and the weighted sum per query row with eight-lane dot products, many
///   sequences per thread; the backward for few keys (temporal attention over a handful of frames).
///
/// `multiHeadAttention` takes the heads side by side in each row, as the projections make them.
extension Tensor {
    /// Which kernel computes attention; `.automatic` picks by the head dimensions and the number of keys.
    enum AttentionKernel { case automatic, blocked, direct, smallHead }

    /// Head dimensions and keys up to which `.automatic`'s forward pass uses the small-head kernel;
    /// beyond either, the blocked one. Measured forward passes, median of 15 (2-core AMD EPYC Zen 4,
    /// OpenBLAS SkylakeX), ns per query row small-head / blocked / direct, one thread (as grouped
    /// inference runs): 256 queries × 256 keys at head dim 12 364 / 300 / 1181, dim 8 407 / 334 / 488,
    /// dim 4 223 / 199 / 935, dim 2 227–334 / 234–262 / 586–704; 64 × 64 at dim 24 196 / 118 / 237,
    /// dim 4 103 / 91 / 266; 8 frames × 8 at dim 12 58 / 38 / 62, dim 24 90 / 50 / 61, dim 32 173 /
    /// 58 / 104, dim 64 402 / 54 / 143, dim 4 47 / 51 / 68, dim 2 40 / 49 / 56; 256 queries × 16 text
    /// tokens at dim 12 53 / 31 / 80. Two threads, 8 frames at dim 4 19 / 37 / 30, dim 2 18 / 36 / 22,
    /// dim 32 89 / 38 / 59. The blocked kernel's sgemm calls pay off except for the tiniest heads
    /// over a handful of keys.
    static let smallHeadForwardMaxDepth = 4
    static let smallHeadForwardMaxKeys = 16

    /// Keys up to which `.automatic`'s backward pass uses the direct kernel. Measured on 2048 sequences of 8 frames
    /// (2 shared cores, noisy; an earlier machine): forward + backward 1.8x faster than per-sequence
    /// sgemm at D = 64 and about 1.6x slower at D = 32; beyond 16 keys the blocked kernel wins
    /// clearly. (Forward passes alone now take the blocked kernel: `smallHeadForwardMaxDepth`.)
    static let directAttentionMaxKeys = 16

    /// Keys up to which `.automatic` takes the small-head kernel's backward pass for head dimensions
    /// up to 16; beyond, the blocked kernel's (sgemm) backward.
    /// The small-head backward accumulates dK and dV per query row in memory, which stops fitting
    /// L1 as keys grow. Measured (2 cores shared with a training run, forward + backward, 5 runs):
    /// 64 × 256 keys at head dim 12, 47–52 ms small-head against 15–18 ms blocked; 128 × 256 at
    /// dim 8, 28–38 against 22–23; 64 × 1024 at dim 8, 1 180–1 270 against 180–220; 256 × 64 at
    /// dim 12, 3.3–6.5 against 3.5–6.0 (even); 2048 × 8 at dims 4 and 12, small-head on par with
    /// or faster than the direct kernel.
    static let smallHeadBackwardMaxKeys = 64

    /// softmax(query · keyᵀ · scale + mask) · value for query `[B, Lq, D]`, key `[B, Lk, D]`,
    /// value `[B, Lk, Dv]` (B = batch × heads). `scale` defaults to 1/√D. `mask` is additive
    /// (−∞ or a large negative value masks a key) and broadcasts to `[B, Lq, Lk]`, e.g. `[Lq, Lk]`,
    /// `[B, Lq, Lk]` or `[B, 1, Lk]`; it receives no gradient.
    public static func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float? = nil,
                                 mask: Tensor? = nil) throws -> Tensor {
        try attention(query: query, key: key, value: value, scale: scale, mask: mask, kernel: .automatic)
    }

    static func attention(query: Tensor, key: Tensor, value: Tensor, scale: Float?, mask: Tensor?,
                          kernel: AttentionKernel) throws -> Tensor {
        let geometry = try AttentionGeometry(query: query, key: key, value: value, mask: mask, op: "attention")
        let scale = scale ?? 1 / Float(geometry.depth).squareRoot()
        let chosen = kernel == .automatic ? automaticKernel(geometry) : kernel
        let output = Tensor(uninitialized: [geometry.batches, geometry.queries, geometry.valueDepth])
        // The rows' logsumexp only where a backward pass can follow.
        let logSumExp = records([query, key, value]) ? Tensor(uninitialized: [geometry.batches, geometry.queries]) : nil
        attentionForward(chosen, geometry, scale, query, key, value, output, logSumExp)
        guard let logSumExp else { return output }
        let backwardKernel = kernel == .automatic ? automaticBackwardKernel(geometry) : chosen
        return record(output, op: "attention", inputs: [query, key, value]) { g, output in
            let dq = query.needsGrad ? Tensor(uninitialized: query.shape) : nil
            let dk = key.needsGrad ? Tensor(uninitialized: key.shape) : nil
            let dv = value.needsGrad ? Tensor(uninitialized: value.shape) : nil
            let grads = AttentionGradients(dq: dq?.data, dk: dk?.data, dv: dv?.data)
            switch backwardKernel {
            case .smallHead:
                smallHeadAttentionBackward(geometry, scale, query.data, key.data, value.data, output.data,
                                           logSumExp.data, g.data, grads)
            case .direct:
                directAttentionBackward(geometry, scale, query.data, key.data, value.data, output.data,
                                        logSumExp.data, g.data, grads)
            case .blocked, .automatic:
                blockedAttentionBackward(geometry, scale, query.data, key.data, value.data, output.data,
                                         logSumExp.data, g.data, grads)
            }
            return [dq, dk, dv]
        }
    }

    /// The forward kernel `.automatic` takes: small-head for heads of at most `smallHeadForwardMaxDepth`
    /// channels over at most `smallHeadForwardMaxKeys` keys, else blocked.
    static func automaticKernel(_ geometry: AttentionGeometry) -> AttentionKernel {
        let small = smallHeadForwardMaxDepth
        return geometry.depth <= small && geometry.valueDepth <= small && geometry.keys <= smallHeadForwardMaxKeys ? .smallHead : .blocked
    }

    /// The backward kernel `.automatic` takes (it reads only the forward's output and logsumexp, so
    /// any forward kernel may precede it): small-head for head dimensions up to 16 and at most
    /// `smallHeadBackwardMaxKeys` keys, else direct for at most `directAttentionMaxKeys` keys, else blocked.
    static func automaticBackwardKernel(_ geometry: AttentionGeometry) -> AttentionKernel {
        if geometry.depth <= smallHeadAttentionMaxDepth && geometry.valueDepth <= smallHeadAttentionMaxDepth {
            return geometry.keys > smallHeadBackwardMaxKeys ? .blocked : .smallHead
        }
        return geometry.keys <= directAttentionMaxKeys ? .direct : .blocked
    }

    static func attentionForward(_ kernel: AttentionKernel, _ geometry: AttentionGeometry, _ scale: Float,
                                 _ query: Tensor, _ key: Tensor, _ value: Tensor, _ output: Tensor, _ logSumExp: Tensor?) {
        switch kernel {
        case .smallHead:
            smallHeadAttentionForward(geometry, scale, query.data, key.data, value.data, output.data, logSumExp?.data)
        case .direct:
            directAttentionForward(geometry, scale, query.data, key.data, value.data, output.data, logSumExp?.data)
        case .blocked, .automatic:
            blockedAttentionForward(geometry, scale, query.data, key.data, value.data, output.data, logSumExp?.data)
        }
    }

    /// `[B, L, heads·d]` → `[B·heads, L, d]`: the heads folded into the batch (diffusers'
    /// `head_to_batch_dim`). The channels must divide into `heads`.
    public func foldingHeads(_ heads: Int) throws -> Tensor {
        guard heads > 1 else { return self }
        let (batch, length, inner) = (shape[0], shape[1], shape[2])
        return try reshaped([batch, length, heads, inner / heads]).permuted([0, 2, 1, 3]).reshaped([batch * heads, length, inner / heads])
    }

    /// `[B·heads, L, d]` → `[B, L, heads·d]`: the inverse of `foldingHeads` (`batch_to_head_dim`).
    public func unfoldingHeads(_ heads: Int) throws -> Tensor {
        guard heads > 1 else { return self }
        let (batchHeads, length, depth) = (shape[0], shape[1], shape[2])
        return try reshaped([batchHeads / heads, heads, length, depth]).permuted([0, 2, 1, 3]).reshaped([batchHeads / heads, length, heads * depth])
    }

    /// Multi-head attention on the projections as linear layers make them: query `[B, Lq, heads·D]`,
    /// key `[B, Lk, heads·D]` and value `[B, Lk, heads·Dv]` give `[B, Lq, heads·Dv]`, the result of
    /// folding the heads into the batch (diffusers' `head_to_batch_dim`), `attention`, and laying
    /// them back side by side (`batch_to_head_dim`). When no gradient is recorded the kernels read
    /// and write each head's columns in place, without those four copies; otherwise this is that
    /// composition, with its gradients. `mask` is as `attention`'s, over the folded batch B·heads.
    public static func multiHeadAttention(query: Tensor, key: Tensor, value: Tensor, heads: Int,
                                          scale: Float? = nil, mask: Tensor? = nil) throws -> Tensor {
        try multiHeadAttention(query: query, key: key, value: value, heads: heads, scale: scale, mask: mask, kernel: .automatic)
    }

    static func multiHeadAttention(query: Tensor, key: Tensor, value: Tensor, heads: Int, scale: Float?,
                                   mask: Tensor?, kernel: AttentionKernel) throws -> Tensor {
        let operands = [("query", query), ("key", key), ("value", value)]
        for (name, x) in operands where x.rank != 3 || heads < 1 || x.shape[2] % heads != 0 {
            throw TensorError.invalidArgument(op: "multiHeadAttention",
                                              reason: "\(name) \(x.shape) must be [batch, length, heads·dim] with \(heads) heads")
        }
        if heads == 1 { return try attention(query: query, key: key, value: value, scale: scale, mask: mask, kernel: kernel) }
        if records([query, key, value]) {
            return try attention(query: query.foldingHeads(heads), key: key.foldingHeads(heads), value: value.foldingHeads(heads),
                                 scale: scale, mask: mask, kernel: kernel).unfoldingHeads(heads)
        }
        func fold(_ x: Tensor) -> [Int] { [x.shape[0] * heads, x.shape[1], x.shape[2] / heads] }
        var geometry = try AttentionGeometry(query: fold(query), key: fold(key), value: fold(value), mask: mask, op: "multiHeadAttention")
        geometry.heads = heads
        let output = Tensor(uninitialized: [query.shape[0], query.shape[1], value.shape[2]])
        let chosen = kernel == .automatic ? automaticKernel(geometry) : kernel
        // No backward pass follows: the rows' logsumexp (a scalar log per query row) is not computed.
        attentionForward(chosen, geometry, scale ?? 1 / Float(geometry.depth).squareRoot(), query, key, value, output, nil)
        return output
    }

    /// softmax(query · keyᵀ · scale + mask) `[B, Lq, Lk]`: the attention maps themselves, for methods
    /// that read, edit or regularise them. Differentiable with respect to query and key.
    public static func attentionProbabilities(query: Tensor, key: Tensor, scale: Float? = nil,
                                              mask: Tensor? = nil) throws -> Tensor {
        let geometry = try AttentionGeometry(query: query, key: key, value: nil, mask: mask, op: "attentionProbabilities")
        let scale = scale ?? 1 / Float(geometry.depth).squareRoot()
        let (batches, queries, keys, depth) = (geometry.batches, geometry.queries, geometry.keys, geometry.depth)
        let probabilities = Tensor(uninitialized: [batches, queries, keys])
        let q = query.data, k = key.data, p = probabilities.data
        let blockRows = geometry.blockRows
        let blocks = (queries + blockRows - 1) / blockRows
        BLAS.withSingleThreadedCalls {
            Parallel.forEach(chunks: batches * blocks) { unit in
                let b = unit / blocks, first = (unit % blocks) * blockRows
                let rows = Swift.min(blockRows, queries - first)
                let s = p + (b * queries + first) * keys
                BLAS.sgemm(transA: false, transB: true, m: rows, n: keys, k: depth, alpha: scale,
                           a: q + (b * queries + first) * depth, lda: depth, b: k + b * keys * depth, ldb: depth,
                           c: s, ldc: keys)
                for r in 0..<rows {
                    let row = s + r * keys
                    if let mask = geometry.mask { addRun(mask.row(b, first + r), into: row, keys) }
                    let shift = safeShift(rowMax(row, keys))
                    let total = expShifted(row, row, keys, shift: shift)
                    scaleRun(row, keys, 1 / total)
                }
            }
        }
        return record(probabilities, op: "attentionProbabilities", inputs: [query, key]) { g in
            let dq = query.needsGrad ? Tensor(uninitialized: query.shape) : nil
            let dk = key.needsGrad ? Tensor(uninitialized: key.shape) : nil
            let gp = g.data, dqp = dq?.data, dkp = dk?.data
            // dS = P ∘ (dP − rowsum(dP ∘ P)); dQ = scale · dS K; dK = scale · dSᵀ Q. dK sums over all
            // query rows of a batch, so a work unit is one batch.
            BLAS.withSingleThreadedCalls {
                Parallel.forEach(chunks: batches) { b in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * keys)
                    defer { scratch.deallocate() }
                    for first in stride(from: 0, to: queries, by: blockRows) {
                        let rows = Swift.min(blockRows, queries - first)
                        let base = (b * queries + first) * keys
                        for r in 0..<rows {
                            softmaxBackwardRow(p + base + r * keys, gp + base + r * keys, scratch + r * keys, keys)
                        }
                        if let dqp {
                            BLAS.sgemm(transA: false, transB: false, m: rows, n: depth, k: keys, alpha: scale,
                                       a: scratch, lda: keys, b: k + b * keys * depth, ldb: depth,
                                       c: dqp + (b * queries + first) * depth, ldc: depth)
                        }
                        if let dkp {
                            BLAS.sgemm(transA: true, transB: false, m: keys, n: depth, k: rows, alpha: scale,
                                       a: scratch, lda: keys, b: q + (b * queries + first) * depth, ldb: depth,
                                       beta: first == 0 ? 0 : 1, c: dkp + b * keys * depth, ldc: depth)
                        }
                    }
                    if queries == 0, let dkp { (dkp + b * keys * depth).update(repeating: 0, count: keys * depth) }
                }
            }
            return [dq, dk]
        }
    }

    // MARK: Blocked kernel (sgemm per block of query rows)

    static func blockedAttentionForward(_ geo: AttentionGeometry, _ scale: Float,
                                        _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                        _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                        _ lse: UnsafeMutablePointer<Float>?) {
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let blockRows = geo.blockRows
        let blocks = (queries + blockRows - 1) / blockRows
        let units = batches * blocks
        // Units are grouped so each group allocates its scratch once; results do not depend on the grouping.
        let groups = Swift.min(units, 32)
        BLAS.withSingleThreadedCalls {
            Parallel.forEach(chunks: groups) { group in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * keys)
                defer { scores.deallocate() }
                for unit in (units * group / groups)..<(units * (group + 1) / groups) {
                    let b = unit / blocks, first = (unit % blocks) * blockRows
                    let rows = Swift.min(blockRows, queries - first)
                    BLAS.sgemm(transA: false, transB: true, m: rows, n: keys, k: depth, alpha: scale,
                               a: geo.queryRow(q, b, first), lda: geo.queryStride, b: geo.keyRows(k, b), ldb: geo.keyStride,
                               c: scores, ldc: keys)
                    for r in 0..<rows {
                        let row = scores + r * keys
                        if let mask = geo.mask { addRun(mask.row(b, first + r), into: row, keys) }
                        let shift = safeShift(rowMax(row, keys))
                        let total = expShifted(row, row, keys, shift: shift)
                        lse?[b * queries + first + r] = shift + Foundation.log(total)
                        scaleRun(row, keys, 1 / total)
                    }
                    BLAS.sgemm(transA: false, transB: false, m: rows, n: valueDepth, k: keys,
                               a: scores, lda: keys, b: geo.valueRows(v, b), ldb: geo.valueStride,
                               c: geo.outputRow(out, b, first), ldc: geo.outputStride)
                }
            }
        }
    }

    static func blockedAttentionBackward(_ geo: AttentionGeometry, _ scale: Float,
                                         _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                         _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                         _ lse: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
                                         _ grads: AttentionGradients) {
        precondition(geo.heads == 1, "backward passes read heads folded into the batch")
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let blockRows = geo.blockRows
        let needScores = grads.dq != nil || grads.dk != nil
        // dK and dV sum over every query row of a batch: one batch per work unit, its blocks in order.
        BLAS.withSingleThreadedCalls {
            Parallel.forEach(chunks: batches) { b in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * keys)
                let ds = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * keys)
                defer { p.deallocate(); ds.deallocate() }
                let kb = k + b * keys * depth, vb = v + b * keys * valueDepth
                if queries == 0 {
                    if let dk = grads.dk { (dk + b * keys * depth).update(repeating: 0, count: keys * depth) }
                    if let dv = grads.dv { (dv + b * keys * valueDepth).update(repeating: 0, count: keys * valueDepth) }
                }
                for first in stride(from: 0, to: queries, by: blockRows) {
                    let rows = Swift.min(blockRows, queries - first)
                    let rowBase = b * queries + first
                    let qRows = q + rowBase * depth, doRows = dout + rowBase * valueDepth
                    // Recompute P = e^(scale·Q Kᵀ + mask − lse).
                    BLAS.sgemm(transA: false, transB: true, m: rows, n: keys, k: depth, alpha: scale,
                               a: qRows, lda: depth, b: kb, ldb: depth, c: p, ldc: keys)
                    for r in 0..<rows {
                        let row = p + r * keys
                        if let mask = geo.mask { addRun(mask.row(b, first + r), into: row, keys) }
                        _ = expShifted(row, row, keys, shift: lse[rowBase + r])
                    }
                    if let dv = grads.dv {
                        // dV += Pᵀ dO
                        BLAS.sgemm(transA: true, transB: false, m: keys, n: valueDepth, k: rows,
                                   a: p, lda: keys, b: doRows, ldb: valueDepth,
                                   beta: first == 0 ? 0 : 1, c: dv + b * keys * valueDepth, ldc: valueDepth)
                    }
                    guard needScores else { continue }
                    // dP = dO Vᵀ; dS = P ∘ (dP − rowsum(dO ∘ O)).
                    BLAS.sgemm(transA: false, transB: true, m: rows, n: keys, k: valueDepth,
                               a: doRows, lda: valueDepth, b: vb, ldb: valueDepth, c: ds, ldc: keys)
                    for r in 0..<rows {
                        let d = dotRun(doRows + r * valueDepth, out + (rowBase + r) * valueDepth, valueDepth)
                        scoreGradientRow(p + r * keys, ds + r * keys, keys, d)
                    }
                    if let dq = grads.dq {
                        BLAS.sgemm(transA: false, transB: false, m: rows, n: depth, k: keys, alpha: scale,
                                   a: ds, lda: keys, b: kb, ldb: depth, c: dq + rowBase * depth, ldc: depth)
                    }
                    if let dk = grads.dk {
                        BLAS.sgemm(transA: true, transB: false, m: keys, n: depth, k: rows, alpha: scale,
                                   a: ds, lda: keys, b: qRows, ldb: depth,
                                   beta: first == 0 ? 0 : 1, c: dk + b * keys * depth, ldc: depth)
                    }
                }
            }
        }
    }

    // MARK: Direct kernel (few keys: temporal attention)

    static func directAttentionForward(_ geo: AttentionGeometry, _ scale: Float,
                                       _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                       _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                       _ lse: UnsafeMutablePointer<Float>?) {
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let perSequence = Swift.max(1, queries * keys * (depth + valueDepth))
        let padded = (keys + 7) / 8 * 8
        Parallel.forRanges(count: batches, grain: Swift.max(1, 32_768 / perSequence)) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: padded * (depth + 1))
            defer { p.deallocate() }
            let kt = p + padded
            for b in range {
                let vb = geo.valueRows(v, b)
                packTransposed(geo.keyRows(k, b), keys, depth, into: kt, padded, rowStride: geo.keyStride)
                for i in 0..<queries {
                    rowTimesPacked(geo.queryRow(q, b, i), depth, kt, padded, scale, into: p)
                    if let mask = geo.mask { addRun(mask.row(b, i), into: p, keys) }
                    let shift = safeShift(rowMax(p, keys))
                    let total = expShifted(p, p, keys, shift: shift)
                    lse?[b * queries + i] = shift + Foundation.log(total)
                    scaleRun(p, keys, 1 / total)
                    weightedRowSum(p, vb, keys, valueDepth, into: geo.outputRow(out, b, i), rowStride: geo.valueStride)
                }
            }
        }
    }

    static func directAttentionBackward(_ geo: AttentionGeometry, _ scale: Float,
                                        _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                        _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                        _ lse: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
                                        _ grads: AttentionGradients) {
        precondition(geo.heads == 1, "backward passes read heads folded into the batch")
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let perSequence = Swift.max(1, queries * keys * (depth + valueDepth))
        let needScores = grads.dq != nil || grads.dk != nil
        let padded = (keys + 7) / 8 * 8
        Parallel.forRanges(count: batches, grain: Swift.max(1, 16_384 / perSequence)) { range in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: padded * (depth + valueDepth + 2))
            defer { p.deallocate() }
            let ds = p + padded, kt = p + 2 * padded, vt = kt + padded * depth
            for b in range {
                let kb = k + b * keys * depth, vb = v + b * keys * valueDepth
                packTransposed(kb, keys, depth, into: kt, padded)
                if needScores { packTransposed(vb, keys, valueDepth, into: vt, padded) }
                let dkb = grads.dk.map { $0 + b * keys * depth }
                let dvb = grads.dv.map { $0 + b * keys * valueDepth }
                dkb?.update(repeating: 0, count: keys * depth)
                dvb?.update(repeating: 0, count: keys * valueDepth)
                for i in 0..<queries {
                    let row = b * queries + i
                    let qi = q + row * depth, doi = dout + row * valueDepth
                    rowTimesPacked(qi, depth, kt, padded, scale, into: p)
                    if let mask = geo.mask { addRun(mask.row(b, i), into: p, keys) }
                    _ = expShifted(p, p, keys, shift: lse[row])
                    if let dvb {
                        for j in 0..<keys { axpy(p[j], doi, dvb + j * valueDepth, valueDepth) }
                    }
                    guard needScores else { continue }
                    let d = dotRun(doi, out + row * valueDepth, valueDepth)
                    rowTimesPacked(doi, valueDepth, vt, padded, 1, into: ds)
                    for j in 0..<keys { ds[j] = p[j] * (ds[j] - d) * scale }
                    if let dq = grads.dq { weightedRowSum(ds, kb, keys, depth, into: dq + row * depth) }
                    if let dkb {
                        for j in 0..<keys { axpy(ds[j], qi, dkb + j * depth, depth) }
                    }
                }
            }
        }
    }

    // MARK: Row helpers

    /// Packs `count` rows of `width` into `width` rows of `padded` lanes (a transpose, zero-padded), so
    /// a query's scores against all keys come out eight lanes at a time without horizontal sums.
    @inline(__always)
    static func packTransposed(_ rows: UnsafePointer<Float>, _ count: Int, _ width: Int,
                               into packed: UnsafeMutablePointer<Float>, _ padded: Int, rowStride: Int? = nil) {
        let stride = rowStride ?? width
        for c in 0..<width {
            let column = packed + c * padded
            for j in 0..<count { column[j] = rows[j * stride + c] }
            for j in count..<padded { column[j] = 0 }
        }
    }

    /// out[j] = scale · Σ_c x[c] · packed[c, j] for every lane j < padded.
    @inline(__always)
    static func rowTimesPacked(_ x: UnsafePointer<Float>, _ width: Int, _ packed: UnsafePointer<Float>, _ padded: Int,
                               _ scale: Float, into out: UnsafeMutablePointer<Float>) {
        typealias V = SIMD8<Float>
        var lane = 0
        while lane < padded {
            var acc0 = V(), acc1 = V()
            var c = 0
            while c + 2 <= width {
                acc0 += V(repeating: x[c]) * UnsafeRawPointer(packed + c * padded + lane).loadUnaligned(as: V.self)
                acc1 += V(repeating: x[c + 1]) * UnsafeRawPointer(packed + (c + 1) * padded + lane).loadUnaligned(as: V.self)
                c += 2
            }
            if c < width { acc0 += V(repeating: x[c]) * UnsafeRawPointer(packed + c * padded + lane).loadUnaligned(as: V.self) }
            UnsafeMutableRawPointer(out + lane).storeBytes(of: (acc0 + acc1) * scale, as: V.self)
            lane += 8
        }
    }

    /// d[i] += s[i] over a run.
    @inline(__always)
    static func addRun(_ s: UnsafePointer<Float>, into d: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        var i = 0
        while i + 8 <= n {
            let sum = UnsafeRawPointer(d + i).loadUnaligned(as: V.self) + UnsafeRawPointer(s + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(d + i).storeBytes(of: sum, as: V.self)
            i += 8
        }
        while i < n { d[i] += s[i]; i += 1 }
    }

    /// y += a·x over a run.
    @inline(__always)
    static func axpy(_ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        typealias V = SIMD8<Float>
        let va = V(repeating: a)
        var i = 0
        while i + 8 <= n {
            let r = UnsafeRawPointer(y + i).loadUnaligned(as: V.self) + va * UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: r, as: V.self)
            i += 8
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// out = Σ_j w[j] · rows[j] for `count` rows of `width`.
    @inline(__always)
    static func weightedRowSum(_ w: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, _ count: Int, _ width: Int,
                               into out: UnsafeMutablePointer<Float>, rowStride: Int? = nil) {
        typealias V = SIMD8<Float>
        let stride = rowStride ?? width
        var c = 0
        while c + 8 <= width {
            var acc = V()
            for j in 0..<count { acc += V(repeating: w[j]) * UnsafeRawPointer(rows + j * stride + c).loadUnaligned(as: V.self) }
            UnsafeMutableRawPointer(out + c).storeBytes(of: acc, as: V.self)
            c += 8
        }
        while c < width {
            var acc: Float = 0
            for j in 0..<count { acc += w[j] * rows[j * stride + c] }
            out[c] = acc
            c += 1
        }
    }

    /// ds = p ∘ (ds − d) in place (ds holds dP on entry).
    @inline(__always)
    static func scoreGradientRow(_ p: UnsafePointer<Float>, _ ds: UnsafeMutablePointer<Float>, _ n: Int, _ d: Float) {
        typealias V = SIMD8<Float>
        let vd = V(repeating: d)
        var i = 0
        while i + 8 <= n {
            let r = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) * (UnsafeRawPointer(ds + i).loadUnaligned(as: V.self) - vd)
            UnsafeMutableRawPointer(ds + i).storeBytes(of: r, as: V.self)
            i += 8
        }
        while i < n { ds[i] = p[i] * (ds[i] - d); i += 1 }
    }
}

/// Raw pointers to the gradients an attention backward pass fills (nil where not needed).
struct AttentionGradients {
    let dq: UnsafeMutablePointer<Float>?
    let dk: UnsafeMutablePointer<Float>?
    let dv: UnsafeMutablePointer<Float>?
}

/// The sizes of one attention call and its mask, validated.
struct AttentionGeometry {
    /// An additive mask read through strides: 0 along an axis it broadcasts over.
    struct Mask {
        let tensor: Tensor
        let batchStride: Int
        let rowStride: Int
        @inline(__always)
        func row(_ batch: Int, _ query: Int) -> UnsafeMutablePointer<Float> {
            tensor.data + batch * batchStride + query * rowStride
        }
    }

    let batches: Int, queries: Int, keys: Int, depth: Int, valueDepth: Int
    let mask: Mask?
    /// How the operands hold the heads. 1: folded into the batch, `[B, L, D]` with B = batch × heads
    /// (`attention`). More: side by side in each row, `[batch, L, heads·D]` as the projections make
    /// them (`multiHeadAttention`, forward kernels only); head h of folded batch b = batch·heads + h
    /// is then columns h·D..<(h+1)·D of its rows.
    var heads = 1

    /// Floats between consecutive rows of each operand.
    var queryStride: Int { heads * depth }
    var keyStride: Int { heads * depth }
    var valueStride: Int { heads * valueDepth }
    var outputStride: Int { heads * valueDepth }

    /// Query row `i` of folded batch `b`.
    @inline(__always)
    func queryRow(_ q: UnsafeMutablePointer<Float>, _ b: Int, _ i: Int) -> UnsafeMutablePointer<Float> {
        q + ((b / heads) * queries + i) * queryStride + (b % heads) * depth
    }
    /// The first key row of folded batch `b` (rows `keyStride` apart).
    @inline(__always)
    func keyRows(_ k: UnsafeMutablePointer<Float>, _ b: Int) -> UnsafeMutablePointer<Float> {
        k + (b / heads) * keys * keyStride + (b % heads) * depth
    }
    /// The first value row of folded batch `b` (rows `valueStride` apart).
    @inline(__always)
    func valueRows(_ v: UnsafeMutablePointer<Float>, _ b: Int) -> UnsafeMutablePointer<Float> {
        v + (b / heads) * keys * valueStride + (b % heads) * valueDepth
    }
    /// Output row `i` of folded batch `b`.
    @inline(__always)
    func outputRow(_ out: UnsafeMutablePointer<Float>, _ b: Int, _ i: Int) -> UnsafeMutablePointer<Float> {
        out + ((b / heads) * queries + i) * outputStride + (b % heads) * valueDepth
    }

    /// Query rows per block: the block's scores (rows × keys floats) stay within about 128 KiB (L2).
    var blockRows: Int {
        Swift.max(8, Swift.min(128, 32_768 / Swift.max(keys, 1)))
    }

    init(query: Tensor, key: Tensor, value: Tensor?, mask: Tensor?, op: String) throws {
        try self.init(query: query.shape, key: key.shape, value: value?.shape, mask: mask, op: op)
    }

    /// From the operands' shapes, heads folded into the batch.
    init(query: [Int], key: [Int], value: [Int]?, mask: Tensor?, op: String) throws {
        let names = "query \(query), key \(key)" + (value.map { ", value \($0)" } ?? "")
        guard query.count == 3, key.count == 3, value.map({ $0.count == 3 }) ?? true else {
            throw TensorError.invalidArgument(op: op, reason: "expects [B, L, D] operands (heads folded into B), got \(names)")
        }
        guard query[0] == key[0], query[2] == key[2] else {
            throw TensorError.shapeMismatch(op: "\(op) (query and key must share batch and head dim)", lhs: query, rhs: key)
        }
        if let value, value[0] != key[0] || value[1] != key[1] {
            throw TensorError.shapeMismatch(op: "\(op) (key and value must share batch and length)", lhs: key, rhs: value)
        }
        batches = query[0]
        queries = query[1]
        keys = key[1]
        depth = query[2]
        valueDepth = value?[2] ?? 0
        guard keys > 0 else {
            throw TensorError.invalidArgument(op: op, reason: "needs at least one key, got \(names)")
        }
        guard let mask else { self.mask = nil; return }
        let keys = key[1], source = mask
        let full = [batches, queries, keys]
        guard mask.rank <= 3 else {
            throw TensorError.shapeMismatch(op: "\(op) (mask must broadcast to [B, Lq, Lk])", lhs: full, rhs: mask.shape)
        }
        let padded = [Int](repeating: 1, count: 3 - mask.rank) + mask.shape
        for axis in 0..<3 where padded[axis] != 1 && padded[axis] != full[axis] {
            throw TensorError.shapeMismatch(op: "\(op) (mask must broadcast to [B, Lq, Lk])", lhs: full, rhs: mask.shape)
        }
        // A mask constant along the keys is expanded so every mask row is a contiguous run.
        let rows = padded[2] == keys
            ? source.detached()
            : try Tensor.withoutGrad { try source.detached().reshaped(padded).broadcast(to: [padded[0], padded[1], keys]) }
        self.mask = Mask(tensor: rows,
                         batchStride: padded[0] == 1 ? 0 : padded[1] * keys,
                         rowStride: padded[1] == 1 ? 0 : keys)
    }
}
