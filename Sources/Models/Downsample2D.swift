import Tensor

/// diffusers' `Downsample2D` (downsampling.py) with `use_conv=True`: a 3×3 stride-2 `conv`. With
/// `padding = 0` (the VAE encoder) the input is first padded by one row and column at the bottom
/// and right only, diffusers' asymmetric `F.pad(x, (0, 1, 0, 1))`.
public final class Downsample2D: Module {
    public let padding: Int
    public let conv: Conv2d

    public init(channels: Int, outChannels: Int? = nil, padding: Int = 1) {
        self.padding = padding
        conv = Conv2d(channels, outChannels ?? channels, kernelSize: 3, stride: 2, padding: padding)
        super.init()
        child("conv", conv)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        if padding == 0 { return try conv(x.padded([(0, 1), (0, 1)])) }
        return try conv(x)
    }
}
