import Foundation

/// Table look-ups and sinusoidal embeddings (torch.nn.functional.embedding; diffusers'
/// `get_timestep_embedding` in diffusers/models/embeddings.py).
extension Tensor {
    /// Rows `indices` of `weight` ([V, D]) stacked into [indices.count, D]. The backward scatter-adds
    /// into the weight's gradient, so a token used twice gets both contributions.
    public static func embedding(indices: [Int], weight: Tensor) throws -> Tensor {
        guard weight.rank == 2 else {
            throw TensorError.invalidArgument(op: "embedding", reason: "weight must be [vocabulary, dimension], got \(weight.shape)")
        }
        let vocabulary = weight.shape[0], width = weight.shape[1]
        for (position, index) in indices.enumerated() where index < 0 || index >= vocabulary {
            throw TensorError.invalidArgument(op: "embedding",
                reason: "index \(index) at position \(position) is outside the vocabulary of \(vocabulary) rows (0..<\(vocabulary))")
        }
        let result = Tensor(uninitialized: [indices.count, width])
        let table = weight.data, dst = result.data
        indices.withUnsafeBufferPointer { rows in
            Parallel.forRanges(count: rows.count, grain: Swift.max(1, 16_384 / Swift.max(width, 1))) { range in
                for r in range { (dst + r * width).update(from: table + rows[r] * width, count: width) }
            }
        }
        return record(result, op: "embedding", inputs: [weight]) { g in
            let dWeight = Tensor(zeros: [vocabulary, width])
            let dw = dWeight.data, pg = g.data
            // Serial in index order: repeated indices add up in a fixed order (reproducible).
            for (r, index) in indices.enumerated() {
                let target = dw + index * width, source = pg + r * width
                for j in 0..<width { target[j] += source[j] }
            }
            return [dWeight]
        }
    }

    /// Sinusoidal timestep embeddings, [timesteps.count, dimension], computed exactly as diffusers'
    /// `get_timestep_embedding` (Float32 arithmetic like torch): frequencies
    /// exp(−ln(maxPeriod) · i / (half − downscaleFreqShift)) for i in 0..<half, arguments
    /// scale · t · frequency, then [sin, cos] (or [cos, sin] with `flipSinToCos`), zero-padded by one
    /// column when `dimension` is odd. Constant inputs, so no gradient.
    public static func timestepEmbedding(timesteps: [Float], dimension: Int, flipSinToCos: Bool,
                                         downscaleFreqShift: Float, scale: Float = 1,
                                         maxPeriod: Float = 10_000) throws -> Tensor {
        let half = dimension / 2
        guard dimension > 0 else {
            throw TensorError.invalidArgument(op: "timestepEmbedding", reason: "dimension \(dimension) must be positive")
        }
        guard Float(half) != downscaleFreqShift else {
            throw TensorError.invalidArgument(op: "timestepEmbedding",
                reason: "half the dimension (\(half)) equals downscale_freq_shift \(downscaleFreqShift): the frequencies divide by zero")
        }
        guard maxPeriod > 0 else {
            throw TensorError.invalidArgument(op: "timestepEmbedding", reason: "max period \(maxPeriod) must be positive")
        }
        // torch: -math.log(max_period) * arange(half, dtype=float32) / (half - shift), then exp, all float32.
        let logPeriod = Float(-Foundation.log(Double(maxPeriod)))
        let denominator = Float(half) - downscaleFreqShift
        let frequencies = (0..<half).map { Foundation.exp(logPeriod * Float($0) / denominator) }
        let result = Tensor(zeros: [timesteps.count, dimension])
        let out = result.data
        for (row, t) in timesteps.enumerated() {
            let line = out + row * dimension
            let sinStart = flipSinToCos ? half : 0, cosStart = flipSinToCos ? 0 : half
            for i in 0..<half {
                let argument = scale * (t * frequencies[i])
                line[sinStart + i] = Foundation.sin(argument)
                line[cosStart + i] = Foundation.cos(argument)
            }
        }
        return result
    }
}
