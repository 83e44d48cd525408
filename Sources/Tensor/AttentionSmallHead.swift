import Foundation

/// Fused attention for tiny head dimensions (≤ 16), the shape diffusers' UNet3DConditionModel
/// produces by passing `attention_head_dim` as `num_attention_heads` to its transformers: the
/// benchmark U-Net runs 32 heads of dimension 2 or 4. `.automatic` takes its forward pass for heads
/// of up to 4 channels over up to 16 keys (temporal attention) and its backward pass for heads up
/// to 16 over up to 64 keys; elsewhere the blocked kernel's sgemm calls measured faster.
///
/// With D = 4, an sgemm for Q Kᵀ does 4 multiply-adds per score and mostly moves memory, and the
/// [rows, keys] score block is written and read several times. This kernel works on one query row
/// at a time and vectorises over keys instead: K and V are packed transposed per batch
/// ([D][keys padded to 8]), so eight scores cost D fused multiply-adds and eight keys' weighted
/// values Dv more, with no horizontal sums inside the loops. The row's scores live in an L1-sized
/// buffer; the softmax takes two passes over it (row max, then exponentials), so each score is
/// exponentiated once. The backward pass recomputes P = e^(S − lse) from the saved logsumexp
/// (FlashAttention-2) and accumulates dK, dV transposed per batch.
extension Tensor {
    /// Head dimensions (of queries/keys and of values) up to which `.automatic` uses this kernel's
    /// backward pass (its forward pass: `smallHeadForwardMaxDepth`).
    static let smallHeadAttentionMaxDepth = 16

    /// Value channels handled per pass over a row (register accumulators).
    private static let channelGroup = 4

    /// Per-call sizes of the packed, transposed operands.
    struct SmallHeadLayout {
        let keys: Int, depth: Int, valueDepth: Int
        /// Keys rounded up to a multiple of eight lanes.
        let padded: Int
        /// Value (or, in backward, query) channels rounded up to the channel group.
        let valueRows: Int, depthRows: Int
        /// Valid lanes of the last block of keys (1...8).
        let tailLanes: Int
        /// 0 on valid lanes of the last block and −∞ on padding; adding it keeps padding out of the max.
        let tailBias: SIMD8<Float>
        /// 1 on valid lanes of the last block and 0 on padding.
        let tailKeep: SIMD8<Float>

        init(keys: Int, depth: Int, valueDepth: Int) {
            self.keys = keys
            self.depth = depth
            self.valueDepth = valueDepth
            padded = (keys + 7) / 8 * 8
            valueRows = (valueDepth + Tensor.channelGroup - 1) / Tensor.channelGroup * Tensor.channelGroup
            depthRows = (depth + Tensor.channelGroup - 1) / Tensor.channelGroup * Tensor.channelGroup
            tailLanes = keys - (padded - 8)
            var bias = SIMD8<Float>(), keep = SIMD8<Float>()
            for lane in 0..<8 {
                bias[lane] = lane < tailLanes ? 0 : -Float.infinity
                keep[lane] = lane < tailLanes ? 1 : 0
            }
            tailBias = bias
            tailKeep = keep
        }
    }

    // MARK: Forward

    static func smallHeadAttentionForward(_ geo: AttentionGeometry, _ scale: Float,
                                          _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                          _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                          _ lse: UnsafeMutablePointer<Float>?) {
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let layout = SmallHeadLayout(keys: keys, depth: depth, valueDepth: valueDepth)
        let padded = layout.padded
        // Work units: (batch, block of query rows). The split depends on the sizes only.
        let rowsPerUnit = Swift.max(16, Swift.min(queries, 262_144 / Swift.max(1, keys * (depth + valueDepth))))
        let blocks = Swift.max(1, (queries + rowsPerUnit - 1) / rowsPerUnit)
        let units = batches * blocks
        let groups = Swift.min(units, 64)
        Parallel.forEach(chunks: groups) { group in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: padded * (1 + layout.depthRows + layout.valueRows) + layout.depthRows)
            defer { scratch.deallocate() }
            let row = scratch, kt = scratch + padded, vt = kt + layout.depthRows * padded
            let scaledQuery = vt + layout.valueRows * padded
            // Padding channels stay zero, so the score loop always takes four channels at a time.
            (kt + depth * padded).update(repeating: 0, count: (layout.depthRows - depth) * padded)
            (scaledQuery + depth).update(repeating: 0, count: layout.depthRows - depth)
            var packedBatch = -1
            for unit in (units * group / groups)..<(units * (group + 1) / groups) {
                let b = unit / blocks, first = (unit % blocks) * rowsPerUnit
                if b != packedBatch {
                    packTransposed(geo.keyRows(k, b), keys, depth, into: kt, padded, rowStride: geo.keyStride)
                    packTransposed(geo.valueRows(v, b), keys, valueDepth, into: vt, padded, rowStride: geo.valueStride)
                    for c in valueDepth..<layout.valueRows { (vt + c * padded).update(repeating: 0, count: padded) }
                    packedBatch = b
                }
                for i in first..<Swift.min(queries, first + rowsPerUnit) {
                    let queryRow = geo.queryRow(q, b, i)
                    for c in 0..<depth { scaledQuery[c] = queryRow[c] * scale }
                    let shift = smallHeadScores(scaledQuery, kt, layout,
                                                geo.mask.map { $0.row(b, i) }, into: row)
                    let total = smallHeadWeightedValues(row, shift, vt, layout, into: geo.outputRow(out, b, i))
                    lse?[b * queries + i] = shift + Foundation.log(total)
                }
            }
        }
    }

    /// Writes row[j] = (scale · q)·k_j + mask[j] for every key (−∞ on padding) and returns the
    /// softmax shift: the row maximum, or 0 for a fully masked row (as `safeShift`).
    @inline(__always)
    static func smallHeadScores(_ scaledQuery: UnsafePointer<Float>, _ kt: UnsafePointer<Float>,
                                _ layout: SmallHeadLayout, _ mask: UnsafePointer<Float>?,
                                into row: UnsafeMutablePointer<Float>) -> Float {
        typealias V = SIMD8<Float>
        let padded = layout.padded
        var j = 0
        var best = V(repeating: -.infinity)
        while j < padded {
            var s = packedScores(scaledQuery, kt + j, padded, layout.depthRows)
            if let mask {
                if j + 8 <= layout.keys {
                    s = s + load(mask + j)
                } else {
                    for lane in 0..<layout.tailLanes { s[lane] += mask[j + lane] }
                }
            }
            if j + 8 == padded { s = s + layout.tailBias }
            store(s, row + j)
            best = best.replacing(with: s, where: s .> best)
            j += 8
        }
        return safeShift(VectorMath.horizontalMax(best))
    }

    /// Σ_c q[c] · packed[c][0..<8] over `rows` channels (a multiple of four, zero-padded): two
    /// independent products per pair of channels, so the dependency chain is half as long.
    @inline(__always)
    static func packedScores(_ q: UnsafePointer<Float>, _ packed: UnsafePointer<Float>, _ padded: Int, _ rows: Int) -> SIMD8<Float> {
        typealias V = SIMD8<Float>
        var even = V(repeating: q[0]) * load(packed)
        var odd = V(repeating: q[1]) * load(packed + padded)
        even = even.addingProduct(V(repeating: q[2]), load(packed + 2 * padded))
        odd = odd.addingProduct(V(repeating: q[3]), load(packed + 3 * padded))
        var c = 4
        while c < rows {
            even = even.addingProduct(V(repeating: q[c]), load(packed + c * padded))
            odd = odd.addingProduct(V(repeating: q[c + 1]), load(packed + (c + 1) * padded))
            even = even.addingProduct(V(repeating: q[c + 2]), load(packed + (c + 2) * padded))
            odd = odd.addingProduct(V(repeating: q[c + 3]), load(packed + (c + 3) * padded))
            c += 4
        }
        return even + odd
    }

    /// Turns the scores in `row` into e^(s − shift) (zero on padding) and writes
    /// out[c] = Σ_j e_j v_jc / Σ_j e_j; returns Σ_j e_j.
    @inline(__always)
    static func smallHeadWeightedValues(_ row: UnsafeMutablePointer<Float>, _ shift: Float,
                                        _ vt: UnsafePointer<Float>, _ layout: SmallHeadLayout,
                                        into out: UnsafeMutablePointer<Float>) -> Float {
        typealias V = SIMD8<Float>
        let padded = layout.padded, valueDepth = layout.valueDepth
        let shiftVector = V(repeating: shift)
        var total = V(), a0 = V(), a1 = V(), a2 = V(), a3 = V()
        var j = 0
        while j < padded {
            var e = VectorMath.exp(load(row + j) - shiftVector)
            if j + 8 == padded { e = e * layout.tailKeep }
            if valueDepth > channelGroup { store(e, row + j) }
            total += e
            a0 = a0.addingProduct(e, load(vt + j))
            a1 = a1.addingProduct(e, load(vt + padded + j))
            a2 = a2.addingProduct(e, load(vt + 2 * padded + j))
            a3 = a3.addingProduct(e, load(vt + 3 * padded + j))
            j += 8
        }
        let sum = VectorMath.horizontalSum(total)
        let inverse = 1 / sum
        storeChannels(a0, a1, a2, a3, inverse, out, count: Swift.min(channelGroup, valueDepth))
        var c = channelGroup
        while c < valueDepth {
            (a0, a1, a2, a3) = (V(), V(), V(), V())
            let base = vt + c * padded
            j = 0
            while j < padded {
                let e = load(row + j)
                a0 = a0.addingProduct(e, load(base + j))
                a1 = a1.addingProduct(e, load(base + padded + j))
                a2 = a2.addingProduct(e, load(base + 2 * padded + j))
                a3 = a3.addingProduct(e, load(base + 3 * padded + j))
                j += 8
            }
            storeChannels(a0, a1, a2, a3, inverse, out + c, count: Swift.min(channelGroup, valueDepth - c))
            c += channelGroup
        }
        return sum
    }

    /// out[i] = factor · Σ lanes of the i-th accumulator, for the first `count` of four.
    @inline(__always)
    static func storeChannels(_ a0: SIMD8<Float>, _ a1: SIMD8<Float>, _ a2: SIMD8<Float>, _ a3: SIMD8<Float>,
                              _ factor: Float, _ out: UnsafeMutablePointer<Float>, count: Int) {
        out[0] = VectorMath.horizontalSum(a0) * factor
        if count > 1 { out[1] = VectorMath.horizontalSum(a1) * factor }
        if count > 2 { out[2] = VectorMath.horizontalSum(a2) * factor }
        if count > 3 { out[3] = VectorMath.horizontalSum(a3) * factor }
    }

    // MARK: Backward

    static func smallHeadAttentionBackward(_ geo: AttentionGeometry, _ scale: Float,
                                           _ q: UnsafeMutablePointer<Float>, _ k: UnsafeMutablePointer<Float>,
                                           _ v: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                                           _ lse: UnsafeMutablePointer<Float>, _ dout: UnsafeMutablePointer<Float>,
                                           _ grads: AttentionGradients) {
        precondition(geo.heads == 1, "backward passes read heads folded into the batch")
        typealias V = SIMD8<Float>
        let (batches, queries, keys, depth, valueDepth) = (geo.batches, geo.queries, geo.keys, geo.depth, geo.valueDepth)
        let layout = SmallHeadLayout(keys: keys, depth: depth, valueDepth: valueDepth)
        let padded = layout.padded
        let needScores = grads.dq != nil || grads.dk != nil
        // dK and dV sum over all query rows of a batch: one batch per work unit, rows in order.
        let groups = Swift.min(batches, 64)
        Parallel.forEach(chunks: groups) { group in
            let perBatch = padded * (2 + layout.depthRows + layout.valueRows + depth + valueDepth) + layout.depthRows
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: perBatch)
            defer { scratch.deallocate() }
            let p = scratch, ds = p + padded
            let kt = ds + padded, vt = kt + layout.depthRows * padded
            let dkt = vt + layout.valueRows * padded, dvt = dkt + depth * padded
            let scaledQuery = dvt + valueDepth * padded
            (scaledQuery + depth).update(repeating: 0, count: layout.depthRows - depth)
            for b in (batches * group / groups)..<(batches * (group + 1) / groups) {
                let kb = k + b * keys * depth, vb = v + b * keys * valueDepth
                packTransposed(kb, keys, depth, into: kt, padded)
                for c in depth..<layout.depthRows { (kt + c * padded).update(repeating: 0, count: padded) }
                packTransposed(vb, keys, valueDepth, into: vt, padded)
                dkt.update(repeating: 0, count: (depth + valueDepth) * padded)
                for i in 0..<queries {
                    let index = b * queries + i
                    let qi = q + index * depth, doi = dout + index * valueDepth
                    let mask = geo.mask.map { UnsafePointer($0.row(b, i)) }
                    let lseVector = V(repeating: lse[index])
                    let d = V(repeating: needScores ? dotRun(doi, out + index * valueDepth, valueDepth) : 0)
                    let scaleVector = V(repeating: scale)
                    for c in 0..<depth { scaledQuery[c] = qi[c] * scale }
                    var g0 = V(), g1 = V(), g2 = V(), g3 = V()
                    var j = 0
                    while j < padded {
                        // P = e^(scale·q·k + mask − lse), zero on padding.
                        var s = packedScores(scaledQuery, kt + j, padded, layout.depthRows)
                        if let mask {
                            if j + 8 <= keys {
                                s = s + load(mask + j)
                            } else {
                                for lane in 0..<layout.tailLanes { s[lane] += mask[j + lane] }
                            }
                        }
                        var e = VectorMath.exp(s - lseVector)
                        if j + 8 == padded { e = e * layout.tailKeep }
                        // dV_j += P_j dO; dP_j = dO · V_j.
                        var dp = V()
                        for c in 0..<valueDepth {
                            let column = vt + c * padded + j, gradient = dvt + c * padded + j
                            let o = V(repeating: doi[c])
                            dp = dp.addingProduct(o, load(column))
                            store(load(gradient).addingProduct(e, o), gradient)
                        }
                        if needScores {
                            // dS = P ∘ (dP − rowsum(dO ∘ O)) · scale; dK_j += dS_j q; dQ += Σ_j dS_j k_j.
                            let gradS = e * (dp - d) * scaleVector
                            for c in 0..<depth {
                                let gradient = dkt + c * padded + j
                                store(load(gradient).addingProduct(gradS, V(repeating: qi[c])), gradient)
                            }
                            if depth > channelGroup { store(gradS, ds + j) }
                            g0 = g0.addingProduct(gradS, load(kt + j))
                            g1 = g1.addingProduct(gradS, load(kt + padded + j))
                            g2 = g2.addingProduct(gradS, load(kt + 2 * padded + j))
                            g3 = g3.addingProduct(gradS, load(kt + 3 * padded + j))
                        }
                        j += 8
                    }
                    guard let dq = grads.dq else { continue }
                    let dqi = dq + index * depth
                    storeChannels(g0, g1, g2, g3, 1, dqi, count: Swift.min(channelGroup, depth))
                    var c = channelGroup
                    while c < depth {
                        (g0, g1, g2, g3) = (V(), V(), V(), V())
                        let base = kt + c * padded
                        j = 0
                        while j < padded {
                            let gradS = load(ds + j)
                            g0 = g0.addingProduct(gradS, load(base + j))
                            g1 = g1.addingProduct(gradS, load(base + padded + j))
                            g2 = g2.addingProduct(gradS, load(base + 2 * padded + j))
                            g3 = g3.addingProduct(gradS, load(base + 3 * padded + j))
                            j += 8
                        }
                        storeChannels(g0, g1, g2, g3, 1, dqi + c, count: Swift.min(channelGroup, depth - c))
                        c += channelGroup
                    }
                }
                if let dk = grads.dk { unpackTransposed(dkt, padded, keys, depth, into: dk + b * keys * depth) }
                if let dv = grads.dv { unpackTransposed(dvt, padded, keys, valueDepth, into: dv + b * keys * valueDepth) }
            }
        }
    }

    /// The inverse of `packTransposed`: rows[j][c] = packed[c][j] for j < count.
    @inline(__always)
    static func unpackTransposed(_ packed: UnsafePointer<Float>, _ padded: Int, _ count: Int, _ width: Int,
                                 into rows: UnsafeMutablePointer<Float>) {
        for j in 0..<count {
            for c in 0..<width { rows[j * width + c] = packed[c * padded + j] }
        }
    }
}
