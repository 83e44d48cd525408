/// 2-D convolution as torch.nn.functional.conv2d (diffusers' `nn.Conv2d` in ResnetBlock2D,
/// Downsample2D, Upsample2D, conv_in/conv_out), lowered to OpenBLAS sgemm through column buffers.
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

    static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, geometry: ConvGeometry, strategy: ConvStrategy) -> Tensor {
        let g = geometry
        let result = Tensor(uninitialized: [g.batch, g.outChannels, g.outHeight, g.outWidth])
        convForward(x: x.data, weight: weight.data, bias: bias?.data, output: result.data, g, strategy)
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, op: "conv2d", inputs: inputs) { gradient in
            let dx = x.needsGrad ? Tensor(uninitialized: x.shape) : nil
            let dw = weight.needsGrad ? Tensor(uninitialized: weight.shape) : nil
            let db = bias?.needsGrad == true ? Tensor(uninitialized: [g.outChannels]) : nil
            convBackward(x: x.data, weight: weight.data, gradient: gradient.data,
                         dx: dx?.data, dw: dw?.data, db: db?.data, g, strategy)
            return [dx, dw, db]
        }
    }
}

/// How a convolution's GEMMs are shaped: how many images share one column buffer and one GEMM.
///
/// A group of G images has a `[C·kh·kw, G·P]` column buffer and one `[O, C·kh·kw] × [C·kh·kw, G·P]`
/// GEMM per pass, whose `[O, G·P]` result is permuted to NCHW (G = 1 needs no permute, and a
/// pointwise kernel then needs no column buffer either: the image is its own). Larger groups give
/// OpenBLAS wider GEMMs; smaller ones keep the column buffer in cache.
struct ConvStrategy: Equatable, CustomStringConvertible {
    let imagesPerGemm: Int

    init(imagesPerGemm: Int) { self.imagesPerGemm = Swift.max(1, imagesPerGemm) }

    /// Enough images for 1024 GEMM columns, and no more than a 32 MB column buffer.
    ///
    /// Measured at the U-Net's shapes (16 images, 64-128 channels, 3x3): one image per GEMM is
    /// best on one thread while an image has >= 256 output positions (the buffer stays in L2),
    /// but 8x8 and 4x4 outputs give GEMMs too narrow for OpenBLAS's kernels (0.59 of raw sgemm
    /// at 4x4 with one image, 0.77 with sixteen). On two threads (AMD EPYC, Zen 3, Haswell
    /// kernels; 6 runs alternating 512 and 1024 columns) 1024 columns beat 512: 64 channels at
    /// 16x16 ran at 63-76 GFLOP/s against 35-59, 128 channels at 77-94 against 66-83, and 8x8
    /// outputs at least as fast. 2048 and 4096 columns were slower than both (the 64-channel
    /// conv fell to 45 GFLOP/s): their 5-19 MB buffers fall out of cache.
    /// A pointwise kernel always goes one image at a time: straight from NCHW, with no copy at
    /// all, it beat every grouping (1.0-1.2x raw sgemm against 0.75-0.98).
    init(for geometry: ConvGeometry) {
        if geometry.isPointwise {
            self.init(imagesPerGemm: 1)
            return
        }
        let wanted = (1024 + geometry.outPlane - 1) / geometry.outPlane
        let bufferFloatsPerImage = Swift.max(1, geometry.columnRows * geometry.outPlane)
        let affordable = Swift.max(1, (8 << 20) / bufferFloatsPerImage)
        self.init(imagesPerGemm: Swift.min(wanted, affordable, geometry.batch))
    }

    var description: String { "\(imagesPerGemm) images per GEMM" }
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
                          to nchw: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?) {
    let (outPlane, outChannels, ld) = (g.outPlane, g.outChannels, images * g.outPlane)
    Parallel.forRanges(count: images * outChannels, grain: Swift.max(1, 16_384 / outPlane)) { rows in
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
private func gatherGroup(images: Int, _ g: ConvGeometry, from nchw: UnsafePointer<Float>, to wide: UnsafeMutablePointer<Float>) {
    let (outPlane, outChannels, ld) = (g.outPlane, g.outChannels, images * g.outPlane)
    Parallel.forRanges(count: images * outChannels, grain: Swift.max(1, 16_384 / outPlane)) { rows in
        for row in rows {
            let n = row / outChannels, o = row % outChannels
            (wide + o * ld + n * outPlane).update(from: nchw + row * outPlane, count: outPlane)
        }
    }
}

private func convForward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                         output: UnsafeMutablePointer<Float>, _ g: ConvGeometry, _ strategy: ConvStrategy) {
    let (outPlane, outChannels, rows) = (g.outPlane, g.outChannels, g.columnRows)
    let group = Swift.min(strategy.imagesPerGemm, g.batch)
    let direct = group == 1 && g.isPointwise
    let columns = direct ? nil : Storage(count: rows * group * outPlane, zeroed: false)
    let product = group == 1 ? nil : Storage(count: outChannels * group * outPlane, zeroed: false)
    for first in stride(from: 0, to: g.batch, by: group) {
        let images = Swift.min(group, g.batch - first), ld = images * outPlane
        let input = x + first * g.channels * g.inPlane
        let out = output + first * outChannels * outPlane
        let right: UnsafePointer<Float>
        if let columns {
            g.im2col(input: input, images: images, columns: columns.pointer, ld: ld)
            right = UnsafePointer(columns.pointer)
        } else {
            right = input
        }
        if let product {
            BLAS.sgemm(transA: false, transB: false, m: outChannels, n: ld, k: rows,
                       a: weight, lda: rows, b: right, ldb: ld, c: product.pointer, ldc: ld)
            scatterGroup(images: images, g, from: product.pointer, to: out, bias: bias)
        } else {
            if let bias {
                for o in 0..<outChannels { (out + o * outPlane).update(repeating: bias[o], count: outPlane) }
            }
            BLAS.sgemm(transA: false, transB: false, m: outChannels, n: outPlane, k: rows,
                       a: weight, lda: rows, b: right, ldb: outPlane,
                       beta: bias == nil ? 0 : 1, c: out, ldc: outPlane)
        }
    }
}

private func convBackward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, gradient: UnsafePointer<Float>,
                          dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                          db: UnsafeMutablePointer<Float>?, _ g: ConvGeometry, _ strategy: ConvStrategy) {
    let (outPlane, outChannels, rows) = (g.outPlane, g.outChannels, g.columnRows)
    if let db {
        for o in 0..<outChannels {
            db[o] = sumRuns(gradient + o * outPlane, count: g.batch, length: outPlane, stride: outChannels * outPlane)
        }
    }
    guard dx != nil || dw != nil else { return }
    let group = Swift.min(strategy.imagesPerGemm, g.batch)
    let direct = group == 1 && g.isPointwise
    let columns = direct ? nil : Storage(count: rows * group * outPlane, zeroed: false)
    let permuted = group == 1 ? nil : Storage(count: outChannels * group * outPlane, zeroed: false)
    for first in stride(from: 0, to: g.batch, by: group) {
        let images = Swift.min(group, g.batch - first), ld = images * outPlane
        let input = x + first * g.channels * g.inPlane
        var dy = gradient + first * outChannels * outPlane
        if let permuted {
            gatherGroup(images: images, g, from: dy, to: permuted.pointer)
            dy = UnsafePointer(permuted.pointer)
        }
        if let dw {
            let right: UnsafePointer<Float>
            if let columns {
                g.im2col(input: input, images: images, columns: columns.pointer, ld: ld)
                right = UnsafePointer(columns.pointer)
            } else {
                right = input
            }
            BLAS.sgemm(transA: false, transB: true, m: outChannels, n: rows, k: ld,
                       a: dy, lda: ld, b: right, ldb: ld, beta: first == 0 ? 0 : 1, c: dw, ldc: rows)
        }
        if let dx {
            let dInput = dx + first * g.channels * g.inPlane
            if let columns {
                BLAS.sgemm(transA: true, transB: false, m: rows, n: ld, k: outChannels,
                           a: weight, lda: rows, b: dy, ldb: ld, c: columns.pointer, ldc: ld)
                g.col2im(columns: columns.pointer, ld: ld, images: images, output: dInput)
            } else {
                BLAS.sgemm(transA: true, transB: false, m: rows, n: outPlane, k: outChannels,
                           a: weight, lda: rows, b: dy, ldb: outPlane, c: dInput, ldc: outPlane)
            }
        }
    }
}
