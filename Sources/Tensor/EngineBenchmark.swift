import Foundation

/// Throughput of the engine's hot paths at the compact U-Net's shapes, each set against a
/// baseline measured in the same run (raw sgemm for GEMM-shaped work, a plain memory copy for
/// bandwidth-bound work), so figures from a shared, noisy machine compare as ratios.
public struct EngineBenchmark {
    public struct Result: Codable, Sendable {
        public var name: String
        public var milliseconds: Double
        /// GFLOP/s for compute-bound work, GB/s for bandwidth-bound work.
        public var throughput: Double
        public var unit: String
        /// Throughput over the baseline (raw sgemm GFLOP/s or copy GB/s) measured in the same run.
        public var fractionOfBaseline: Double?
        public var baseline: String?
        public var bar: Double?
    }

    public var repeats: Int
    /// Batch 2 × 8 frames = 16 images of 16×16 latents, as in the benchmark U-Net.
    public var images = 16
    public var side = 16

    public init(repeats: Int = 5) { self.repeats = repeats }

    /// Median wall time of `body` in milliseconds, after one warm-up run.
    public func medianMilliseconds(_ body: () throws -> Void) rethrows -> Double {
        try EngineBenchmark.medianMilliseconds(repeats: repeats, body)
    }

    /// Median wall time of `repeats` runs of `body` in milliseconds, after one warm-up run.
    public static func medianMilliseconds(repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        for _ in 0..<max(1, repeats) { times.append(try milliseconds(body)) }
        times.sort()
        return times[times.count / 2]
    }

    /// Wall time of one run of `body`, in milliseconds.
    static func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    /// Times `body` and `baseline` alternately for `repeats` rounds, after one warm-up run of each:
    /// the median of `body`'s times and the median over rounds of baseline time / body time. On a
    /// shared machine a slow patch slows both halves of a round, so the ratio stays put where two
    /// separately taken medians would not. The order flips every round, so neither side always
    /// runs on caches the other just filled.
    public static func pairedMilliseconds(repeats: Int, baseline: () throws -> Void,
                                          _ body: () throws -> Void) rethrows -> (ms: Double, ratio: Double) {
        try baseline()
        try body()
        var times: [Double] = [], ratios: [Double] = []
        for round in 0..<max(1, repeats) {
            let reference: Double, time: Double
            if round % 2 == 0 {
                reference = try milliseconds(baseline)
                time = try milliseconds(body)
            } else {
                time = try milliseconds(body)
                reference = try milliseconds(baseline)
            }
            times.append(time)
            ratios.append(reference / time)
        }
        times.sort()
        ratios.sort()
        return (times[times.count / 2], ratios[ratios.count / 2])
    }

    /// What a case is measured against: the work it stands for (FLOPs or bytes) and a run of it.
    public struct Baseline {
        public var name: String
        public var work: Double
        public var run: () -> Void
    }

    /// Raw sgemm C[m×n] = A[m×k] · B[k×n] as a baseline (work in FLOPs).
    public static func sgemm(m: Int, n: Int, k: Int, name: String) -> Baseline {
        let a = Tensor(repeating: 0.5, shape: [m, k]), b = Tensor(repeating: 0.25, shape: [k, n])
        let c = Tensor(uninitialized: [m, n])
        return Baseline(name: name, work: 2.0 * Double(m * n * k)) {
            BLAS.sgemm(transA: false, transB: false, m: m, n: n, k: k, a: a.data, lda: k, b: b.data, ldb: n, c: c.data, ldc: n)
        }
    }

    /// One memcpy of `count` floats as a baseline (work in bytes read + written).
    public static func copy(count: Int) -> Baseline {
        let a = Tensor(repeating: 1, shape: [count]), b = Tensor(uninitialized: [count])
        return Baseline(name: "memcpy \(count * 4 / 1_048_576) MiB", work: Double(2 * count * 4)) { memcpy(b.data, a.data, count * 4) }
    }

    /// A baseline's own throughput: work per second in units of 1e9 (GFLOP/s or GB/s).
    public func throughput(_ baseline: Baseline) -> (ms: Double, rate: Double) {
        let ms = medianMilliseconds(baseline.run)
        return (ms, baseline.work / (ms * 1e6))
    }

    /// Checks OpenBLAS sgemm against a plain triple loop (all four transpose combinations, odd sizes).
    /// Returns the largest relative error; the kernels OpenBLAS chose must agree with the reference.
    public static func verifySgemm() -> Float {
        var worst: Float = 0
        let (m, n, k) = (37, 29, 53)
        var generator = UInt64(12345)
        func next() -> Float {
            generator = generator &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: generator >> 11) % 2000) / 1000 - 1
        }
        for transA in [false, true] {
            for transB in [false, true] {
                let a = (0..<(m * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
                var c = [Float](repeating: 0, count: m * n)
                let lda = transA ? m : k, ldb = transB ? k : n
                BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, c: &c, ldc: n)
                for i in 0..<m {
                    for j in 0..<n {
                        var sum: Double = 0
                        for p in 0..<k {
                            let x = transA ? a[p * m + i] : a[i * k + p]
                            let y = transB ? b[j * k + p] : b[p * n + j]
                            sum += Double(x) * Double(y)
                        }
                        worst = max(worst, Float(abs(Double(c[i * n + j]) - sum) / max(1, abs(sum))))
                    }
                }
            }
        }
        return worst
    }
}

extension EngineBenchmark {
    public struct Report: Codable, Sendable {
        /// The CPU (`BLAS.cpuModel`).
        public var cpuModel: String
        public var openblasCore: String
        /// OPENBLAS_THREAD_TIMEOUT as the library read it (nil: unset, its default).
        public var openblasThreadTimeout: Int?
        public var threads: Int
        public var sgemmMaxRelativeError: Float
        public var sgemmReferenceGFLOPs: Double
        public var copyGBs: Double
        public var results: [Result]
    }

    /// Runs every case. Each GEMM-shaped case is timed in alternation with the raw sgemm of the
    /// GEMM it performs (a 3×3 convolution at C channels over N pixels is C × 9C × N; attention,
    /// many small GEMMs, against the largest one, 128 × 1152 × 4096); each bandwidth-bound case
    /// with a 2 MiB memcpy. Fractions are per unit of work: case throughput / baseline throughput.
    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        let elements = images * 128 * side * side, pixels = images * side * side
        progress("sgemm")
        var results: [Result] = []
        let conv128 = Self.sgemm(m: 128, n: pixels, k: 1152, name: "sgemm conv3x3 128ch (128x1152x\(pixels))")
        let conv64 = Self.sgemm(m: 64, n: pixels, k: 576, name: "sgemm conv3x3 64ch (64x576x\(pixels))")
        let conv128Half = Self.sgemm(m: 128, n: pixels / 4, k: 1152, name: "sgemm conv3x3 128ch half size (128x1152x\(pixels / 4))")
        let temporal = Self.sgemm(m: 128, n: pixels, k: 384, name: "sgemm temporal conv (128x384x\(pixels))")
        let linear = Self.sgemm(m: pixels, n: 128, k: 128, name: "sgemm linear \(pixels)x128x128")
        let feedForward = Self.sgemm(m: pixels, n: 1024, k: 128, name: "sgemm feed-forward \(pixels)x1024x128")
        var reference = 0.0
        for baseline in [conv128, conv64, conv128Half, temporal, linear, feedForward] {
            let (ms, gflops) = throughput(baseline)
            if reference == 0 { reference = gflops }
            results.append(Result(name: baseline.name, milliseconds: ms, throughput: gflops, unit: "GFLOP/s"))
        }
        let copy = Self.copy(count: elements)
        let (copyMs, copyGBs) = throughput(copy)
        results.append(Result(name: copy.name, milliseconds: copyMs, throughput: copyGBs, unit: "GB/s"))

        func result(_ name: String, work: Double, unit: String, against baseline: Baseline, bar: Double?,
                    _ body: () throws -> Void) rethrows {
            let (ms, ratio) = try Self.pairedMilliseconds(repeats: repeats, baseline: baseline.run, body)
            results.append(Result(name: name, milliseconds: ms, throughput: work / (ms * 1e6), unit: unit,
                                  fractionOfBaseline: ratio * work / baseline.work, baseline: baseline.name, bar: bar))
        }
        func gemmResult(_ name: String, flops: Double, against baseline: Baseline, bar: Double?, _ body: () throws -> Void) rethrows {
            try result(name, work: flops, unit: "GFLOP/s", against: baseline, bar: bar, body)
        }
        func bandwidthResult(_ name: String, bytes: Double, bar: Double?, _ body: () throws -> Void) rethrows {
            try result(name, work: bytes, unit: "GB/s", against: copy, bar: bar, body)
        }

        progress("linear")
        let tokens = images * side * side
        for (inFeatures, outFeatures, baseline) in [(128, 128, linear), (128, 1024, feedForward)] {
            let x = Tensor(repeating: 0.1, shape: [tokens, inFeatures])
            let w = Tensor(repeating: 0.01, shape: [outFeatures, inFeatures])
            let b = Tensor(repeating: 0, shape: [outFeatures])
            let flops = 2.0 * Double(tokens * inFeatures * outFeatures)
            try Tensor.withoutGrad {
                try gemmResult("linear forward \(tokens)x\(inFeatures)->\(outFeatures)", flops: flops, against: baseline, bar: 0.7) {
                    _ = try Tensor.linear(x, weight: w, bias: b)
                }
            }
            x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
            let seed = Tensor(repeating: 1, shape: [tokens, outFeatures])
            try gemmResult("linear forward+backward \(tokens)x\(inFeatures)->\(outFeatures)", flops: 3 * flops, against: baseline, bar: 0.7) {
                x.grad = nil; w.grad = nil; b.grad = nil
                try Tensor.linear(x, weight: w, bias: b).backward(gradient: seed)
            }
        }

        progress("element-wise")
        let a = Tensor(repeating: 1, shape: [images, 128, side, side])
        let c = Tensor(repeating: 2, shape: [images, 128, side, side])
        try Tensor.withoutGrad {
            try bandwidthResult("add [\(images),128,\(side),\(side)]", bytes: Double(3 * elements * 4), bar: 0.5) {
                _ = try a + c
            }
            bandwidthResult("scale [\(images),128,\(side),\(side)]", bytes: Double(2 * elements * 4), bar: 0.5) {
                _ = a * 0.5
            }
        }
        progress("convolution")
        // 3×3 convolutions of the benchmark U-Net (FLOPs 2·N·O·C·9·H·W per pass; backward = 2 passes).
        for (channels, size, baseline) in [(64, side, conv64), (128, side, conv128), (128, side / 2, conv128Half)] {
            let x = Tensor(repeating: 0.1, shape: [images, channels, size, size])
            let w = Tensor(repeating: 0.01, shape: [channels, channels, 3, 3])
            let b = Tensor(repeating: 0, shape: [channels])
            let flops = 2.0 * Double(images * channels * channels * 9 * size * size)
            let label = "conv2d 3x3 [\(images),\(channels),\(size),\(size)]->\(channels)"
            try Tensor.withoutGrad {
                try gemmResult("\(label) forward", flops: flops, against: baseline, bar: 0.6) {
                    _ = try Tensor.conv2d(x, weight: w, bias: b, stride: 1, padding: 1)
                }
                // The forward pass above is Winograd F(2x2, 3x3) or F(4x4, 3x3) where it applies (FLOPs counted as
                // the direct convolution's, so it can beat raw sgemm); im2col + sgemm beside it.
                let geometry = try Tensor.convGeometry(x, weight: w, bias: b, stride: 1, padding: 1)
                if Winograd.applies(to: geometry) {
                    gemmResult("\(label) forward, im2col", flops: flops, against: baseline, bar: nil) {
                        _ = Tensor.conv2d(x, weight: w, bias: b, geometry: geometry, strategy: ConvStrategy(for: geometry), winograd: false)
                    }
                }
            }
            x.requiresGrad = true; w.requiresGrad = true; b.requiresGrad = true
            let seed = Tensor(repeating: 0.01, shape: x.shape)
            // Forward and input gradient by Winograd where it applies, weight gradient by im2col;
            // FLOPs counted as three direct convolutions'.
            try gemmResult("\(label) forward+backward", flops: 3 * flops, against: baseline, bar: 0.6) {
                x.grad = nil; w.grad = nil; b.grad = nil
                try Tensor.conv2d(x, weight: w, bias: b, stride: 1, padding: 1).backward(gradient: seed)
            }
        }
        do {
            // TemporalConvLayer: kernel 3 over 8 frames, batch 2.
            let x = Tensor(repeating: 0.1, shape: [images / 8, 128, 8, side, side])
            let w = Tensor(repeating: 0.01, shape: [128, 128, 3, 1, 1])
            let flops = 2.0 * Double(images * 128 * 128 * 3 * side * side)
            try Tensor.withoutGrad {
                try gemmResult("temporal conv k3 [\(images / 8),128,8,\(side),\(side)] forward", flops: flops, against: temporal, bar: nil) {
                    _ = try Tensor.conv3dTemporal(x, weight: w, bias: nil, padding: 1)
                }
            }
        }

        progress("norms and activations")
        let gamma = Tensor(repeating: 1, shape: [128]), beta = Tensor(repeating: 0, shape: [128])
        let activations = try Tensor(shape: [images, 128, side, side], values: (0..<elements).map { Float($0 % 97) / 97 - 0.5 })
        try Tensor.withoutGrad {
            // SiLU spends ~20 vector instructions on each exponential, so it is bound by arithmetic,
            // not memory: reported against the copy, without the memory-bound ops' bar (on the Zen 3
            // here it ran at 0.25-0.48 of copy, PyTorch 2.15's own SiLU at 0.10-0.14 of its copy).
            bandwidthResult("silu [\(images),128,\(side),\(side)]", bytes: Double(2 * elements * 4), bar: nil) {
                _ = activations.silu()
            }
            try bandwidthResult("group norm forward [\(images),128,\(side),\(side)] 32 groups", bytes: Double(2 * elements * 4), bar: 0.5) {
                _ = try Tensor.groupNorm(activations, groups: 32, weight: gamma, bias: beta, epsilon: 1e-5)
            }
            let rows = try activations.reshaped([images * side * side, 128])
            try bandwidthResult("layer norm forward [\(images * side * side),128]", bytes: Double(2 * elements * 4), bar: nil) {
                _ = try Tensor.layerNorm(rows, weight: gamma, bias: beta)
            }
            let scores = try Tensor(shape: [images * 4 * side * side, side * side],
                                    values: (0..<(images * 4 * side * side * side * side)).map { Float($0 % 101) / 50 - 1 })
            try bandwidthResult("softmax rows [\(images * 4 * side * side),\(side * side)]", bytes: Double(2 * scores.count * 4), bar: nil) {
                _ = try scores.softmax()
            }
        }
        let normInput = activations.copy()
        normInput.requiresGrad = true
        let normSeed = Tensor(repeating: 1, shape: activations.shape)
        try bandwidthResult("group norm forward+backward [\(images),128,\(side),\(side)]", bytes: Double(5 * elements * 4), bar: 0.5) {
            normInput.grad = nil
            try Tensor.groupNorm(normInput, groups: 32, weight: gamma, bias: beta, epsilon: 1e-5).backward(gradient: normSeed)
        }

        progress("attention")
        // Spatial self-attention over 256 tokens: 16 images × 4 heads of dimension 32.
        // FLOPs: forward 4·B·L²·D; backward 8·B·L²·D (score recomputation not counted).
        let tokensPerImage = side * side
        for (heads, headDim) in [(4, 32), (32, 4)] {
            let batch = images * heads
            func input(_ seed: Int) throws -> Tensor {
                try Tensor(shape: [batch, tokensPerImage, headDim],
                           values: (0..<(batch * tokensPerImage * headDim)).map { Float(($0 * 31 + seed) % 113) / 113 - 0.5 })
            }
            let q = try input(1), k = try input(2), v = try input(3)
            let flops = 4.0 * Double(batch * tokensPerImage * tokensPerImage * headDim)
            let label = "spatial attention \(batch)x\(tokensPerImage) tokens, head dim \(headDim)"
            try Tensor.withoutGrad {
                try gemmResult("\(label) forward", flops: flops, against: conv128, bar: headDim >= 32 ? 0.4 : nil) {
                    _ = try Tensor.attention(query: q, key: k, value: v)
                }
            }
            for t in [q, k, v] { t.requiresGrad = true }
            let seed = Tensor(repeating: 0.01, shape: [batch, tokensPerImage, headDim])
            try gemmResult("\(label) forward+backward", flops: 3 * flops, against: conv128, bar: headDim >= 32 ? 0.4 : nil) {
                for t in [q, k, v] { t.grad = nil }
                try Tensor.attention(query: q, key: k, value: v).backward(gradient: seed)
            }
        }
        // Temporal attention: one sequence of 8 frames per (image position, head); too small for GEMM.
        let frames = 8, sequences = (images / frames) * 4 * tokensPerImage, temporalDim = 32
        let tq = try Tensor(shape: [sequences, frames, temporalDim], values: (0..<(sequences * frames * temporalDim)).map { Float($0 % 89) / 89 - 0.5 })
        let temporalFlops = 4.0 * Double(sequences * frames * frames * temporalDim)
        try Tensor.withoutGrad {
            try gemmResult("temporal attention \(sequences)x\(frames) frames, head dim \(temporalDim) forward", flops: temporalFlops, against: conv128, bar: nil) {
                _ = try Tensor.attention(query: tq, key: tq, value: tq)
            }
        }

        return Report(cpuModel: BLAS.cpuModel(), openblasCore: BLAS.coreName, openblasThreadTimeout: BLAS.threadTimeout, threads: Parallel.threadCount,
                      sgemmMaxRelativeError: EngineBenchmark.verifySgemm(),
                      sgemmReferenceGFLOPs: reference, copyGBs: copyGBs, results: results)
    }
}
