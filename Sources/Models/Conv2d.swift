import Tensor

/// torch.nn.Conv2d with square kernels, one stride and symmetric zero padding: weight
/// `[out, in, k, k]`, bias `[out]`. Like `Linear` it carries adapter deltas (principle 3); a conv
/// delta takes the convolution's input and returns a tensor of the output's shape.
public final class Conv2d: Module, UnaryLayer, LayerWithDeltas {
    public let weight: Tensor
    public let bias: Tensor?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    /// Active adapters, applied in order.
    public var deltas: [LayerDelta] = []

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        weight = Tensor(zeros: [outChannels, inChannels, kernelSize, kernelSize])
        self.bias = bias ? Tensor(zeros: [outChannels]) : nil
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    /// `x` `[N, in, H, W]` → `[N, out, H', W']`.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try Tensor.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        for adapter in deltas {
            if let d = try adapter.delta(x) { y = try y + d }
        }
        return y
    }
}
