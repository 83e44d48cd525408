import Tensor

/// diffusers' `FeedForward` with `activation_fn="geglu"`: `net.0` GEGLU to `dim·mult`, `net.1`
/// Dropout, `net.2` Linear back to `dim`.
public final class FeedForward: Module {
    public let activation: GEGLU
    public let output: Linear
    let dropout: Dropout

    public init(_ dimension: Int, outputDimension: Int? = nil, mult: Int = 4, dropout: Float = 0, bias: Bool = true) {
        let inner = dimension * mult
        activation = GEGLU(dimension, inner, bias: bias)
        self.dropout = Dropout(dropout)
        output = Linear(inner, outputDimension ?? dimension, bias: bias)
        super.init()
        child("net", FeedForwardLayers(activation, self.dropout, output))
    }

    /// Rows per piece when inference runs the block piecewise.
    static let inferenceChunkRows = 2048

    /// Without gradient recording (sampling), more than `inferenceChunkRows` tokens go through in
    /// pieces of that many rows, each row being independent: the GEGLU projection, twice the inner
    /// width, then never exists for all tokens at once. For the benchmark clip (16 384 tokens of
    /// width 64 at the first level, with guidance) that was a 32 MB and a 16 MB buffer, the largest
    /// of sampling's peak, as diffusers' `enable_forward_chunking` avoids. Training records the
    /// whole block as before.
    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        let width = x.shape.last ?? 0, rows = width == 0 ? 0 : x.count / width
        let chunk = FeedForward.inferenceChunkRows
        guard !GradMode.isEnabled, rows > chunk else { return try output(dropout(activation(x), context: context)) }
        let flat = try x.reshaped([rows, width]), outWidth = output.outFeatures
        let result = Tensor(uninitialized: Array(x.shape.dropLast()) + [outWidth])
        for start in stride(from: 0, to: rows, by: chunk) {
            let piece = try output(dropout(activation(flat.slice(rows: start..<Swift.min(start + chunk, rows))), context: context))
            withExtendedLifetime(piece) { (result.data + start * outWidth).update(from: piece.data, count: piece.count) }
        }
        return result
    }
}

/// The `net` ModuleList of `FeedForward`.
final class FeedForwardLayers: Module {
    init(_ activation: GEGLU, _ dropout: Dropout, _ output: Linear) {
        super.init()
        child("0", activation)
        child("1", dropout)
        child("2", output)
    }
}
