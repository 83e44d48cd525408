import Tensor

/// diffusers' `DownEncoderBlock2D` (unets/unet_2d_blocks.py): `resnets` without time embedding,
/// then an optional `downsamplers.0` (the VAE passes padding 0: asymmetric pad, stride-2 conv).
public final class DownEncoderBlock2D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let downsamplers: ModuleList<Downsample2D>?

    public init(inChannels: Int, outChannels: Int, layers: Int, groups: Int, epsilon: Float = 1e-6,
                addDownsample: Bool, downsamplePadding: Int) {
        resnets = ModuleList((0..<layers).map { index in
            ResnetBlock2D(inChannels: index == 0 ? inChannels : outChannels, outChannels: outChannels,
                          timeEmbeddingChannels: nil, groups: groups, epsilon: epsilon)
        })
        downsamplers = addDownsample ? ModuleList([Downsample2D(channels: outChannels, padding: downsamplePadding)]) : nil
        super.init()
        child("resnets", resnets)
        if let downsamplers { child("downsamplers", downsamplers) }
    }

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = x
        for resnet in resnets { hidden = try resnet(hidden, timeEmbedding: nil, context: context) }
        if let downsamplers { for downsampler in downsamplers { hidden = try downsampler(hidden) } }
        return hidden
    }
}
