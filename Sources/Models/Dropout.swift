import Tensor

/// torch.nn.Dropout: no parameters, so it adds no key to the tree, yet it keeps its place in the
/// module order (`to_out.1`, `conv2.2`) so that sibling indices match diffusers'. Active only when
/// the forward context carries a dropout generator (training).
public final class Dropout: Module {
    public let probability: Float

    public init(_ probability: Float) {
        self.probability = probability
        super.init()
    }

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        guard probability > 0, var generator = context.dropoutGenerator else { return x }
        let y = try x.dropout(p: probability, generator: &generator, training: true)
        context.dropoutGenerator = generator
        return y
    }
}
