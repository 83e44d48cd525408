import Tensor

/// torch.nn.LayerNorm over the last axis (elementwise affine): weight and bias `[dimension]`.
public final class LayerNorm: Module, UnaryLayer {
    public let dimension: Int
    public let epsilon: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(_ dimension: Int, epsilon: Float = 1e-5) {
        self.dimension = dimension
        self.epsilon = epsilon
        weight = Tensor(repeating: 1, shape: [dimension])
        bias = Tensor(zeros: [dimension])
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.layerNorm(x, weight: weight, bias: bias, epsilon: epsilon)
    }
}
