import Foundation

/// Group normalisation and layer normalisation (torch.nn.functional.group_norm / layer_norm).
///
/// Both normalise runs of elements: for group norm a slab per (sample, group) of `C/groups` channels ×
/// spatial, contiguous (or, across a clip's frames, one such run per frame), for layer norm one row of
/// the last axis. Statistics are two-pass (mean, then the
/// centred sum of squares) with eight-lane Float accumulators folded into Double every few thousand
/// elements, so large slabs keep their precision. The forward pass keeps only the mean and the
/// reciprocal standard deviation per slab or row; the backward pass recomputes x̂ from x on the fly
/// and produces dx, dweight and dbias in two fused passes.
extension Tensor {
    /// torch.nn.functional.group_norm: x `[N, C, *spatial]`, statistics per (sample, group) over
    /// `C/groups` channels × spatial with the biased variance; weight and bias `[C]` scale and shift
    /// each channel (diffusers' `nn.GroupNorm` in ResnetBlock, Transformer and the VAE).
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?,
                                 epsilon: Float = 1e-5) throws -> Tensor {
        try groupNorm(x, frames: 1, groups: groups, weight: weight, bias: bias, epsilon: epsilon, op: "groupNorm")
    }

    /// GroupNorm of `x` `[B·F, C, *spatial]` with statistics per (clip, group) over all `frames`
    /// frames of the clip: what `group_norm` computes over the clip permuted to `[B, C, F, *spatial]`
    /// (diffusers' TransformerTemporalModel and AnimateDiff's motion modules), without the permutes
    /// and in `x`'s layout. The runs of a group in each frame are summed frame by frame; with one
    /// frame this is `groupNorm`, to the byte.
    public static func groupNormAcrossFrames(_ x: Tensor, frames: Int, groups: Int, weight: Tensor?, bias: Tensor?,
                                             epsilon: Float) throws -> Tensor {
        guard frames >= 1, x.rank >= 2, x.shape[0] % frames == 0 else {
            throw TensorError.invalidArgument(op: "groupNormAcrossFrames",
                reason: "input \(x.shape) must be [B·F, C, *spatial] with a multiple of \(frames) frames")
        }
        return try groupNorm(x, frames: frames, groups: groups, weight: weight, bias: bias, epsilon: epsilon,
                             op: "groupNormAcrossFrames")
    }

    private static func groupNorm(_ x: Tensor, frames: Int, groups: Int, weight: Tensor?, bias: Tensor?,
                                  epsilon: Float, op: String) throws -> Tensor {
        guard x.rank >= 2 else {
            throw TensorError.invalidArgument(op: op, reason: "input must be [N, C, *spatial], got \(x.shape)")
        }
        let samples = x.shape[0], channels = x.shape[1]
        guard groups > 0, channels % groups == 0 else {
            throw TensorError.invalidArgument(op: op,
                reason: "\(channels) channels of input \(x.shape) do not divide into \(groups) groups")
        }
        if let weight, weight.shape != [channels] {
            throw TensorError.shapeMismatch(op: "\(op) (weight, expected [\(channels)])", lhs: x.shape, rhs: weight.shape)
        }
        if let bias, bias.shape != [channels] {
            throw TensorError.shapeMismatch(op: "\(op) (bias, expected [\(channels)])", lhs: x.shape, rhs: bias.shape)
        }
        guard epsilon >= 0 else {
            throw TensorError.invalidArgument(op: op, reason: "epsilon must be non-negative, got \(epsilon)")
        }
        let spatial = channels == 0 || samples == 0 ? 0 : x.count / (samples * channels)
        let channelsPerGroup = channels / groups
        let clips = samples / frames
        // A slab is one (clip, group): in each of the clip's frames a run of channelsPerGroup × spatial.
        let run = channelsPerGroup * spatial, slabSize = frames * run
        let slabs = clips * groups
        @inline(__always) func runStart(_ slab: Int, _ frame: Int) -> Int {
            (((slab / groups) * frames + frame) * channels + (slab % groups) * channelsPerGroup) * spatial
        }
        let output = Tensor(uninitialized: x.shape)
        let stats = Tensor(uninitialized: [2, slabs])  // row 0: mean, row 1: rstd
        let src = x.data, dst = output.data, means = stats.data, rstds = stats.data + slabs
        let w = weight?.data, b = bias?.data

        Parallel.forRanges(count: slabs, grain: Swift.max(1, 16_384 / Swift.max(slabSize, 1))) { range in
            for slab in range {
                var total = 0.0
                for frame in 0..<frames { total += runSum(src + runStart(slab, frame), run) }
                let mean = slabSize == 0 ? 0 : Float(total / Double(slabSize))
                var squares = 0.0
                for frame in 0..<frames { squares += runCentredSquares(src + runStart(slab, frame), run, mean: mean) }
                let variance = slabSize == 0 ? 0 : Float(squares / Double(slabSize))
                let rstd = 1 / (variance + epsilon).squareRoot()
                means[slab] = mean
                rstds[slab] = rstd
                let firstChannel = (slab % groups) * channelsPerGroup
                for frame in 0..<frames {
                    let base = runStart(slab, frame)
                    for ci in 0..<channelsPerGroup {
                        let channel = firstChannel + ci
                        // y = (x - mean)·rstd·w + b folded into one multiply-add per element.
                        let a = rstd * (w?[channel] ?? 1)
                        let shift = (b?[channel] ?? 0) - mean * a
                        scaleShift(src + base + ci * spatial, dst + base + ci * spatial, spatial, a, shift)
                    }
                }
            }
        }

        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        return record(output, op: op, inputs: inputs) { g in
            // Re-derive every pointer from tensors the closure holds: the statistics live as long as it.
            let src = x.data, means = stats.data, rstds = stats.data + slabs
            let w = weight?.data
            let sums = Tensor(uninitialized: [2, clips * channels])  // Σ dy and Σ dy·x per (clip, c)
            let sumDy = sums.data, sumDyX = sums.data + clips * channels
            let dx = x.needsGrad ? Tensor(uninitialized: x.shape) : nil
            let gp = g.data, dxp = dx?.data
            let scale = 1 / Float(Swift.max(slabSize, 1))
            Parallel.forRanges(count: slabs, grain: Swift.max(1, 8192 / Swift.max(slabSize, 1))) { range in
                for slab in range {
                    let clip = slab / groups, firstChannel = (slab % groups) * channelsPerGroup
                    let mean = means[slab], rstd = rstds[slab]
                    var m1: Float = 0, m2: Float = 0
                    for ci in 0..<channelsPerGroup {
                        let channel = firstChannel + ci
                        var (sdy, sdyx) = dotSums(gp + runStart(slab, 0) + ci * spatial, src + runStart(slab, 0) + ci * spatial, spatial)
                        for frame in 1..<Swift.max(frames, 1) {
                            let offset = runStart(slab, frame) + ci * spatial
                            let (a, b) = dotSums(gp + offset, src + offset, spatial)
                            sdy += a
                            sdyx += b
                        }
                        sumDy[clip * channels + channel] = sdy
                        sumDyX[clip * channels + channel] = sdyx
                        let wc = w?[channel] ?? 1
                        m1 += wc * sdy
                        m2 += wc * rstd * (sdyx - mean * sdy)
                    }
                    guard let dxp else { continue }
                    m1 *= scale
                    m2 *= scale
                    // dx = rstd·(w·dy − mean(dx̂) − x̂·mean(dx̂·x̂)) = a·dy + bx·x + c, x̂ = (x − mean)·rstd.
                    let bx = -rstd * rstd * m2
                    let c = rstd * (mean * rstd * m2 - m1)
                    for frame in 0..<frames {
                        for ci in 0..<channelsPerGroup {
                            let offset = runStart(slab, frame) + ci * spatial
                            let a = rstd * (w?[firstChannel + ci] ?? 1)
                            combine(gp + offset, src + offset, dxp + offset, spatial, a, bx, c)
                        }
                    }
                }
            }
            var grads: [Tensor?] = [dx]
            if let weight {
                var dw: Tensor?
                if weight.needsGrad {
                    let d = Tensor(zeros: [channels])
                    for clip in 0..<clips {
                        for channel in 0..<channels {
                            let slab = clip * groups + channel / channelsPerGroup
                            let i = clip * channels + channel
                            d.data[channel] += rstds[slab] * (sumDyX[i] - means[slab] * sumDy[i])
                        }
                    }
                    dw = d
                }
                grads.append(dw)
            }
            if let bias {
                var db: Tensor?
                if bias.needsGrad {
                    let d = Tensor(zeros: [channels])
                    for clip in 0..<clips {
                        for channel in 0..<channels { d.data[channel] += sumDy[clip * channels + channel] }
                    }
                    db = d
                }
                grads.append(db)
            }
            return grads
        }
    }

    /// torch.nn.functional.layer_norm over the last axis: weight and bias are `[D]` for x `[..., D]`
    /// (diffusers' `nn.LayerNorm` in BasicTransformerBlock and the CLIP text encoder).
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, epsilon: Float = 1e-5) throws -> Tensor {
        guard x.rank >= 1 else {
            throw TensorError.invalidArgument(op: "layerNorm", reason: "input must have at least one axis, got \(x.shape)")
        }
        let width = x.shape[x.rank - 1]
        if let weight, weight.shape != [width] {
            throw TensorError.shapeMismatch(op: "layerNorm (weight, expected [\(width)])", lhs: x.shape, rhs: weight.shape)
        }
        if let bias, bias.shape != [width] {
            throw TensorError.shapeMismatch(op: "layerNorm (bias, expected [\(width)])", lhs: x.shape, rhs: bias.shape)
        }
        guard epsilon >= 0 else {
            throw TensorError.invalidArgument(op: "layerNorm", reason: "epsilon must be non-negative, got \(epsilon)")
        }
        let rows = width == 0 ? 0 : x.count / width
        let output = Tensor(uninitialized: x.shape)
        let stats = Tensor(uninitialized: [2, rows])
        let src = x.data, dst = output.data, means = stats.data, rstds = stats.data + rows
        let w = weight?.data, b = bias?.data

        Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
            for row in range {
                let p = src + row * width, y = dst + row * width
                let (mean, variance) = moments(p, width)
                let rstd = 1 / (variance + epsilon).squareRoot()
                means[row] = mean
                rstds[row] = rstd
                normaliseRow(p, y, width, mean, rstd, w, b)
            }
        }

        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        return record(output, op: "layerNorm", inputs: inputs) { g in
            let src = x.data, means = stats.data, rstds = stats.data + rows
            let w = weight?.data
            let needWeight = weight?.needsGrad ?? false, needBias = bias?.needsGrad ?? false
            let dx = x.needsGrad ? Tensor(uninitialized: x.shape) : nil
            // A fixed split (independent of the thread count); each chunk sums its rows' dweight and
            // dbias into its own partial row, and the partials are added in chunk order: reproducible.
            let chunks = Swift.max(1, Swift.min(64, rows * width / 16_384, rows))
            let partials = (needWeight || needBias) ? Tensor(zeros: [chunks, 2, width]) : nil
            let gp = g.data, dxp = dx?.data, pp = partials?.data
            Parallel.forEach(chunks: chunks) { chunk in
                let begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks
                let dwPartial = pp.map { $0 + chunk * 2 * width }
                let dbPartial = pp.map { $0 + chunk * 2 * width + width }
                for row in begin..<end {
                    let p = src + row * width, dy = gp + row * width
                    layerNormBackwardRow(p, dy, dxp.map { $0 + row * width }, width, means[row], rstds[row], w,
                                         needWeight ? dwPartial : nil, needBias ? dbPartial : nil)
                }
            }
            var grads: [Tensor?] = [dx]
            if let weight {
                var dw: Tensor?
                if weight.needsGrad, let pp {
                    let d = Tensor(zeros: [width])
                    for chunk in 0..<chunks { addRun(pp + chunk * 2 * width, into: d.data, width) }
                    dw = d
                }
                grads.append(dw)
            }
            if let bias {
                var db: Tensor?
                if bias.needsGrad, let pp {
                    let d = Tensor(zeros: [width])
                    for chunk in 0..<chunks { addRun(pp + chunk * 2 * width + width, into: d.data, width) }
                    db = d
                }
                grads.append(db)
            }
            return grads
        }
    }

    // MARK: Kernels

    /// Mean and biased variance of a run, two-pass: eight-lane Float partial sums over blocks of
    /// 4096 elements, blocks added in Double.
    @inline(__always)
    static func moments(_ p: UnsafePointer<Float>, _ n: Int) -> (mean: Float, variance: Float) {
        guard n > 0 else { return (0, 0) }
        let mean = Float(runSum(p, n) / Double(n))
        return (mean, Float(runCentredSquares(p, n, mean: mean) / Double(n)))
    }

    /// Σ x over a run: four eight-lane Float partial sums (independent adds, so the loop is not bound
    /// by one add's latency) over blocks of 4096 elements, blocks added in Double.
    @inline(__always)
    static func runSum(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
        typealias V = SIMD8<Float>
        let block = 4096
        var total = 0.0
        var start = 0
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var i = start
            while i + 32 <= end {
                a0 += UnsafeRawPointer(p + i).loadUnaligned(as: V.self)
                a1 += UnsafeRawPointer(p + i + 8).loadUnaligned(as: V.self)
                a2 += UnsafeRawPointer(p + i + 16).loadUnaligned(as: V.self)
                a3 += UnsafeRawPointer(p + i + 24).loadUnaligned(as: V.self)
                i += 32
            }
            while i + 8 <= end { a0 += UnsafeRawPointer(p + i).loadUnaligned(as: V.self); i += 8 }
            var s = ((a0 + a1) + (a2 + a3)).sum()
            while i < end { s += p[i]; i += 1 }
            total += Double(s)
            start = end
        }
        return total
    }

    /// Σ (x − mean)² over a run, blocked as `runSum`.
    @inline(__always)
    static func runCentredSquares(_ p: UnsafePointer<Float>, _ n: Int, mean: Float) -> Double {
        typealias V = SIMD8<Float>
        let block = 4096
        let m = V(repeating: mean)
        var squares = 0.0
        var start = 0
        while start < n {
            let end = Swift.min(n, start + block)
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var i = start
            while i + 32 <= end {
                let d0 = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) - m
                let d1 = UnsafeRawPointer(p + i + 8).loadUnaligned(as: V.self) - m
                let d2 = UnsafeRawPointer(p + i + 16).loadUnaligned(as: V.self) - m
                let d3 = UnsafeRawPointer(p + i + 24).loadUnaligned(as: V.self) - m
                a0 += d0 * d0
                a1 += d1 * d1
                a2 += d2 * d2
                a3 += d3 * d3
                i += 32
            }
            while i + 8 <= end {
                let d = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) - m
                a0 += d * d
                i += 8
            }
            var s = ((a0 + a1) + (a2 + a3)).sum()
            while i < end { let d = p[i] - mean; s += d * d; i += 1 }
            squares += Double(s)
            start = end
        }
        return squares
    }

    /// y = x·a + b over a run.
    @inline(__always)
    static func scaleShift(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float, _ b: Float) {
        typealias V = SIMD8<Float>
        let va = V(repeating: a), vb = V(repeating: b)
        var i = 0
        while i + 8 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: v * va + vb, as: V.self)
            i += 8
        }
        while i < n { y[i] = x[i] * a + b; i += 1 }
    }

    /// (Σ dy, Σ dy·x) over a run.
    @inline(__always)
    static func dotSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        typealias V = SIMD8<Float>
        var s = V(), sx = V()
        var i = 0
        while i + 8 <= n {
            let g = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
            s += g
            sx += g * UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            i += 8
        }
        var a = s.sum(), b = sx.sum()
        while i < n { a += dy[i]; b += dy[i] * x[i]; i += 1 }
        return (a, b)
    }

    /// dx = a·dy + b·x + c over a run.
    @inline(__always)
    static func combine(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>,
                        _ n: Int, _ a: Float, _ b: Float, _ c: Float) {
        typealias V = SIMD8<Float>
        let va = V(repeating: a), vb = V(repeating: b), vc = V(repeating: c)
        var i = 0
        while i + 8 <= n {
            let g = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: g * va + (v * vb + vc), as: V.self)
            i += 8
        }
        while i < n { dx[i] = dy[i] * a + (x[i] * b + c); i += 1 }
    }

    /// y = (x − mean)·rstd·w + b for one row, w and b optional.
    @inline(__always)
    static func normaliseRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int,
                             _ mean: Float, _ rstd: Float, _ w: UnsafeMutablePointer<Float>?, _ b: UnsafeMutablePointer<Float>?) {
        typealias V = SIMD8<Float>
        let vr = V(repeating: rstd), vs = V(repeating: -mean * rstd)
        var i = 0
        while i + 8 <= n {
            var v = UnsafeRawPointer(x + i).loadUnaligned(as: V.self) * vr + vs
            if let w { v *= UnsafeRawPointer(w + i).loadUnaligned(as: V.self) }
            if let b { v += UnsafeRawPointer(b + i).loadUnaligned(as: V.self) }
            UnsafeMutableRawPointer(y + i).storeBytes(of: v, as: V.self)
            i += 8
        }
        while i < n {
            var v = x[i] * rstd - mean * rstd
            if let w { v *= w[i] }
            if let b { v += b[i] }
            y[i] = v
            i += 1
        }
    }

    /// One row of layer norm's backward: dx (when wanted) and the row's contributions to dweight and dbias.
    @inline(__always)
    static func layerNormBackwardRow(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>?,
                                     _ n: Int, _ mean: Float, _ rstd: Float, _ w: UnsafeMutablePointer<Float>?,
                                     _ dw: UnsafeMutablePointer<Float>?, _ db: UnsafeMutablePointer<Float>?) {
        typealias V = SIMD8<Float>
        let vr = V(repeating: rstd), vs = V(repeating: -mean * rstd)
        if let dx {
            // Σ dx̂ and Σ dx̂·x with dx̂ = dy·w.
            var s1 = V(), s2 = V()
            var i = 0
            while i + 8 <= n {
                var g = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
                if let w { g *= UnsafeRawPointer(w + i).loadUnaligned(as: V.self) }
                s1 += g
                s2 += g * UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
                i += 8
            }
            var a = s1.sum(), b = s2.sum()
            while i < n { let g = dy[i] * (w?[i] ?? 1); a += g; b += g * x[i]; i += 1 }
            let inv = 1 / Float(n)
            let m1 = a * inv, m2 = rstd * (b - mean * a) * inv
            // dx = rstd·(dx̂ − m1 − x̂·m2)
            let vm1 = V(repeating: m1), vm2 = V(repeating: m2)
            i = 0
            while i + 8 <= n {
                let gy = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
                var g = gy
                if let w { g *= UnsafeRawPointer(w + i).loadUnaligned(as: V.self) }
                let xhat = UnsafeRawPointer(x + i).loadUnaligned(as: V.self) * vr + vs
                UnsafeMutableRawPointer(dx + i).storeBytes(of: vr * (g - vm1 - xhat * vm2), as: V.self)
                if let dw {
                    var acc = UnsafeRawPointer(dw + i).loadUnaligned(as: V.self)
                    acc += gy * xhat
                    UnsafeMutableRawPointer(dw + i).storeBytes(of: acc, as: V.self)
                }
                if let db {
                    UnsafeMutableRawPointer(db + i).storeBytes(of: UnsafeRawPointer(db + i).loadUnaligned(as: V.self) + gy, as: V.self)
                }
                i += 8
            }
            while i < n {
                let xhat = x[i] * rstd - mean * rstd
                dx[i] = rstd * (dy[i] * (w?[i] ?? 1) - m1 - xhat * m2)
                dw?[i] += dy[i] * xhat
                db?[i] += dy[i]
                i += 1
            }
        } else {
            var i = 0
            while i + 8 <= n {
                let gy = UnsafeRawPointer(dy + i).loadUnaligned(as: V.self)
                if let dw {
                    let xhat = UnsafeRawPointer(x + i).loadUnaligned(as: V.self) * vr + vs
                    var acc = UnsafeRawPointer(dw + i).loadUnaligned(as: V.self)
                    acc += gy * xhat
                    UnsafeMutableRawPointer(dw + i).storeBytes(of: acc, as: V.self)
                }
                if let db {
                    UnsafeMutableRawPointer(db + i).storeBytes(of: UnsafeRawPointer(db + i).loadUnaligned(as: V.self) + gy, as: V.self)
                }
                i += 8
            }
            while i < n {
                dw?[i] += dy[i] * (x[i] * rstd - mean * rstd)
                db?[i] += dy[i]
                i += 1
            }
        }
    }
}
