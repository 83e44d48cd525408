/// The sizes of one 2-D convolution (torch.nn.functional.conv2d), and the column-buffer
/// transforms that turn it into GEMMs (the im2col scheme of Caffe and PyTorch's slow_conv2d).
///
/// A column buffer has one row per (input channel, kernel row, kernel column), in the order of the
/// weight's `[O, C, kh, kw]` layout, so the weight is its `[O, C·kh·kw]` left factor as stored.
/// Its columns are (image, output row, output column); several images can share one buffer, with
/// image `n` in columns `n·P ..< (n+1)·P` of a row of length `ld` (P = outHeight · outWidth).
struct ConvGeometry: Equatable {
    let batch: Int, channels: Int, height: Int, width: Int
    let outChannels: Int, kernelHeight: Int, kernelWidth: Int
    let stride: Int, padding: Int
    let outHeight: Int, outWidth: Int

    /// Rows of a column buffer: C · kh · kw (the GEMM's inner dimension).
    var columnRows: Int { channels * kernelHeight * kernelWidth }
    /// Output positions per image.
    var outPlane: Int { outHeight * outWidth }
    var inPlane: Int { height * width }
    /// A 1×1 kernel with stride 1 and no padding: the input image is its own column buffer.
    var isPointwise: Bool { kernelHeight == 1 && kernelWidth == 1 && stride == 1 && padding == 0 }
    /// A 3×3 kernel with stride 1 and padding 1: a 'same' convolution, the shape Winograd F(2×2, 3×3) takes.
    var isSame3x3: Bool { kernelHeight == 3 && kernelWidth == 3 && stride == 1 && padding == 1 }

    /// Output columns `lo..<hi` whose input column `ox·stride − padding + kj` lies inside the image.
    @inline(__always)
    func validColumns(kernelColumn kj: Int) -> (lo: Int, hi: Int) {
        let first = padding - kj  // ox·stride ≥ first
        let lo = first <= 0 ? 0 : (first + stride - 1) / stride
        let last = width - 1 + padding - kj  // ox·stride ≤ last
        let hi = last < 0 ? 0 : Swift.min(outWidth, last / stride + 1)
        return (lo, Swift.max(lo, hi))
    }

    /// Writes the column buffer of `images` consecutive images starting at `input` (NCHW) into
    /// `columns`, whose rows are `ld` floats apart. Zero padding becomes zeros in the buffer.
    /// Rows are independent, so they are split across threads unless `serial` (the caller is
    /// already one of several workers).
    func im2col(input: UnsafePointer<Float>, images: Int, columns: UnsafeMutablePointer<Float>, ld: Int,
                serial: Bool = false) {
        let kernelArea = kernelHeight * kernelWidth
        let (plane, outPlane, outWidth, width) = (inPlane, self.outPlane, self.outWidth, self.width)
        let grain = Swift.max(1, 32_768 / Swift.max(1, images * outPlane))
        Self.split(count: columnRows, grain: grain, serial: serial) { rows in
            for row in rows {
                let c = row / kernelArea, ki = (row / kernelWidth) % kernelHeight, kj = row % kernelWidth
                let (lo, hi) = validColumns(kernelColumn: kj)
                let sourceColumn = lo * stride - padding + kj
                for n in 0..<images {
                    let source = input + (n * channels + c) * plane
                    let destination = columns + row * ld + n * outPlane
                    for oy in 0..<outHeight {
                        let iy = oy * stride - padding + ki
                        let out = destination + oy * outWidth
                        guard iy >= 0, iy < height, hi > lo else {
                            out.update(repeating: 0, count: outWidth)
                            continue
                        }
                        if lo > 0 { out.update(repeating: 0, count: lo) }
                        if hi < outWidth { (out + hi).update(repeating: 0, count: outWidth - hi) }
                        let inRow = source + iy * width + sourceColumn
                        if stride == 1 {
                            (out + lo).update(from: inRow, count: hi - lo)
                        } else {
                            for ox in lo..<hi { out[ox] = inRow[(ox - lo) * stride] }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: sums each column-buffer entry back into the input position it was
    /// copied from, writing (not accumulating into) `images` gradient images at `output`.
    /// Each (image, channel) plane is owned by one task and summed in a fixed order: deterministic.
    func col2im(columns: UnsafePointer<Float>, ld: Int, images: Int, output: UnsafeMutablePointer<Float>,
                serial: Bool = false) {
        let kernelArea = kernelHeight * kernelWidth
        let (plane, outPlane, outWidth, width) = (inPlane, self.outPlane, self.outWidth, self.width)
        let grain = Swift.max(1, 16_384 / Swift.max(1, kernelArea * outPlane))
        Self.split(count: images * channels, grain: grain, serial: serial) { planes in
            for planeIndex in planes {
                let n = planeIndex / channels, c = planeIndex % channels
                let target = output + planeIndex * plane
                target.update(repeating: 0, count: plane)
                for ki in 0..<kernelHeight {
                    for kj in 0..<kernelWidth {
                        let (lo, hi) = validColumns(kernelColumn: kj)
                        guard hi > lo else { continue }
                        let row = (c * kernelHeight + ki) * kernelWidth + kj
                        let source = columns + row * ld + n * outPlane
                        let targetColumn = lo * stride - padding + kj
                        for oy in 0..<outHeight {
                            let iy = oy * stride - padding + ki
                            guard iy >= 0, iy < height else { continue }
                            let inRow = target + iy * width + targetColumn
                            let gradRow = source + oy * outWidth
                            if stride == 1 {
                                for ox in lo..<hi { inRow[ox - lo] += gradRow[ox] }
                            } else {
                                for ox in lo..<hi { inRow[(ox - lo) * stride] += gradRow[ox] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `Parallel.forRanges`, or the whole range on the calling thread when `serial`.
    @inline(__always)
    static func split(count: Int, grain: Int, serial: Bool, _ body: (Range<Int>) -> Void) {
        if serial {
            if count > 0 { body(0..<count) }
        } else {
            Parallel.forRanges(count: count, grain: grain, body)
        }
    }
}
