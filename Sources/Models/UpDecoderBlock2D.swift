import Tensor

/// diffusers' `UpDecoderBlock2D` (unets/unet_2d_blocks.py): `resnets` without time embedding, then
/// an optional `upsamplers.0` (nearest ×2 + conv).
public final class UpDecoderBlock2D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let upsamplers: ModuleList<Upsample2D>?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, epsilon: Float = 1e-6, addUpsample: Bool) {
        resnets = ModuleList((0..<layers).map { index in
            ResnetBlock2D(inChannels: index == 0 ? inChannels : outChannels, outChannels: outChannels,
                          timeEmbeddingChannels: nil, groups: groups, epsilon: epsilon)
        })
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outChannels)]) : nil
        super.init()
        child("resnets", resnets)
        if let upsamplers { child("upsamplers", upsamplers) }
    }

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = x
        for resnet in resnets { hidden = try resnet(hidden, timeEmbedding: nil, context: context) }
        if let upsamplers { for upsampler in upsamplers { hidden = try upsampler(hidden) } }
        return hidden
    }
}
