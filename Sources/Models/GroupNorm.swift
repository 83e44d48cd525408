import Tensor

/// torch.nn.GroupNorm (affine): statistics per (sample, group) over the group's channels and every
/// trailing axis; weight and bias `[channels]`. Input `[N, C, *]`.
public final class GroupNorm: Module, UnaryLayer {
    public let groups: Int
    public let channels: Int
    public let epsilon: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(groups: Int, channels: Int, epsilon: Float = 1e-5) {
        self.groups = groups
        self.channels = channels
        self.epsilon = epsilon
        weight = Tensor(repeating: 1, shape: [channels])
        bias = Tensor(zeros: [channels])
        super.init()
        parameter("weight", weight)
        parameter("bias", bias)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.groupNorm(x, groups: groups, weight: weight, bias: bias, epsilon: epsilon)
    }
}
