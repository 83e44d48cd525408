import Tensor

/// diffusers' `UpBlock3D` (unets/unet_3d_blocks.py): per layer concatenate the last remaining skip
/// state, `resnets.i` → `temp_convs.i`; then the optional `upsamplers.0`. Channel arithmetic as
/// in `CrossAttnUpBlock3D`.
public final class UpBlock3D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let tempConvs: ModuleList<TemporalConvLayer>
    public let upsamplers: ModuleList<Upsample2D>?

    public init(inChannels: Int, outChannels: Int, previousOutputChannels: Int, timeEmbeddingChannels: Int, layers: Int,
                groups: Int, epsilon: Float, addUpsample: Bool) {
        resnets = ModuleList((0..<layers).map { index in
            let skipChannels = index == layers - 1 ? inChannels : outChannels
            let resnetInChannels = index == 0 ? previousOutputChannels : outChannels
            return ResnetBlock2D(inChannels: resnetInChannels + skipChannels, outChannels: outChannels,
                                 timeEmbeddingChannels: timeEmbeddingChannels, groups: groups, epsilon: epsilon)
        })
        tempConvs = ModuleList((0..<layers).map { _ in
            TemporalConvLayer(inChannels: outChannels, outChannels: outChannels, dropout: 0.1, normGroups: groups)
        })
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outChannels)]) : nil
        super.init()
        child("resnets", resnets)
        child("temp_convs", tempConvs)
        if let upsamplers { child("upsamplers", upsamplers) }
    }

    public func callAsFunction(_ x: Tensor, skips: [Tensor], timeEmbedding: Tensor, upsampleSize: (height: Int, width: Int)? = nil,
                               context: ForwardContext) throws -> Tensor {
        var hidden = x
        var remaining = skips
        for index in 0..<resnets.count {
            hidden = try Tensor.concat([hidden, remaining.removeLast()], axis: 1)
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            hidden = try tempConvs[index](hidden, context: context)
        }
        if let upsamplers { for upsampler in upsamplers { hidden = try upsampler(hidden, outputSize: upsampleSize) } }
        return hidden
    }
}
