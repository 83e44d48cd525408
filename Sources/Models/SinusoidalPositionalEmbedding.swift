import Foundation
import Tensor

/// diffusers' `SinusoidalPositionalEmbedding` (embeddings.py): adds a fixed sin/cos table to a
/// sequence `[N, L, D]`, row l of the table to token l. AnimateDiff's motion modules use it to tell
/// the frames apart. The table `pe` `[1, max_seq_length, D]` is a buffer, saved with the weights as
/// diffusers does (`…pos_embed.pe`): pe[l, 2i] = sin(l·wᵢ), pe[l, 2i+1] = cos(l·wᵢ),
/// wᵢ = exp(2i·(−ln 10000 / D)), computed in Float32 as torch does.
public final class SinusoidalPositionalEmbedding: Module {
    public let maxSequenceLength: Int
    public let pe: Tensor

    public init(dimension: Int, maxSequenceLength: Int) {
        self.maxSequenceLength = maxSequenceLength
        var table = [Float](repeating: 0, count: maxSequenceLength * dimension)
        let rate = Float(-Foundation.log(10000.0) / Double(dimension))
        for position in 0..<maxSequenceLength {
            for even in stride(from: 0, to: dimension, by: 2) {
                let angle = Float(position) * Foundation.exp(Float(even) * rate)
                table[position * dimension + even] = Foundation.sin(angle)
                if even + 1 < dimension { table[position * dimension + even + 1] = Foundation.cos(angle) }
            }
        }
        pe = try! Tensor(shape: [1, maxSequenceLength, dimension], values: table)
        super.init()
        buffer("pe", pe)
    }

    /// `x` `[N, L, D]` with L ≤ `maxSequenceLength`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let length = x.shape[1]
        guard length <= maxSequenceLength else {
            throw ModelError.badInput("a motion module's positional embedding covers at most \(maxSequenceLength) frames (motion_max_seq_length), got \(length)")
        }
        return try x + pe.slice(axis: 1, 0..<length)
    }
}
