/// The forward pass of a 3×3 convolution with stride 1 and padding 1 by Winograd's minimal
/// filtering F(m×m, 3×3), m = 2 or 4 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
/// Networks", 2016).
///
/// Each m×m block of outputs is computed from the (m + 2)×(m + 2) input tile around it as
/// `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`: (m + 2)² multiplications per channel pair instead of 9m².
/// Summed over input channels, the element-wise products become (m + 2)² independent GEMMs,
/// `M[ξ] [O × T] = U[ξ] [O × C] · V[ξ] [C × T]` for T tiles, so F(2×2, 3×3) does 2.25× fewer
/// multiply-adds than im2col + one GEMM and F(4×4, 3×3) 4× fewer, at the price of transforming input
/// tiles and outputs (a few adds per value, memory-bound).
///
/// The forward pass uses it, and so does the input gradient of the backward pass, which for a
/// 3×3 'same' convolution is itself one (the output gradient convolved with the kernels turned by
/// 180°, input and output channels swapped). The weight gradient stays im2col's. F(2×2, 3×3)'s
/// transforms use only ±1 and ½, so its results differ from im2col's by float rounding alone;
/// F(4×4, 3×3)'s use 2, 4, 5, 8 and sixths, which magnify rounding a few times more (ConvTests
/// checks both against the direct sum, and the gradients by finite differences).
///
/// Work is split as the side-by-side im2col path splits it: groups of whole images, dealt into
/// chunks fixed by the shape (never by the thread count), each worker transforming its group's
/// tiles, running the GEMMs single-threaded and transforming the outputs with buffers that stay
/// in its core's cache. The result is the same at every thread count.
struct Winograd {
    let g: ConvGeometry
    /// m: the side of the output blocks, 2 or 4.
    let tile: Int
    /// Tiles per image: ⌈H / m⌉ × ⌈W / m⌉ (sizes that m does not divide pad the last tile row and
    /// column with zeros).
    let tilesHigh: Int, tilesWide: Int
    /// Images per group (one transform → (m + 2)² GEMMs → transform pass).
    let group: Int

    var tilesPerImage: Int { tilesHigh * tilesWide }
    /// (m + 2)²: the GEMMs, and the transformed values per tile.
    var points: Int { (tile + 2) * (tile + 2) }

    /// Winograd applies to 3×3 kernels with stride 1 and padding 1 ("same" convolutions: every
    /// ResnetBlock2D and Upsample2D convolution, conv_in and conv_out). It is chosen where its
    /// GEMMs stay wide enough to pay for the transforms: at least 16 input and output channels
    /// (conv_in's 4 channels and conv_out's 4 outputs go through im2col) and at least 4×4 outputs.
    /// Measured in one process, 2 threads, alternating 30 rounds (2-core AMD EPYC Zen 4, OpenBLAS
    /// SkylakeX): F(2×2, 3×3)'s time over im2col's 0.64 for 16 images of 128 channels at 4×4, 0.65
    /// at 8×8, 0.57 for 8 images of 64 channels at 32×32, 0.68–0.69 at 64×64 (the autoencoder's sizes).
    static func applies(to g: ConvGeometry) -> Bool {
        guard g.isSame3x3, g.channels >= 16, g.outChannels >= 16, g.outHeight >= 4, g.outWidth >= 4 else { return false }
        // A worker holds one image's transformed tiles and products at least: 16 · (C + O) floats
        // per F(2×2, 3×3) tile (F(4×4, 3×3) needs 36 per four times the area, less). Larger images
        // (beyond 16 MB, e.g. 128 channels at 128×128) go through im2col, whose column buffers are capped.
        let tiles = ((g.outHeight + 1) / 2) * ((g.outWidth + 1) / 2)
        return 16 * (g.channels + g.outChannels) * tiles <= maxBufferFloats
    }

    /// The output block side for `g`: 4 where the image holds at least `largeTileMinimumSide`
    /// outputs each way, 2 otherwise.
    static func preferredTile(for g: ConvGeometry) -> Int {
        g.outHeight >= largeTileMinimumSide && g.outWidth >= largeTileMinimumSide ? 4 : 2
    }

    /// F(4×4, 3×3) from 32×32 outputs up: the autoencoder's frames. Its GEMMs take 0.45–0.6 of
    /// F(2×2, 3×3)'s time, but its transforms run over an image's tiles, which small images have few
    /// of. One thread, 8 images, F(4×4)/F(2×2) time (2-core AMD EPYC Zen 4, OpenBLAS SkylakeX): 64→64
    /// channels 0.68 at 64×64 and 0.85 at 32×32; 0.92–0.95 at 16×16 (no change at the U-Net's level,
    /// 1.007 and 0.992 of guided sampling steps, animatediff and unet3d, alternating 10 rounds);
    /// 1.08–1.36 at 8×8 and 1.54 at 4×4. The autoencoder with it, alternating 30 rounds: encode of 8
    /// 64×64 frames 0.85, decode 0.79. It rounds a few times more (max error 4e-5 against 4e-6 on
    /// outputs up to 6 for 64 channels).
    static let largeTileMinimumSide = 32

    /// The most floats a worker's transformed tiles and products may take (16 MB).
    static let maxBufferFloats = 1 << 22

    /// `tile` nil: `preferredTile(for:)`.
    init(_ g: ConvGeometry, tile: Int? = nil) {
        self.g = g
        let m = tile ?? Self.preferredTile(for: g)
        precondition(m == 2 || m == 4, "Winograd: output tiles of 2 or 4, not \(m)")
        self.tile = m
        tilesHigh = (g.outHeight + m - 1) / m
        tilesWide = (g.outWidth + m - 1) / m
        let tiles = tilesHigh * tilesWide
        let points = (m + 2) * (m + 2)
        // About 256 tiles per GEMM (wide enough for OpenBLAS's kernels; with F(2×2, 3×3) small enough
        // that a group's transformed tiles stay near one core's L2, with F(4×4, 3×3)'s 36 planes
        // 2.25 times that), at least two groups when the batch allows, and within `maxBufferFloats`.
        group = Swift.max(1, Swift.min((Self.tilesPerGemm + tiles - 1) / tiles, g.batch / 2,
                                       Self.maxBufferFloats / Swift.max(1, points * (g.channels + g.outChannels) * tiles)))
    }

    /// The tiles one group's GEMMs aim for.
    static let tilesPerGemm = 256

    /// The convolution whose forward pass is the input gradient of `g`'s: the output gradient
    /// `[N, O, H, W]` in, `[N, C, H, W]` out, with `turnedKernels`. By default only where both `g`
    /// and that convolution take Winograd; `forced` true or false decides instead (tests).
    static func inputGradientGeometry(of g: ConvGeometry, forced: Bool? = nil) -> ConvGeometry? {
        guard g.isSame3x3, forced != false else { return nil }
        let turned = ConvGeometry(batch: g.batch, channels: g.outChannels, height: g.outHeight, width: g.outWidth,
                                  outChannels: g.channels, kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1,
                                  outHeight: g.height, outWidth: g.width)
        return forced == true || (applies(to: g) && applies(to: turned)) ? turned : nil
    }

    /// `[C, O, 3, 3]` kernels w'[c][o][i][j] = w[o][c][2 − i][2 − j]: the transposed convolution of a
    /// 3×3 'same' convolution as a convolution.
    static func turnedKernels(_ weight: UnsafePointer<Float>, outChannels: Int, channels: Int) -> Storage {
        let turned = Storage(count: channels * outChannels * 9, zeroed: false)
        for c in 0..<channels {
            for o in 0..<outChannels {
                let source = weight + (o * channels + c) * 9, target = turned.pointer + (c * outChannels + o) * 9
                for tap in 0..<9 { target[tap] = source[8 - tap] }
            }
        }
        return turned
    }

    /// `U[ξ][o][c]`, ξ = (m + 2)i + j: the (m + 2)×(m + 2) transform `G g Gᵀ` of each 3×3 kernel,
    /// laid out as (m + 2)² `[O, C]` matrices (the GEMMs' left factors).
    static func transformWeights(_ weight: UnsafePointer<Float>, outChannels: Int, channels: Int, tile: Int,
                                 into u: UnsafeMutablePointer<Float>) {
        let plane = outChannels * channels
        Parallel.forRanges(count: outChannels, grain: Swift.max(1, 4_096 / Swift.max(1, channels))) { rows in
            // One output channel's kernels with the tap outermost, so that every loop below runs
            // unit-stride over the input channels.
            let taps = Storage(count: 9 * channels, zeroed: false)
            let k = taps.pointer
            for o in rows {
                let source = weight + o * channels * 9
                for c in 0..<channels {
                    for tap in 0..<9 { k[tap * channels + c] = source[c * 9 + tap] }
                }
                let target = u + o * channels
                // Eight input channels at a time, then the rest one by one: the same arithmetic.
                @inline(__always) func transform<V: WinogradLanes>(_ c: Int, load: (UnsafePointer<Float>) -> V,
                                                                   store: (V, UnsafeMutablePointer<Float>) -> Void) {
                    if tile == 2 {
                        transformKernels(k + c, stride: channels, into: target + c, plane: plane, load: load, store: store)
                    } else {
                        transformKernelsF4(k + c, stride: channels, into: target + c, plane: plane, load: load, store: store)
                    }
                }
                var c = 0
                while c + 8 <= channels {
                    transform(c, load: { Tensor.load($0) }, store: { Tensor.store($0, $1) })
                    c += 8
                }
                while c < channels {
                    transform(c, load: { $0.pointee }, store: { $1.pointee = $0 })
                    c += 1
                }
            }
        }
    }

    /// F(2×2, 3×3)'s `G g Gᵀ` of the kernels whose nine taps are `stride` apart at `k`, written to
    /// the 16 planes of `u` (`plane` apart): one kernel (V = Float) or eight side by side (V = SIMD8).
    @inline(__always)
    private static func transformKernels<V: WinogradLanes>(_ k: UnsafePointer<Float>, stride: Int,
                                                  into u: UnsafeMutablePointer<Float>, plane: Int,
                                                  load: (UnsafePointer<Float>) -> V,
                                                  store: (V, UnsafeMutablePointer<Float>) -> Void) {
        let half = V(repeating: 0.5)
        let (a0, a1, a2) = (load(k), load(k + stride), load(k + 2 * stride))
        let (b0, b1, b2) = (load(k + 3 * stride), load(k + 4 * stride), load(k + 5 * stride))
        let (d0, d1, d2) = (load(k + 6 * stride), load(k + 7 * stride), load(k + 8 * stride))
        // Rows of G g per kernel column q: (k0q, ½(k0q + k1q + k2q), ½(k0q − k1q + k2q), k2q);
        // then row i of (G g) Gᵀ from row i of G g.
        @inline(__always) func write(_ i: Int, _ x0: V, _ x1: V, _ x2: V) {
            let t = u + 4 * i * plane
            store(x0, t)
            store(half * (x0 + x1 + x2), t + plane)
            store(half * (x0 - x1 + x2), t + 2 * plane)
            store(x2, t + 3 * plane)
        }
        write(0, a0, a1, a2)
        write(1, half * (a0 + b0 + d0), half * (a1 + b1 + d1), half * (a2 + b2 + d2))
        write(2, half * (a0 - b0 + d0), half * (a1 - b1 + d1), half * (a2 - b2 + d2))
        write(3, d0, d1, d2)
    }

    /// Scratch floats a worker needs for `transformInput` and `transformOutput`.
    var scratchCount: Int {
        let tiles = tilesPerImage
        if tile == 4 { return Swift.max(24 * (tilesHigh + 1) * tilesWide + 4 * (tilesWide + 1), 28 * tiles) }
        return Swift.max(8 * (tilesHigh + 1) * tilesWide + 2 * (tilesWide + 1), 10 * tiles)
    }

    /// Writes `V[ξ][c][t]` (the transforms `Bᵀ d B` of every tile of `images` images at `input`),
    /// t = (image · tilesHigh + ty) · tilesWide + tx, rows of `ld` floats.
    func transformInput(_ input: UnsafePointer<Float>, images: Int, into v: UnsafeMutablePointer<Float>, ld: Int,
                        scratch: UnsafeMutablePointer<Float>, channelRange: Range<Int>? = nil) {
        if tile == 4 {
            transformInputF4(input, images: images, into: v, ld: ld, scratch: scratch, channelRange: channelRange)
        } else {
            transformInputF2(input, images: images, into: v, ld: ld, scratch: scratch, channelRange: channelRange)
        }
    }

    /// Writes `images` NCHW output images from `M[ξ][o][t]` (rows of `ld` floats): `Aᵀ m A` per
    /// tile, plus the bias, dropping the padding of the last tile row and column.
    func transformOutput(_ m: UnsafePointer<Float>, ld: Int, images: Int, bias: UnsafePointer<Float>?,
                         into output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                         channelRange: Range<Int>? = nil) {
        if tile == 4 {
            transformOutputF4(m, ld: ld, images: images, bias: bias, into: output, scratch: scratch, channelRange: channelRange)
        } else {
            transformOutputF2(m, ld: ld, images: images, bias: bias, into: output, scratch: scratch, channelRange: channelRange)
        }
    }

    /// F(2×2, 3×3)'s `transformInput`.
    ///
    /// Laid out so that every loop runs unit-stride over many tiles (and vectorises): each padded
    /// input row is split into its even and odd columns, so a tile's four columns are
    /// `even[tx], odd[tx], even[tx + 1], odd[tx + 1]`; the rows' horizontal transforms go to an
    /// even-row and an odd-row block, so a tile row's four rows are `even[ty], odd[ty],
    /// even[ty + 1], odd[ty + 1]`, and each of the 16 outputs is one pass over all of an image's
    /// tiles at once.
    private func transformInputF2(_ input: UnsafePointer<Float>, images: Int, into v: UnsafeMutablePointer<Float>, ld: Int,
                                  scratch: UnsafeMutablePointer<Float>, channelRange: Range<Int>?) {
        let (channels, height, width) = (g.channels, g.height, g.width)
        let (tw, th) = (tilesWide, tilesHigh)
        let tiles = th * tw
        // hEven[j] / hOdd[j]: [th + 1, tw] blocks, the horizontal transform j of padded rows 2k / 2k + 1
        // (input rows 2k − 1 / 2k).
        let block = (th + 1) * tw
        let hEven = scratch, hOdd = scratch + 4 * block
        let evenColumns = scratch + 8 * block, oddColumns = evenColumns + tw + 1
        let planeStride = channels * ld
        // Input columns landing in even[1...] and odd[0...]; those past the image (even[tw] for
        // odd widths, odd[tw] always) are zero.
        let evenCount = width / 2, oddCount = (width + 1) / 2
        for n in 0..<images {
            for c in channelRange ?? 0..<channels {
                let source = input + (n * channels + c) * height * width
                for pr in 0..<(2 * th + 2) {
                    let y = pr - 1
                    let h = (pr % 2 == 0 ? hEven : hOdd) + (pr / 2) * tw
                    guard y >= 0, y < height else {
                        for j in 0..<4 { (h + j * block).update(repeating: 0, count: tw) }
                        continue
                    }
                    // Padded column q holds input column q − 1: even[k] = x[2k − 1], odd[k] = x[2k].
                    let row = source + y * width
                    evenColumns[0] = 0
                    for k in 0..<evenCount { evenColumns[k + 1] = row[2 * k + 1] }
                    if evenCount < tw { evenColumns[tw] = 0 }
                    for k in 0..<oddCount { oddColumns[k] = row[2 * k] }
                    oddColumns[tw] = 0
                    let (h0, h1, h2, h3) = (h, h + block, h + 2 * block, h + 3 * block)
                    for tx in 0..<tw {
                        let (d0, d1, d2, d3) = (evenColumns[tx], oddColumns[tx], evenColumns[tx + 1], oddColumns[tx + 1])
                        h0[tx] = d0 - d2
                        h1[tx] = d1 + d2
                        h2[tx] = d2 - d1
                        h3[tx] = d1 - d3
                    }
                }
                let target = v + c * ld + n * tiles
                for j in 0..<4 {
                    // Rows a, b, c, d of every tile: even[ty], odd[ty], even[ty + 1], odd[ty + 1].
                    let a = UnsafePointer(hEven + j * block), b = UnsafePointer(hOdd + j * block)
                    let cc = a + tw, d = b + tw
                    VectorMath.apply(a, cc, target + j * planeStride, tiles) { $0 - $1 }
                    VectorMath.apply(b, cc, target + (4 + j) * planeStride, tiles) { $0 + $1 }
                    VectorMath.apply(cc, b, target + (8 + j) * planeStride, tiles) { $0 - $1 }
                    VectorMath.apply(b, d, target + (12 + j) * planeStride, tiles) { $0 - $1 }
                }
            }
        }
    }

    /// F(2×2, 3×3)'s `transformOutput`. The vertical and horizontal halves each run over all of an
    /// image's tiles at once; only the final interleaving of even and odd output columns is per row.
    private func transformOutputF2(_ m: UnsafePointer<Float>, ld: Int, images: Int, bias: UnsafePointer<Float>?,
                                   into output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
                                   channelRange: Range<Int>?) {
        let (outChannels, outHeight, outWidth) = (g.outChannels, g.outHeight, g.outWidth)
        let (tw, th) = (tilesWide, tilesHigh)
        let tiles = th * tw
        let planeStride = outChannels * ld
        // s[i][l]: Σ_k Aᵀ[i][k] m[k][l] over every tile; then y[i][even/odd].
        let s = scratch, yEven = scratch + 8 * tiles, yOdd = yEven + tiles
        for n in 0..<images {
            for o in channelRange ?? 0..<outChannels {
                let b = bias?[o] ?? 0
                let source = m + o * ld + n * tiles
                let target = output + (n * outChannels + o) * outHeight * outWidth
                for l in 0..<4 {
                    let m0 = source + l * planeStride, m1 = source + (4 + l) * planeStride
                    let m2 = source + (8 + l) * planeStride, m3 = source + (12 + l) * planeStride
                    let s0 = s + l * tiles, s1 = s + (4 + l) * tiles
                    for t in 0..<tiles { s0[t] = m0[t] + m1[t] + m2[t] }
                    for t in 0..<tiles { s1[t] = m1[t] - m2[t] - m3[t] }
                }
                for i in 0..<2 {
                    let si = s + i * 4 * tiles
                    let (s0, s1, s2, s3) = (si, si + tiles, si + 2 * tiles, si + 3 * tiles)
                    for t in 0..<tiles { yEven[t] = s0[t] + s1[t] + s2[t] + b }
                    for t in 0..<tiles { yOdd[t] = s1[t] - s2[t] - s3[t] + b }
                    for ty in 0..<th {
                        let y = 2 * ty + i
                        guard y < outHeight else { break }
                        let out = target + y * outWidth, even = yEven + ty * tw, odd = yOdd + ty * tw
                        let pairs = outWidth / 2
                        for tx in 0..<pairs {
                            out[2 * tx] = even[tx]
                            out[2 * tx + 1] = odd[tx]
                        }
                        if outWidth % 2 == 1 { out[2 * pairs] = even[pairs] }
                    }
                }
            }
        }
    }

    /// `M[ξ] = U[ξ] · V[ξ]` over `columns` tiles (rows of V and M `ld` floats apart).
    @inline(__always)
    func multiply(_ xi: Int, _ u: UnsafePointer<Float>, _ v: UnsafePointer<Float>, into m: UnsafeMutablePointer<Float>,
                  columns: Int, ld: Int) {
        let (channels, outChannels) = (g.channels, g.outChannels)
        BLAS.sgemm(transA: false, transB: false, m: outChannels, n: columns, k: channels,
                   a: u + xi * outChannels * channels, lda: channels, b: v + xi * channels * ld, ldb: ld,
                   c: m + xi * outChannels * ld, ldc: ld)
    }

    /// The whole forward pass: `output` `[N, O, H, W]` = conv(`x`, `weight`) + `bias`.
    func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                 output: UnsafeMutablePointer<Float>) {
        let (channels, outChannels) = (g.channels, g.outChannels)
        let points = self.points
        let u = Storage(count: points * outChannels * channels, zeroed: false)
        Self.transformWeights(weight, outChannels: outChannels, channels: channels, tile: tile, into: u.pointer)
        let units = (g.batch + group - 1) / group
        let chunks = Swift.min(units, ConvStrategy.maxChunks)
        let ld = group * tilesPerImage
        let scratchCount = self.scratchCount
        if units == 1 {
            // One group (a batch of one, or a few large images): its steps are split instead —
            // the transforms by channel, the GEMMs by ξ — in pieces fixed by the shape.
            let v = Storage(count: points * channels * ld, zeroed: false)
            let m = Storage(count: points * outChannels * ld, zeroed: false)
            let columns = g.batch * tilesPerImage
            let inPieces = Swift.min(ConvStrategy.maxChunks, channels), outPieces = Swift.min(ConvStrategy.maxChunks, outChannels)
            BLAS.withSingleThreadedCalls {
                Parallel.forEach(chunks: inPieces) { piece in
                    let scratch = Storage(count: scratchCount, zeroed: false)
                    transformInput(x, images: g.batch, into: v.pointer, ld: ld, scratch: scratch.pointer,
                                   channelRange: (channels * piece / inPieces)..<(channels * (piece + 1) / inPieces))
                }
                Parallel.forEach(chunks: points) { xi in
                    multiply(xi, u.pointer, v.pointer, into: m.pointer, columns: columns, ld: ld)
                }
                Parallel.forEach(chunks: outPieces) { piece in
                    let scratch = Storage(count: scratchCount, zeroed: false)
                    transformOutput(m.pointer, ld: ld, images: g.batch, bias: bias, into: output, scratch: scratch.pointer,
                                    channelRange: (outChannels * piece / outPieces)..<(outChannels * (piece + 1) / outPieces))
                }
            }
            return
        }
        BLAS.withSingleThreadedCalls {
            Parallel.forEach(chunks: chunks) { chunk in
                let v = Storage(count: points * channels * ld, zeroed: false)
                let m = Storage(count: points * outChannels * ld, zeroed: false)
                let scratch = Storage(count: scratchCount, zeroed: false)
                for unit in (units * chunk / chunks)..<(units * (chunk + 1) / chunks) {
                    let first = unit * group, images = Swift.min(group, g.batch - unit * group)
                    let columns = images * tilesPerImage
                    transformInput(x + first * channels * g.inPlane, images: images, into: v.pointer, ld: ld,
                                   scratch: scratch.pointer)
                    for xi in 0..<points {
                        multiply(xi, u.pointer, v.pointer, into: m.pointer, columns: columns, ld: ld)
                    }
                    transformOutput(m.pointer, ld: ld, images: images, bias: bias,
                                    into: output + first * outChannels * g.outPlane, scratch: scratch.pointer)
                }
            }
        }
    }
}

/// One float or eight side by side: what the weight transform's arithmetic needs of either.
protocol WinogradLanes {
    init(repeating value: Float)
    static func + (lhs: Self, rhs: Self) -> Self
    static func - (lhs: Self, rhs: Self) -> Self
    static func * (lhs: Self, rhs: Self) -> Self
}

extension Float: WinogradLanes {
    init(repeating value: Float) { self = value }
}

extension SIMD8: WinogradLanes where Scalar == Float {}
