import Tensor

/// torch.nn.functional.interpolate(x, size=(H, W), mode="nearest") for `[N, C, h, w]`: output index
/// `i` reads input index `min(⌊i · (in/out)⌋, in − 1)`, with the scale in Float32 as PyTorch computes
/// it. diffusers' `Upsample2D` uses it when the U-Net forwards explicit upsample sizes (inputs
/// whose sides are not multiples of 2^upsamplers). An exact doubling goes to the engine's kernel;
/// other sizes are assembled from slices (rare, small latents), which keeps the gradient exact.
enum NearestResize {
    static func resize(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        guard x.rank == 4, height > 0, width > 0 else {
            throw ModelError.badInput("nearest resize: expected [N, C, H, W] and a positive size, got \(x.shape) → \(height)×\(width)")
        }
        if height == 2 * x.shape[2], width == 2 * x.shape[3] { return try Tensor.upsampleNearest2x(x) }
        return try resizeAxis(resizeAxis(x, axis: 2, to: height), axis: 3, to: width)
    }

    /// Source index of each output index along one axis (PyTorch's `nearest` rule).
    static func sourceIndices(input: Int, output: Int) -> [Int] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { Swift.min(Int((Float($0) * scale).rounded(.down)), input - 1) }
    }

    private static func resizeAxis(_ x: Tensor, axis: Int, to size: Int) throws -> Tensor {
        let input = x.shape[axis]
        if input == size { return x }
        // Runs of equal source indices become one slice repeated along the axis.
        var pieces: [Tensor] = []
        var runStart = 0
        let sources = sourceIndices(input: input, output: size)
        for index in 1...size where index == size || sources[index] != sources[runStart] {
            let slice = try x.slice(axis: axis, sources[runStart]..<(sources[runStart] + 1))
            var times = [Int](repeating: 1, count: x.rank)
            times[axis] = index - runStart
            pieces.append(times[axis] == 1 ? slice : try slice.repeated(times))
            runStart = index
        }
        return try Tensor.concat(pieces, axis: axis)
    }
}
