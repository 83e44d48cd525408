import Tensor

/// diffusers' `Encoder` (autoencoders/vae.py): `conv_in` → `down_blocks` (DownEncoderBlock2D, the
/// last without downsampling) → `mid_block` → `conv_norm_out` → SiLU → `conv_out` to
/// 2 × latent channels (mean and log-variance, `double_z`).
public final class VAEEncoder: Module {
    public let convIn: Conv2d
    public let downBlocks: ModuleList<DownEncoderBlock2D>
    public let midBlock: UNetMidBlock2D
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    public init(config: AutoencoderKLConfig) {
        let channels = config.blockOutChannels
        let groups = config.normNumGroups
        convIn = Conv2d(config.inChannels, channels[0], kernelSize: 3, padding: 1)
        downBlocks = ModuleList(channels.indices.map { index in
            DownEncoderBlock2D(inChannels: index == 0 ? channels[0] : channels[index - 1], outChannels: channels[index],
                               layers: config.layersPerBlock, groups: groups,
                               addDownsample: index != channels.count - 1, downsamplePadding: 0)
        })
        midBlock = UNetMidBlock2D(channels: channels.last!, groups: groups, addAttention: config.midBlockAddAttention,
                                  attentionHeadDimension: channels.last!)
        convNormOut = GroupNorm(groups: groups, channels: channels.last!, epsilon: 1e-6)
        convOut = Conv2d(channels.last!, 2 * config.latentChannels, kernelSize: 3, padding: 1)
        super.init()
        child("conv_in", convIn)
        child("down_blocks", downBlocks)
        child("mid_block", midBlock)
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
    }

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = try convIn(x)
        for block in downBlocks { hidden = try block(hidden, context: context) }
        hidden = try midBlock(hidden, context: context)
        return try convOut(convNormOut(hidden).silu())
    }
}
