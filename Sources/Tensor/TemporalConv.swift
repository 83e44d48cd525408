/// Convolution along frames only: diffusers' `TemporalConvLayer` (unets/unet_3d_blocks.py) runs
/// `nn.Conv3d(in, out, kernel_size=(3, 1, 1), padding=(1, 0, 0))` over `[B, C, F, H, W]`.
///
/// With a `(k, 1, 1)` kernel, output frame f is Σ_dt W[:, :, dt] · X[:, :, f + dt − padding], a sum
/// of k `[O, C] × [C, frames·H·W]` GEMMs per clip. For a fixed clip and frame offset, the frames
/// that take part form one contiguous run per channel, i.e. a sub-matrix with leading dimension
/// F·H·W, which sgemm reads in place: no column buffer, no copies of the activations.
extension Tensor {
    /// torch.nn.functional.conv3d with kernel `(k, 1, 1)`, stride 1 and zero padding of `padding`
    /// frames at both ends (none spatially): `x` `[B, C, F, H, W]`, `weight` `[O, C, k, 1, 1]`,
    /// `bias` `[O]`; the result is `[B, O, F + 2·padding − k + 1, H, W]`.
    public static func conv3dTemporal(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, padding: Int = 1) throws -> Tensor {
        let op = "conv3dTemporal"
        guard x.rank == 5 else {
            throw TensorError.invalidArgument(op: op, reason: "input must be [B, C, F, H, W], got shape \(x.shape)")
        }
        guard weight.rank == 5, weight.shape[3] == 1, weight.shape[4] == 1 else {
            throw TensorError.invalidArgument(op: op, reason: "weight must be [O, C, k, 1, 1], got shape \(weight.shape)")
        }
        guard x.shape[1] == weight.shape[1] else {
            throw TensorError.shapeMismatch(op: "\(op) (input channels vs weight's axis 1)", lhs: x.shape, rhs: weight.shape)
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw TensorError.shapeMismatch(op: "\(op) (bias must be [out channels])", lhs: weight.shape, rhs: bias.shape)
        }
        guard padding >= 0 else {
            throw TensorError.invalidArgument(op: op, reason: "padding \(padding) must be >= 0")
        }
        guard x.count > 0, weight.count > 0 else {
            throw TensorError.invalidArgument(op: op, reason: "empty input \(x.shape) or weight \(weight.shape)")
        }
        let (clips, channels, frames) = (x.shape[0], x.shape[1], x.shape[2])
        let (outChannels, kernel) = (weight.shape[0], weight.shape[2])
        let plane = x.shape[3] * x.shape[4]
        let outFrames = frames + 2 * padding - kernel + 1
        guard outFrames >= 1 else {
            throw TensorError.invalidArgument(op: op,
                reason: "kernel of \(kernel) frames (weight \(weight.shape)) is longer than input \(x.shape) padded by \(padding)")
        }
        let inClip = channels * frames * plane, outClip = outChannels * outFrames * plane
        let (inRow, outRow) = (frames * plane, outFrames * plane)

        /// Output frames `lo..<hi` that read an input frame (f + dt − padding) inside the clip.
        func frameRange(_ dt: Int) -> (lo: Int, hi: Int) {
            let lo = Swift.max(0, padding - dt), hi = Swift.min(outFrames, frames + padding - dt)
            return (lo, Swift.max(lo, hi))
        }
        /// W as k contiguous `[O, C]` matrices (the stored `[O, C, k]` has stride k within a row).
        func packedWeight() -> Storage {
            let packed = Storage(count: weight.count, zeroed: false)
            let w = weight.data
            for dt in 0..<kernel {
                for row in 0..<(outChannels * channels) { packed.pointer[dt * outChannels * channels + row] = w[row * kernel + dt] }
            }
            return packed
        }

        let result = Tensor(uninitialized: [clips, outChannels, outFrames, x.shape[3], x.shape[4]])
        let y = result.data, input = x.data
        let rowInit = clips * outChannels
        if let bias {
            let b = bias.data
            for row in 0..<rowInit { (y + row * outRow).update(repeating: b[row % outChannels], count: outRow) }
        } else {
            y.update(repeating: 0, count: result.count)
        }
        let packed = packedWeight()
        for clip in 0..<clips {
            for dt in 0..<kernel {
                let (lo, hi) = frameRange(dt)
                guard hi > lo else { continue }
                BLAS.sgemm(transA: false, transB: false, m: outChannels, n: (hi - lo) * plane, k: channels,
                           a: packed.pointer + dt * outChannels * channels, lda: channels,
                           b: input + clip * inClip + (lo + dt - padding) * plane, ldb: inRow,
                           beta: 1, c: y + clip * outClip + lo * plane, ldc: outRow)
            }
        }

        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(result, op: op, inputs: inputs) { gradient in
            let dy = gradient.data
            var dx: Tensor?, dw: Tensor?, db: Tensor?
            if x.needsGrad {
                let grad = Tensor(zeros: x.shape)
                let packed = packedWeight()
                for clip in 0..<clips {
                    for dt in 0..<kernel {
                        let (lo, hi) = frameRange(dt)
                        guard hi > lo else { continue }
                        BLAS.sgemm(transA: true, transB: false, m: channels, n: (hi - lo) * plane, k: outChannels,
                                   a: packed.pointer + dt * outChannels * channels, lda: channels,
                                   b: dy + clip * outClip + lo * plane, ldb: outRow,
                                   beta: 1, c: grad.data + clip * inClip + (lo + dt - padding) * plane, ldc: inRow)
                    }
                }
                dx = grad
            }
            if weight.needsGrad {
                let packedGrad = Storage(count: weight.count)
                for clip in 0..<clips {
                    for dt in 0..<kernel {
                        let (lo, hi) = frameRange(dt)
                        guard hi > lo else { continue }
                        BLAS.sgemm(transA: false, transB: true, m: outChannels, n: channels, k: (hi - lo) * plane,
                                   a: dy + clip * outClip + lo * plane, lda: outRow,
                                   b: input + clip * inClip + (lo + dt - padding) * plane, ldb: inRow,
                                   beta: 1, c: packedGrad.pointer + dt * outChannels * channels, ldc: channels)
                    }
                }
                let grad = Tensor(uninitialized: weight.shape)
                for dt in 0..<kernel {
                    for row in 0..<(outChannels * channels) {
                        grad.data[row * kernel + dt] = packedGrad.pointer[dt * outChannels * channels + row]
                    }
                }
                dw = grad
            }
            if let bias, bias.needsGrad {
                let grad = Tensor(uninitialized: bias.shape)
                for o in 0..<outChannels {
                    var total: Float = 0
                    for clip in 0..<clips { total += Tensor.sumRun(dy + clip * outClip + o * outRow, outRow) }
                    grad.data[o] = total
                }
                db = grad
            }
            return [dx, dw, db]
        }
    }

    /// diffusers' `TemporalConvLayer` convolution on its native layout: `x` is `[B·F, C, H, W]`
    /// (frames of a clip consecutive), reshaped to `[B, C, F, H, W]`, convolved over frames with
    /// `conv3dTemporal`, and returned as `[B·F', O, H, W]` (F' = F when k = 2·padding + 1).
    public static func temporalConv(_ x: Tensor, frames: Int, weight: Tensor, bias: Tensor? = nil,
                                    padding: Int = 1) throws -> Tensor {
        guard x.rank == 4, frames >= 1, x.shape[0] % frames == 0 else {
            throw TensorError.invalidArgument(op: "temporalConv",
                reason: "input must be [B·F, C, H, W] with a batch divisible by frames = \(frames), got shape \(x.shape)")
        }
        let clips = x.shape[0] / frames
        let clipsFirst = try x.reshaped([clips, frames, x.shape[1], x.shape[2], x.shape[3]]).permuted([0, 2, 1, 3, 4])
        let y = try conv3dTemporal(clipsFirst, weight: weight, bias: bias, padding: padding)
        let framesFirst = try y.permuted([0, 2, 1, 3, 4])
        return try framesFirst.reshaped([-1, y.shape[1], y.shape[3], y.shape[4]])
    }
}
