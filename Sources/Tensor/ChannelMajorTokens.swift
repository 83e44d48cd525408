/// Inference kernels that let a transformer over an image's or a clip's pixels read and write the
/// convolutions' channel-major layout directly, instead of permuting it into tokens and back.
///
/// diffusers' `Transformer2DModel` and `TransformerTemporalModel` (AnimateDiff's motion modules)
/// normalise `[B·F, C, H, W]`, permute it into tokens (`[B·F, H·W, C]`, or `[B·H·W, F, C]` for
/// attention across frames), project them, and permute the projected result back before adding the
/// residual: three copies of the activations per block besides the norm and the add. Here the
/// projections are GEMMs with transposed operands that read and write the channel-major layout
/// themselves (one per frame, the tokens strided by the leading dimension), the norm of a clip
/// spans its frames without a permute, and the residual and bias seed the output projection's
/// accumulator. Results differ from the permuting path's by float rounding (the statistics'
/// blocks and where bias and residual are added): 1e-8 on the benchmark U-Nets' outputs.
///
/// Without autograd: the models take these only with gradient recording off and no adapter on
/// the projections.
extension Tensor {
    /// How tokens are ordered in `[B, …, width]`: `pixelMajor` `[B, P, F, ·]` (a pixel's frames
    /// consecutive: attention across frames) or `frameMajor` `[B, F, P, ·]` (a frame's pixels
    /// consecutive: attention within an image).
    public enum TokenOrder: Sendable {
        case pixelMajor
        case frameMajor

        /// Where image `image` (frame `image % frames` of clip `image / frames`) has its first token
        /// among tokens of `width` values, and how far apart its consecutive pixels' tokens lie.
        func tokens(ofImage image: Int, frames: Int, pixels: Int, width: Int) -> (offset: Int, stride: Int) {
            switch self {
            case .pixelMajor:
                let (clip, frame) = image.quotientAndRemainder(dividingBy: frames)
                return ((clip * pixels * frames + frame) * width, frames * width)
            case .frameMajor:
                return (image * pixels * width, width)
            }
        }
    }

    /// GroupNorm of `x` `[B·F, C, *spatial]` with statistics per (clip, group) over all `frames`
    /// frames of the clip, as `group_norm` computes them over the clip permuted to `[B, C, F, *spatial]`,
    /// the result in `x`'s layout. Each frame's run of the group is summed in Double, frame by frame.
    public static func groupNormAcrossFrames(_ x: Tensor, frames: Int, groups: Int, weight: Tensor, bias: Tensor,
                                             epsilon: Float) throws -> Tensor {
        guard x.rank >= 2, frames >= 1, x.shape[0] % frames == 0 else {
            throw TensorError.invalidArgument(op: "groupNormAcrossFrames",
                reason: "input \(x.shape) must be [B·F, C, *spatial] with a multiple of \(frames) frames")
        }
        let channels = x.shape[1]
        guard groups > 0, channels % groups == 0, weight.shape == [channels], bias.shape == [channels] else {
            throw TensorError.invalidArgument(op: "groupNormAcrossFrames",
                reason: "\(channels) channels of \(x.shape) in \(groups) groups with weight \(weight.shape) and bias \(bias.shape)")
        }
        let clips = x.shape[0] / frames
        let spatial = x.count / Swift.max(1, x.shape[0] * channels)
        let perGroup = channels / groups, run = perGroup * spatial
        let n = Double(frames * run)
        let output = Tensor(uninitialized: x.shape)
        let src = x.data, dst = output.data, w = weight.data, b = bias.data
        Parallel.forRanges(count: clips * groups, grain: Swift.max(1, 16_384 / Swift.max(1, frames * run))) { range in
            for slab in range {
                let clip = slab / groups, firstChannel = (slab % groups) * perGroup
                @inline(__always) func runStart(_ frame: Int) -> Int { ((clip * frames + frame) * channels + firstChannel) * spatial }
                var total = 0.0
                for frame in 0..<frames { total += runSum(src + runStart(frame), run) }
                let mean = Float(total / n)
                var squares = 0.0
                for frame in 0..<frames { squares += runCentredSquares(src + runStart(frame), run, mean: mean) }
                let rstd = 1 / (Float(squares / n) + epsilon).squareRoot()
                for frame in 0..<frames {
                    for ci in 0..<perGroup {
                        let a = rstd * w[firstChannel + ci], shift = b[firstChannel + ci] - mean * a
                        let start = runStart(frame) + ci * spatial
                        scaleShift(src + start, dst + start, spatial, a, shift)
                    }
                }
            }
        }
        return output
    }

    /// Tokens of `x` `[B·F, C, *spatial]` (P pixels) projected by `weight` `[O, C]` plus `bias`:
    /// `[B, P, F, O]` (`pixelMajor`) or `[B, F, P, O]`, without writing the tokens themselves.
    /// One GEMM per frame, its `[P, C]` operand the frame read transposed.
    public static func projectChannelMajor(_ x: Tensor, frames: Int, weight: Tensor, bias: Tensor?,
                                           order: TokenOrder) throws -> Tensor {
        guard x.rank >= 2, frames >= 1, x.shape[0] % frames == 0, weight.rank == 2, weight.shape[1] == x.shape[1],
              bias.map({ $0.shape == [weight.shape[0]] }) ?? true else {
            throw TensorError.shapeMismatch(op: "projectChannelMajor (input [B·F, C, *spatial], weight [O, C])",
                                            lhs: x.shape, rhs: weight.shape)
        }
        let (channels, outFeatures) = (x.shape[1], weight.shape[0])
        let images = x.shape[0], clips = images / frames
        let pixels = x.count / Swift.max(1, images * channels)
        let result = Tensor(uninitialized: order == .pixelMajor ? [clips, pixels, frames, outFeatures]
                                                                : [clips, frames, pixels, outFeatures])
        if let bias {
            let rows = images * pixels, out = result.data, values = bias.data
            Parallel.forRanges(count: rows, grain: Swift.max(1, 16_384 / Swift.max(1, outFeatures))) { range in
                for row in range { (out + row * outFeatures).update(from: values, count: outFeatures) }
            }
        }
        for image in 0..<images {
            let tokens = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: outFeatures)
            BLAS.sgemm(transA: true, transB: true, m: pixels, n: outFeatures, k: channels,
                       a: x.data + image * channels * pixels, lda: pixels, b: weight.data, ldb: channels,
                       beta: bias == nil ? 0 : 1, c: result.data + tokens.offset, ldc: tokens.stride)
        }
        return result
    }

    /// `tokens` `[B, P, F, I]` (`pixelMajor`) or `[B, F, P, I]` projected by `weight` `[C, I]` plus
    /// `bias`, written back as images `[B·F, C, *spatial]` (the shape of `residual`) plus `residual`.
    /// Each frame's `[C, P]` block starts as residual + bias and takes one GEMM (beta 1) whose right
    /// operand is the frame's tokens read transposed.
    public static func projectToChannelMajor(_ tokens: Tensor, frames: Int, weight: Tensor, bias: Tensor?,
                                             residual: Tensor, order: TokenOrder) throws -> Tensor {
        let images = residual.shape.first ?? 0
        guard residual.rank >= 2, frames >= 1, images % frames == 0, weight.rank == 2, weight.shape[0] == residual.shape[1],
              tokens.shape.last == weight.shape[1], bias.map({ $0.shape == [weight.shape[0]] }) ?? true,
              tokens.count == images * (residual.count / Swift.max(1, images * residual.shape[1])) * weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "projectToChannelMajor (tokens [.., I], weight [C, I], residual [B·F, C, *spatial])",
                                            lhs: tokens.shape, rhs: weight.shape + residual.shape)
        }
        let (channels, inner) = (weight.shape[0], weight.shape[1])
        let pixels = residual.count / Swift.max(1, images * channels)
        let result = Tensor(uninitialized: residual.shape)
        let out = result.data, skip = residual.data, shifts = bias?.data
        Parallel.forRanges(count: images * channels, grain: Swift.max(1, 16_384 / Swift.max(1, pixels))) { range in
            for row in range {
                let start = row * pixels
                if let shifts {
                    scaleShift(skip + start, out + start, pixels, 1, shifts[row % channels])
                } else {
                    (out + start).update(from: skip + start, count: pixels)
                }
            }
        }
        for image in 0..<images {
            let source = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: inner)
            BLAS.sgemm(transA: false, transB: true, m: channels, n: pixels, k: inner,
                       a: weight.data, lda: inner, b: tokens.data + source.offset, ldb: source.stride,
                       beta: 1, c: out + image * channels * pixels, ldc: pixels)
        }
        return result
    }
}
