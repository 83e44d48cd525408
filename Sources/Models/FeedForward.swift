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

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        try output(dropout(activation(x), context: context))
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
