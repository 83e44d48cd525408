import Tensor

/// diffusers' `DownBlock3D` (unets/unet_3d_blocks.py): per layer `resnets.i` → `temp_convs.i`,
/// each output kept for the skip connections, then the optional `downsamplers.0`.
public final class DownBlock3D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let tempConvs: ModuleList<TemporalConvLayer>
    public let downsamplers: ModuleList<Downsample2D>?

    public init(inChannels: Int, outChannels: Int, timeEmbeddingChannels: Int, layers: Int, groups: Int, epsilon: Float,
                addDownsample: Bool, downsamplePadding: Int) {
        resnets = ModuleList((0..<layers).map { index in
            ResnetBlock2D(inChannels: index == 0 ? inChannels : outChannels, outChannels: outChannels,
                          timeEmbeddingChannels: timeEmbeddingChannels, groups: groups, epsilon: epsilon)
        })
        tempConvs = ModuleList((0..<layers).map { _ in
            TemporalConvLayer(inChannels: outChannels, outChannels: outChannels, dropout: 0.1, normGroups: groups)
        })
        downsamplers = addDownsample
            ? ModuleList([Downsample2D(channels: outChannels, padding: downsamplePadding)]) : nil
        super.init()
        child("resnets", resnets)
        child("temp_convs", tempConvs)
        if let downsamplers { child("downsamplers", downsamplers) }
    }

    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext) throws -> (Tensor, [Tensor]) {
        var hidden = x
        var outputs: [Tensor] = []
        for index in 0..<resnets.count {
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            hidden = try tempConvs[index](hidden, context: context)
            outputs.append(hidden)
        }
        if let downsamplers {
            for downsampler in downsamplers { hidden = try downsampler(hidden) }
            outputs.append(hidden)
        }
        return (hidden, outputs)
    }
}
