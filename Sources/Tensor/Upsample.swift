/// Nearest-neighbour 2x upsampling: torch.nn.functional.interpolate(scale_factor=2, mode="nearest"),
/// as diffusers' `Upsample2D` applies before its convolution.
extension Tensor {
    /// `[N, C, H, W]` → `[N, C, 2H, 2W]`, each input pixel copied into a 2x2 block.
    /// The gradient of an input pixel is the sum of its block's gradients.
    public static func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else {
            throw TensorError.invalidArgument(op: "upsampleNearest2x", reason: "input must be [N, C, H, W], got shape \(x.shape)")
        }
        let (height, width) = (x.shape[2], x.shape[3])
        let rows = x.shape[0] * x.shape[1] * height
        let result = Tensor(uninitialized: [x.shape[0], x.shape[1], 2 * height, 2 * width])
        let source = x.data, target = result.data
        // One input row makes two identical output rows: fill the first, copy it to the second.
        Parallel.forRanges(count: rows, grain: Swift.max(1, 8_192 / Swift.max(1, width))) { range in
            for row in range {
                let from = source + row * width, to = target + row * 4 * width
                for j in 0..<width {
                    let v = from[j]
                    to[2 * j] = v
                    to[2 * j + 1] = v
                }
                (to + 2 * width).update(from: to, count: 2 * width)
            }
        }
        return record(result, op: "upsampleNearest2x", inputs: [x]) { gradient in
            let grad = Tensor(uninitialized: x.shape)
            let dy = gradient.data, dx = grad.data
            Parallel.forRanges(count: rows, grain: Swift.max(1, 8_192 / Swift.max(1, width))) { range in
                for row in range {
                    let top = dy + row * 4 * width, bottom = top + 2 * width, out = dx + row * width
                    for j in 0..<width {
                        out[j] = (top[2 * j] + top[2 * j + 1]) + (bottom[2 * j] + bottom[2 * j + 1])
                    }
                }
            }
            return [grad]
        }
    }
}
