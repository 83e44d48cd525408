import Tensor

/// diffusers' `Upsample2D` (upsampling.py) with `use_conv=True`: nearest-neighbour ×2 (or to an
/// explicit `outputSize`, as the U-Net forwards for odd sizes), then a 3×3 `conv`.
public final class Upsample2D: Module {
    public let conv: Conv2d

    public init(channels: Int, outChannels: Int? = nil) {
        conv = Conv2d(channels, outChannels ?? channels, kernelSize: 3, padding: 1)
        super.init()
        child("conv", conv)
    }

    public func callAsFunction(_ x: Tensor, outputSize: (height: Int, width: Int)? = nil) throws -> Tensor {
        if let outputSize {
            return try conv(NearestResize.resize(x, height: outputSize.height, width: outputSize.width))
        }
        return try conv(Tensor.upsampleNearest2x(x))
    }
}
