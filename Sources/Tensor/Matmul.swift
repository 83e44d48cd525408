/// Matrix products on OpenBLAS sgemm. Transposed operands are passed to sgemm as flags, never copied.
extension Tensor {
    /// Matrix product over the last two axes, batched over leading axes that broadcast
    /// (`[..., m, k] · [..., k, n]`). With `transposeA`/`transposeB` the operand's last two axes are
    /// read transposed.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        try Tensor.matmul(self, other, transposeA: transposeA, transposeB: transposeB)
    }

    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.shapeMismatch(op: "matmul (needs rank >= 2)", lhs: a.shape, rhs: b.shape)
        }
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        guard k == k2 else { throw TensorError.shapeMismatch(op: "matmul", lhs: a.shape, rhs: b.shape) }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let batchPlan = try BroadcastPlan(batchA, batchB, op: "matmul (batch axes)")
        let batchShape = batchPlan.outputShape
        let batches = batchShape.reduce(1, *)
        let result = Tensor(uninitialized: batchShape + [m, n])
        let strideA = ar * ac, strideB = br * bc
        let fullA = batchA.reduce(1, *), fullB = batchB.reduce(1, *)
        guard (fullA == 1 || fullA == batches) && (fullB == 1 || fullB == batches) else {
            // Partial broadcasting over batch axes: expand and retry (rare; keeps the fast path simple).
            let ea = try a.broadcast(to: batchShape + [ar, ac]), eb = try b.broadcast(to: batchShape + [br, bc])
            return try matmul(ea, eb, transposeA: transposeA, transposeB: transposeB)
        }
        for batch in 0..<batches {
            // Batch operands either match the output's batch axes or broadcast whole (a shared matrix);
            // other broadcasts go through an explicit copy.
            let ia = fullA == 1 ? 0 : batch, ib = fullB == 1 ? 0 : batch
            BLAS.sgemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                       a: a.data + ia * strideA, lda: ac, b: b.data + ib * strideB, ldb: bc,
                       c: result.data + batch * m * n, ldc: n)
        }
        return record(result, op: "matmul", inputs: [a, b]) { g in
            // C = op(A) op(B).  dA: op(A)=A → g·op(B)ᵀ;  op(A)=Aᵀ → op(B)·gᵀ.  dB likewise.
            var ga: Tensor?, gb: Tensor?
            if a.needsGrad {
                let full = transposeA
                    ? try matmul(b, g, transposeA: transposeB, transposeB: true)
                    : try matmul(g, b, transposeA: false, transposeB: !transposeB)
                ga = try full.sumToShape(a.shape)
            }
            if b.needsGrad {
                let full = transposeB
                    ? try matmul(g, a, transposeA: true, transposeB: transposeA)
                    : try matmul(a, g, transposeA: !transposeA, transposeB: false)
                gb = try full.sumToShape(b.shape)
            }
            return [ga, gb]
        }
    }

    /// `x · Wᵀ + b` as torch.nn.functional.linear: x `[..., in]`, weight `[out, in]`, bias `[out]`.
    /// Leading axes are flattened into one GEMM.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard weight.rank == 2, let inFeatures = x.shape.last, inFeatures == weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "linear", lhs: x.shape, rhs: weight.shape)
        }
        let outFeatures = weight.shape[0]
        if let bias, bias.shape != [outFeatures] {
            throw TensorError.shapeMismatch(op: "linear (bias)", lhs: weight.shape, rhs: bias.shape)
        }
        let rows = x.count / Swift.max(inFeatures, 1)
        let outShape = Array(x.shape.dropLast()) + [outFeatures]
        let result = Tensor(uninitialized: outShape)
        if let bias {
            // Seed C with the bias rows, then accumulate the product (beta = 1): no extra pass.
            fillRows(result.data, rows: rows, with: bias.data, width: outFeatures)
        }
        BLAS.sgemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                   a: x.data, lda: inFeatures, b: weight.data, ldb: inFeatures,
                   beta: bias == nil ? 0 : 1, c: result.data, ldc: outFeatures)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, op: "linear", inputs: inputs) { g in
            var gx: Tensor?, gw: Tensor?, gb: Tensor?
            if x.needsGrad {
                let dx = Tensor(uninitialized: x.shape)
                BLAS.sgemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                           a: g.data, lda: outFeatures, b: weight.data, ldb: inFeatures, c: dx.data, ldc: inFeatures)
                gx = dx
            }
            if weight.needsGrad {
                let dw = Tensor(uninitialized: weight.shape)
                BLAS.sgemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                           a: g.data, lda: outFeatures, b: x.data, ldb: inFeatures, c: dw.data, ldc: inFeatures)
                gw = dw
            }
            if let bias, bias.needsGrad {
                gb = try g.reshaped([rows, outFeatures]).sumToShape([outFeatures])
            }
            return [gx, gw, gb]
        }
    }
}

extension Tensor {
    /// Every one of `rows` rows of `width` floats at `target` set to `values` (a GEMM's C seeded
    /// with its bias before beta = 1).
    static func fillRows(_ target: UnsafeMutablePointer<Float>, rows: Int, with values: UnsafePointer<Float>, width: Int) {
        Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(1, width))) { range in
            for row in range { (target + row * width).update(from: values, count: width) }
        }
    }
}
