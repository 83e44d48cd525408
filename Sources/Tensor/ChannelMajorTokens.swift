/// Kernels that let a transformer over an image's or a clip's pixels read and write the
/// convolutions' channel-major layout directly, instead of permuting it into tokens and back.
///
/// diffusers' `Transformer2DModel` and `TransformerTemporalModel` (AnimateDiff's motion modules)
/// normalise `[B·F, C, H, W]`, permute it into tokens (`[B·F, H·W, C]`, or `[B·H·W, F, C]` for
/// attention across frames), project them, and permute the projected result back before adding the
/// residual: three copies of the activations per block besides the norm and the add. Here the
/// projections are GEMMs with transposed operands that read and write the channel-major layout
/// themselves (one per frame, the tokens strided by the leading dimension), the norm of a clip
/// spans its frames without a permute (`groupNormAcrossFrames`), and the residual and bias seed the
/// output projection's accumulator. Results differ from the permuting path's by float rounding
/// (the statistics' blocks and where bias and residual are added): 1e-8 on the benchmark U-Nets'
/// outputs. The backward passes are per-frame GEMMs the same way, the weight gradients summed
/// over frames in order.
///
/// The models take this path in inference only (gradient recording off, no adapter on the
/// projections): guided sampling steps 0.969 (animatediff) and 0.992 (unet3d) of the permuting
/// path's time, but a training step 0.984 and 1.019 (alternating 24 rounds each, 2-core AMD EPYC
/// Zen 4), where the per-frame GEMMs of the backward pass cost what the permutes saved.
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
        let pixels = x.shape.dropFirst(2).reduce(1, *)
        let result = Tensor(uninitialized: order == .pixelMajor ? [clips, pixels, frames, outFeatures]
                                                                : [clips, frames, pixels, outFeatures])
        if let bias { fillRows(result.data, rows: images * pixels, with: bias.data, width: outFeatures) }
        for image in 0..<images {
            let tokens = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: outFeatures)
            BLAS.sgemm(transA: true, transB: true, m: pixels, n: outFeatures, k: channels,
                       a: x.data + image * channels * pixels, lda: pixels, b: weight.data, ldb: channels,
                       beta: bias == nil ? 0 : 1, c: result.data + tokens.offset, ldc: tokens.stride)
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, op: "projectChannelMajor", inputs: inputs) { g in
            var dx: Tensor?, dw: Tensor?, db: Tensor?
            if x.needsGrad {
                // dX_f [C, P] = Wᵀ · dT_fᵀ.
                let d = Tensor(uninitialized: x.shape)
                for image in 0..<images {
                    let tokens = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: outFeatures)
                    BLAS.sgemm(transA: true, transB: true, m: channels, n: pixels, k: outFeatures,
                               a: weight.data, lda: channels, b: g.data + tokens.offset, ldb: tokens.stride,
                               c: d.data + image * channels * pixels, ldc: pixels)
                }
                dx = d
            }
            if weight.needsGrad {
                // dW [O, C] = Σ_f dT_fᵀ · X_fᵀ, frames in order.
                let d = Tensor(zeros: weight.shape)
                for image in 0..<images {
                    let tokens = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: outFeatures)
                    BLAS.sgemm(transA: true, transB: true, m: outFeatures, n: channels, k: pixels,
                               a: g.data + tokens.offset, lda: tokens.stride, b: x.data + image * channels * pixels, ldb: pixels,
                               beta: image == 0 ? 0 : 1, c: d.data, ldc: channels)
                }
                dw = d
            }
            if let bias, bias.needsGrad {
                db = try g.reshaped([images * pixels, outFeatures]).sumToShape([outFeatures])
            }
            return [dx, dw, db]
        }
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
              tokens.count == images * residual.shape.dropFirst(2).reduce(1, *) * weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "projectToChannelMajor (tokens [.., I], weight [C, I], residual [B·F, C, *spatial])",
                                            lhs: tokens.shape, rhs: weight.shape + residual.shape)
        }
        let (channels, inner) = (weight.shape[0], weight.shape[1])
        let pixels = residual.shape.dropFirst(2).reduce(1, *)
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
        let inputs = [tokens, weight, residual] + (bias.map { [$0] } ?? [])
        return record(result, op: "projectToChannelMajor", inputs: inputs) { g in
            var dt: Tensor?, dw: Tensor?, db: Tensor?
            if tokens.needsGrad {
                // dT_f [P, I] = dY_fᵀ · W, into the frame's strided token rows.
                let d = Tensor(uninitialized: tokens.shape)
                for image in 0..<images {
                    let target = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: inner)
                    BLAS.sgemm(transA: true, transB: false, m: pixels, n: inner, k: channels,
                               a: g.data + image * channels * pixels, lda: pixels, b: weight.data, ldb: inner,
                               c: d.data + target.offset, ldc: target.stride)
                }
                dt = d
            }
            if weight.needsGrad {
                // dW [C, I] = Σ_f dY_f · T_f, frames in order.
                let d = Tensor(zeros: weight.shape)
                for image in 0..<images {
                    let source = order.tokens(ofImage: image, frames: frames, pixels: pixels, width: inner)
                    BLAS.sgemm(transA: false, transB: false, m: channels, n: inner, k: pixels,
                               a: g.data + image * channels * pixels, lda: pixels, b: tokens.data + source.offset,
                               ldb: source.stride, beta: image == 0 ? 0 : 1, c: d.data, ldc: inner)
                }
                dw = d
            }
            if let bias, bias.needsGrad {
                db = try g.reshaped([images, channels, pixels]).sumToShape([1, channels, 1]).reshaped([channels])
            }
            return [dt, dw, residual.needsGrad ? g : nil] + (bias == nil ? [] : [db])
        }
    }

}
