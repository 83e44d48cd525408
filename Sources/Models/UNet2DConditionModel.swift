import Tensor

/// diffusers' `UNet2DConditionModel` (unets/unet_2d_condition.py): Stable Diffusion's image U-Net,
/// the image half of AnimateDiff. Blocks `CrossAttnDownBlock2D`, `DownBlock2D`,
/// `UNetMidBlock2DCrossAttn`, `UpBlock2D`, `CrossAttnUpBlock2D`. A clip's frames are denoised as
/// independent pictures.
public final class UNet2DConditionModel: ImageUNet {
    public let config: UNet2DConditionConfig

    /// Builds the model with zero weights; throws `badConfig` for layouts not supported here.
    public init(config: UNet2DConditionConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        super.init(layout: config.layout)
    }

    /// diffusers' call: `sample` `[B, in_channels, H, W]`, `encoderHiddenStates` `[B, L, D]`; returns `[B, out_channels, H, W]`.
    public func callAsFunction(image sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        guard sample.rank == 4 else {
            throw ModelError.badInput("UNet2DConditionModel: sample must be [batch, \(layout.inChannels), height, width], got \(sample.shape)")
        }
        let (batch, channels, height, width) = (sample.shape[0], sample.shape[1], sample.shape[2], sample.shape[3])
        let output = try forward(sample: sample.reshaped([batch, channels, 1, height, width]), timesteps: timesteps,
                                 encoderHiddenStates: encoderHiddenStates, motion: false, dropoutGenerator: nil).output
        return try output.reshaped([batch, layout.outChannels, height, width])
    }

    /// A clip `[B, in_channels, F, H, W]`, every frame denoised as a picture; returns `[B, out_channels, F, H, W]`.
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, motion: false,
                    dropoutGenerator: nil).output
    }
}
