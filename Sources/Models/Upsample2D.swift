import Tensor

/// diffusers' `Upsample2D` (upsampling.py) with `use_conv=True`: nearest-neighbour ×2, then a 3×3 `conv`.
public final class Upsample2D: Module {
    public let conv: Conv2d

    public init(channels: Int, outChannels: Int? = nil) {
        conv = Conv2d(channels, outChannels ?? channels, kernelSize: 3, padding: 1)
        super.init()
        child("conv", conv)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try conv(Tensor.upsampleNearest2x(x))
    }
}
