import Tensor

/// diffusers' `Decoder` (autoencoders/vae.py, `norm_type="group"`): `conv_in` → `mid_block` →
/// `up_blocks` (UpDecoderBlock2D with layers_per_block + 1 resnets, the last without upsampling)
/// → `conv_norm_out` → SiLU → `conv_out`.
public final class VAEDecoder: Module {
    public let convIn: Conv2d
    public let midBlock: UNetMidBlock2D
    public let upBlocks: ModuleList<UpDecoderBlock2D>
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    public init(config: AutoencoderKLConfig) {
        let reversed = Array(config.blockOutChannels.reversed())
        let groups = config.normNumGroups
        convIn = Conv2d(config.latentChannels, reversed[0], kernelSize: 3, padding: 1)
        midBlock = UNetMidBlock2D(channels: reversed[0], groups: groups, addAttention: config.midBlockAddAttention,
                                  attentionHeadDimension: reversed[0])
        upBlocks = ModuleList(reversed.indices.map { index in
            UpDecoderBlock2D(inChannels: index == 0 ? reversed[0] : reversed[index - 1], outChannels: reversed[index],
                             layers: config.layersPerBlock + 1, groups: groups, addUpsample: index != reversed.count - 1)
        })
        convNormOut = GroupNorm(groups: groups, channels: reversed.last!, epsilon: 1e-6)
        convOut = Conv2d(reversed.last!, config.outChannels, kernelSize: 3, padding: 1)
        super.init()
        child("conv_in", convIn)
        child("mid_block", midBlock)
        child("up_blocks", upBlocks)
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
    }

    public func callAsFunction(_ z: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = try midBlock(convIn(z), context: context)
        for block in upBlocks { hidden = try block(hidden, context: context) }
        return try convOut(convNormOut(hidden).silu())
    }
}
