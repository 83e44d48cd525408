/// 2-D convolution as torch.nn.functional.conv2d (diffusers' `nn.Conv2d` in ResnetBlock2D,
/// Downsample2D, Upsample2D, conv_in/conv_out), lowered to OpenBLAS sgemm through column buffers,
/// or, for 3×3 'same' convolutions with enough channels, by Winograd F(2×2, 3×3) or F(4×4, 3×3)
/// (`Winograd`: the forward pass and the input gradient).
extension Tensor {
    /// Cross-correlation of `x` `[N, C, H, W]` with `weight` `[O, C, kh, kw]`, plus `bias` `[O]`,
    /// with zero padding on all four sides; the result is `[N, O, Ho, Wo]` with
    /// `Ho = ⌊(H + 2·padding − kh) / stride⌋ + 1` (likewise `Wo`).
    ///
    /// Gradients flow to `x`, `weight` and `bias`. The column buffer is rebuilt in the backward pass
    /// rather than kept from the forward pass: it is kh·kw times the input's size, and a U-Net
    /// holds one per convolution until backward, while rebuilding it costs one memory pass.
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil,
                              stride: Int = 1, padding: Int = 0) throws -> Tensor {
        let geometry = try convGeometry(x, weight: weight, bias: bias, stride: stride, padding: padding)
        return conv2d(x, weight: weight, bias: bias, geometry: geometry, strategy: ConvStrategy(for: geometry))
    }

    /// Validates shapes and arguments; every failure names conv2d and the shapes involved.
    static func convGeometry(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int) throws -> ConvGeometry {
        guard x.rank == 4 else {
            throw TensorError.invalidArgument(op: "conv2d", reason: "input must be [N, C, H, W], got shape \(x.shape)")
        }
        guard weight.rank == 4 else {
            throw TensorError.invalidArgument(op: "conv2d", reason: "weight must be [O, C, kh, kw], got shape \(weight.shape)")
        }
        guard x.shape[1] == weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "conv2d (input channels vs weight's axis 1)", lhs: x.shape, rhs: weight.shape)
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw TensorError.shapeMismatch(op: "conv2d (bias must be [out channels])", lhs: weight.shape, rhs: bias.shape)
        }
        guard stride >= 1, padding >= 0 else {
            throw TensorError.invalidArgument(op: "conv2d", reason: "stride \(stride) must be >= 1 and padding \(padding) >= 0")
        }
        guard x.count > 0, weight.count > 0 else {
            throw TensorError.invalidArgument(op: "conv2d", reason: "empty input \(x.shape) or weight \(weight.shape)")
        }
        let (height, width) = (x.shape[2], x.shape[3])
        let (kernelHeight, kernelWidth) = (weight.shape[2], weight.shape[3])
        guard height + 2 * padding >= kernelHeight, width + 2 * padding >= kernelWidth else {
            throw TensorError.invalidArgument(op: "conv2d",
                reason: "kernel \(kernelHeight)x\(kernelWidth) of weight \(weight.shape) is larger than input \(x.shape) padded by \(padding)")
        }
        return ConvGeometry(batch: x.shape[0], channels: x.shape[1], height: height, width: width,
                            outChannels: weight.shape[0], kernelHeight: kernelHeight, kernelWidth: kernelWidth,
                            stride: stride, padding: padding,
                            outHeight: (height + 2 * padding - kernelHeight) / stride + 1,
                            outWidth: (width + 2 * padding - kernelWidth) / stride + 1)
    }

    /// `winograd`: the forward pass and the input gradient by Winograd (`Winograd`, its tile
    /// chosen by size) instead of im2col; by default wherever it applies. The weight gradient is im2col's either way.
    static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry, strategy: ConvStrategy,
                       winograd: Bool? = nil) -> Tensor {
        let g = geometry
        let result = Tensor(uninitialized: [g.batch, g.outChannels, g.outHeight, g.outWidth])
        if winograd ?? Winograd.applies(to: g) {
            precondition(g.isSame3x3, "conv2d: Winograd F(m x m, 3x3) needs a 3x3 kernel, stride 1 and padding 1")
            Winograd(g).forward(x: x.data, weight: weight.data, bias: bias?.data, output: result.data)
        } else {
            convForward(x: x.data, weight: weight.data, bias: bias?.data, output: result.data, g, strategy)
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, op: "conv2d", inputs: inputs) { gradient in
            let dx = x.needsGrad ? Tensor(uninitialized: x.shape) : nil
            let dw = weight.needsGrad ? Tensor(uninitialized: weight.shape) : nil
            let db = bias?.needsGrad == true ? Tensor(uninitialized: [g.outChannels]) : nil
            // dx of a 3x3 'same' convolution is itself one: the output gradient convolved with the
            // kernels turned by 180° and with input and output channels swapped.
            let inputGradient = Winograd.inputGradientGeometry(of: g, forced: winograd)
            if let inputGradient, let dx {
                convBackward(x: x.data, weight: weight.data, gradient: gradient.data,
                             dx: nil, dw: dw?.data, db: db?.data, g, strategy)
                let turned = Winograd.turnedKernels(weight.data, outChannels: g.outChannels, channels: g.channels)
                Winograd(inputGradient).forward(x: gradient.data, weight: turned.pointer, bias: nil, output: dx.data)
            } else {
                convBackward(x: x.data, weight: weight.data, gradient: gradient.data,
                             dx: dx?.data, dw: dw?.data, db: db?.data, g, strategy)
            }
            return [dx, dw, db]
        }
    }
}

/// How a convolution's GEMMs are shaped: how many images share one column buffer and one GEMM, and
/// whether the groups run one after another or side by side.
///
/// A group of G images has a `[C·kh·kw, G·P]` column buffer and one `[O, C·kh·kw] × [C·kh·kw, G·P]`
/// GEMM per pass, whose `[O, G·P]` result is permuted to NCHW (G = 1 needs no permute, and a
/// pointwise kernel then needs no column buffer either: the image is its own). Larger groups give
/// OpenBLAS wider GEMMs; smaller ones keep the column buffer in cache.
///
/// Shared: one group at a time, each transform split over the engine's threads and each GEMM over
/// OpenBLAS's. Side by side: the groups are dealt into a fixed number of chunks (set by the
/// geometry, never by the thread count), and each worker takes whole chunks, doing a group's
/// im2col, single-threaded GEMM and permute back to back with its own buffer, which stays in that
/// core's cache; the weight gradient is summed per chunk, then over chunks in chunk order, so the
/// result is the same whatever the thread count.
struct ConvStrategy: Equatable, CustomStringConvertible {
    let imagesPerGemm: Int
    let sideBySide: Bool

    init(imagesPerGemm: Int, sideBySide: Bool = false) {
        self.imagesPerGemm = Swift.max(1, imagesPerGemm)
        self.sideBySide = sideBySide
    }

    /// The most chunks a side-by-side convolution is dealt into (each holds a weight-gradient partial).
    static let maxChunks = 8

    /// Side by side when the batch makes at least four groups of up to 512 columns (at least 128),
    /// each group's column buffer at most 3 MB (3 << 18 floats, near a core's L2); otherwise shared,
    /// with enough images for 1024 columns per GEMM. At most `maxChunks` workers share a
    /// side-by-side convolution (the chunks are fixed by the shape so that results do not depend on
    /// the thread count), so a machine with more cores leaves the rest idle during it.
    ///
    /// Side by side, measured with `customize bench engine --threads 2 --repeats 30` (Xeon with
    /// AVX-512, SkylakeX kernels, 2 MB L2 per core; fraction of raw sgemm, one session): 64
    /// channels at 16x16 went from 0.58/0.56 shared (forward/forward+backward) to 0.75/0.78 with one
    /// image per group, 0.73/0.76 with two, 0.69/0.73 with four; 128 channels at 16x16 from
    /// 0.75/0.79 to 0.84-0.86/0.89-0.93; 128 channels at 8x8 from 0.64/0.65 to 0.70/0.72 with two
    /// images per group (128 columns), 0.70/0.76 with four (256), 0.64/0.68 with one (64).
    ///
    /// Shared, measured at the U-Net's shapes (16 images, 64-128 channels, 3x3): 8x8 and 4x4
    /// outputs give GEMMs too narrow for OpenBLAS's kernels with one image (0.59 of raw sgemm at
    /// 4x4, 0.77 with sixteen). On two threads (AMD EPYC, Zen 3, Haswell kernels; 6 runs
    /// alternating 512 and 1024 columns) 1024 columns beat 512: 64 channels at 16x16 ran at 63-76
    /// GFLOP/s against 35-59, 128 channels at 77-94 against 66-83. 2048 and 4096 columns were
    /// slower than both: their 5-19 MB buffers fall out of cache.
    /// A pointwise kernel always goes one image at a time: straight from NCHW, with no copy at
    /// all, it beat every grouping (1.0-1.2x raw sgemm against 0.75-0.98).
    init(for geometry: ConvGeometry) {
        if geometry.isPointwise {
            self.init(imagesPerGemm: 1)
            return
        }
        let bufferFloatsPerImage = Swift.max(1, geometry.columnRows * geometry.outPlane)
        let local = Swift.max(1, Swift.min((512 + geometry.outPlane - 1) / geometry.outPlane,
                                           (3 << 18) / bufferFloatsPerImage, geometry.batch / 4))
        if geometry.batch / local >= 4, local * bufferFloatsPerImage <= 3 << 18, local * geometry.outPlane >= 128 {
            self.init(imagesPerGemm: local, sideBySide: true)
            return
        }
        let wanted = (1024 + geometry.outPlane - 1) / geometry.outPlane
        let affordable = Swift.max(1, (8 << 20) / bufferFloatsPerImage)
        self.init(imagesPerGemm: Swift.min(wanted, affordable, geometry.batch))
    }

    var description: String { "\(imagesPerGemm) images per GEMM\(sideBySide ? ", side by side" : "")" }
}

// MARK: - Kernels

/// Sums `count` contiguous runs of `length` floats, `stride` apart, in order: one bias gradient entry.
@inline(__always)
private func sumRuns(_ p: UnsafePointer<Float>, count: Int, length: Int, stride: Int) -> Float {
    var total: Float = 0
    for run in 0..<count { total += Tensor.sumRun(p + run * stride, length) }
    return total
}

/// `[O, images·P]` (a group's GEMM result) → `images` NCHW blocks of `[O, P]`, adding the bias.
private func scatterGroup(images: Int, _ g: ConvGeometry, from wide: UnsafePointer<Float>,
                          to nchw: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, serial: Bool = false) {
    let (outPlane, outChannels, ld) = (g.outPlane, g.outChannels, images * g.outPlane)
    ConvGeometry.split(count: images * outChannels, grain: Swift.max(1, 16_384 / outPlane), serial: serial) { rows in
        for row in rows {
            let n = row / outChannels, o = row % outChannels
            let source = wide + o * ld + n * outPlane, target = nchw + row * outPlane
            if let bias {
                let b = bias[o]
                for i in 0..<outPlane { target[i] = source[i] + b }
            } else {
                target.update(from: source, count: outPlane)
            }
        }
    }
}

/// `images` NCHW blocks of `[O, P]` (an output gradient) → the group's `[O, images·P]` GEMM layout.
private func gatherGroup(images: Int, _ g: ConvGeometry, from nchw: UnsafePointer<Float>, to wide: UnsafeMutablePointer<Float>,
                         serial: Bool = false) {
    let (outPlane, outChannels, ld) = (g.outPlane, g.outChannels, images * g.outPlane)
    ConvGeometry.split(count: images * outChannels, grain: Swift.max(1, 16_384 / outPlane), serial: serial) { rows in
        for row in rows {
            let n = row / outChannels, o = row % outChannels
            (wide + o * ld + n * outPlane).update(from: nchw + row * outPlane, count: outPlane)
        }
    }
}

/// Scratch for one group of up to `group` images: its column buffer (none for a pointwise kernel
/// taken one image at a time: the image is its own) and its `[O, G·P]` GEMM layout (none for one image).
private struct GroupBuffers {
    let columns: Storage?, wide: Storage?

    init(_ g: ConvGeometry, group: Int) {
        columns = group == 1 && g.isPointwise ? nil : Storage(count: g.columnRows * group * g.outPlane, zeroed: false)
        wide = group == 1 ? nil : Storage(count: g.outChannels * group * g.outPlane, zeroed: false)
    }

    /// The GEMM's right factor for `images` images at `input`: the column buffer, filled by
    /// im2col, or the input itself when there is none.
    func columns(of input: UnsafePointer<Float>, images: Int, _ g: ConvGeometry, serial: Bool) -> UnsafePointer<Float> {
        guard let columns else { return input }
        g.im2col(input: input, images: images, columns: columns.pointer, ld: images * g.outPlane, serial: serial)
        return UnsafePointer(columns.pointer)
    }
}

/// The forward pass of images `first ..< first + images`: im2col, one GEMM, then NCHW with the bias.
/// `serial` keeps the transforms on the calling thread (a side-by-side worker).
private func convForwardGroup(first: Int, images: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                              _ buffers: GroupBuffers, serial: Bool) {
    let (outPlane, outChannels, rows) = (g.outPlane, g.outChannels, g.columnRows)
    let ld = images * outPlane
    let input = x + first * g.channels * g.inPlane
    let out = output + first * outChannels * outPlane
    let right = buffers.columns(of: input, images: images, g, serial: serial)
    if let wide = buffers.wide {
        BLAS.sgemm(transA: false, transB: false, m: outChannels, n: ld, k: rows,
                   a: weight, lda: rows, b: right, ldb: ld, c: wide.pointer, ldc: ld)
        scatterGroup(images: images, g, from: wide.pointer, to: out, bias: bias, serial: serial)
    } else {
        if let bias {
            for o in 0..<outChannels { (out + o * outPlane).update(repeating: bias[o], count: outPlane) }
        }
        BLAS.sgemm(transA: false, transB: false, m: outChannels, n: outPlane, k: rows,
                   a: weight, lda: rows, b: right, ldb: outPlane,
                   beta: bias == nil ? 0 : 1, c: out, ldc: outPlane)
    }
}

/// The backward pass of images `first ..< first + images`: their weight gradient written into `dw`
/// (added to it when `accumulate`), their input gradient written into `dx`.
private func convBackwardGroup(first: Int, images: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                               gradient: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?,
                               dw: UnsafeMutablePointer<Float>?, accumulate: Bool, _ g: ConvGeometry,
                               _ buffers: GroupBuffers, serial: Bool) {
    let (outPlane, outChannels, rows) = (g.outPlane, g.outChannels, g.columnRows)
    let ld = images * outPlane
    let input = x + first * g.channels * g.inPlane
    var dy = gradient + first * outChannels * outPlane
    if let wide = buffers.wide {
        gatherGroup(images: images, g, from: dy, to: wide.pointer, serial: serial)
        dy = UnsafePointer(wide.pointer)
    }
    if let dw {
        let right = buffers.columns(of: input, images: images, g, serial: serial)
        BLAS.sgemm(transA: false, transB: true, m: outChannels, n: rows, k: ld,
                   a: dy, lda: ld, b: right, ldb: ld, beta: accumulate ? 1 : 0, c: dw, ldc: rows)
    }
    if let dx {
        let dInput = dx + first * g.channels * g.inPlane
        if let columns = buffers.columns {
            BLAS.sgemm(transA: true, transB: false, m: rows, n: ld, k: outChannels,
                       a: weight, lda: rows, b: dy, ldb: ld, c: columns.pointer, ldc: ld)
            g.col2im(columns: columns.pointer, ld: ld, images: images, output: dInput, serial: serial)
        } else {
            BLAS.sgemm(transA: true, transB: false, m: rows, n: outPlane, k: outChannels,
                       a: weight, lda: rows, b: dy, ldb: outPlane, c: dInput, ldc: outPlane)
        }
    }
}

/// The groups of a convolution: `units` groups of up to `group` images. Side by side they are
/// dealt into `chunks`, chunk `c` taking groups `units·c/chunks ..< units·(c+1)/chunks`.
private struct GroupDeal {
    let batch: Int, group: Int, units: Int, chunks: Int

    init(batch: Int, group: Int) {
        self.batch = batch
        self.group = Swift.min(group, batch)
        units = (batch + self.group - 1) / self.group
        chunks = Swift.min(units, ConvStrategy.maxChunks)
    }

    func units(of chunk: Int) -> Range<Int> { (units * chunk / chunks)..<(units * (chunk + 1) / chunks) }
    /// The first image of a group and its image count (the last group may be short).
    func images(of unit: Int) -> (first: Int, count: Int) {
        (unit * group, Swift.min(group, batch - unit * group))
    }
}

private func convForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         output: UnsafeMutablePointer<Float>, _ g: ConvGeometry, _ strategy: ConvStrategy) {
    let deal = GroupDeal(batch: g.batch, group: strategy.imagesPerGemm)
    guard strategy.sideBySide else {
        let buffers = GroupBuffers(g, group: deal.group)
        for unit in 0..<deal.units {
            let (first, images) = deal.images(of: unit)
            convForwardGroup(first: first, images: images, x: x, weight: weight, bias: bias, output: output, g, buffers, serial: false)
        }
        return
    }
    BLAS.withSingleThreadedCalls {
        Parallel.forEach(chunks: deal.chunks) { chunk in
            let buffers = GroupBuffers(g, group: deal.group)
            for unit in deal.units(of: chunk) {
                let (first, images) = deal.images(of: unit)
                convForwardGroup(first: first, images: images, x: x, weight: weight, bias: bias, output: output, g, buffers, serial: true)
            }
        }
    }
}

private func convBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, gradient: UnsafePointer<Float>,
                          dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                          db: UnsafeMutablePointer<Float>?, _ g: ConvGeometry, _ strategy: ConvStrategy) {
    let (outPlane, outChannels) = (g.outPlane, g.outChannels)
    if let db {
        for o in 0..<outChannels {
            db[o] = sumRuns(gradient + o * outPlane, count: g.batch, length: outPlane, stride: outChannels * outPlane)
        }
    }
    guard dx != nil || dw != nil else { return }
    let deal = GroupDeal(batch: g.batch, group: strategy.imagesPerGemm)
    guard strategy.sideBySide else {
        let buffers = GroupBuffers(g, group: deal.group)
        for unit in 0..<deal.units {
            let (first, images) = deal.images(of: unit)
            convBackwardGroup(first: first, images: images, x: x, weight: weight, gradient: gradient, dx: dx, dw: dw,
                              accumulate: unit > 0, g, buffers, serial: false)
        }
        return
    }
    let weightCount = outChannels * g.columnRows
    // Chunk 0 sums its groups' weight gradients straight into dw, every other chunk into its own partial.
    let partials = dw == nil || deal.chunks == 1 ? nil : Storage(count: (deal.chunks - 1) * weightCount, zeroed: false)
    BLAS.withSingleThreadedCalls {
        Parallel.forEach(chunks: deal.chunks) { chunk in
            let buffers = GroupBuffers(g, group: deal.group)
            let partial = chunk == 0 ? dw : partials.map { $0.pointer + (chunk - 1) * weightCount }
            for (index, unit) in deal.units(of: chunk).enumerated() {
                let (first, images) = deal.images(of: unit)
                convBackwardGroup(first: first, images: images, x: x, weight: weight, gradient: gradient, dx: dx, dw: partial,
                                  accumulate: index > 0, g, buffers, serial: true)
            }
        }
    }
    guard let dw, let partials else { return }
    // dw = ((dw + partial 1) + partial 2) + …, element by element in chunk order.
    Parallel.forRanges(count: weightCount, grain: 8_192) { range in
        for chunk in 1..<deal.chunks {
            Tensor.addRun(partials.pointer + (chunk - 1) * weightCount + range.lowerBound,
                          into: dw + range.lowerBound, range.count)
        }
    }
}
