import Tensor

/// torch.nn.Conv3d with kernel `(k, 1, 1)` and padding `((k-1)/2, 0, 0)`: a convolution over frames
/// only, as diffusers' `TemporalConvLayer` uses. Weight `[out, in, k, 1, 1]`, bias `[out]`; input and
/// output `[B, C, F, H, W]`. Carries adapter deltas like `Conv2d`.
public final class Conv3dTemporal: Module, UnaryLayer, LayerWithDeltas {
    public let weight: Tensor
    public let bias: Tensor?
    public let inChannels: Int
    public let outChannels: Int
    public let kernelFrames: Int
    /// Active adapters, applied in order.
    public var deltas: [LayerDelta] = []

    public init(_ inChannels: Int, _ outChannels: Int, kernelFrames: Int = 3, bias: Bool = true) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelFrames = kernelFrames
        weight = Tensor(zeros: [outChannels, inChannels, kernelFrames, 1, 1])
        self.bias = bias ? Tensor(zeros: [outChannels]) : nil
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try Tensor.conv3dTemporal(x, weight: weight, bias: bias, padding: (kernelFrames - 1) / 2)
        for adapter in deltas {
            if let d = try adapter.delta(x) { y = try y + d }
        }
        return y
    }
}
