import Tensor

/// diffusers' `CrossAttnUpBlock3D` (unets/unet_3d_blocks.py): per layer the hidden states are
/// concatenated (channels) with the last remaining skip state, then `resnets.i` → `temp_convs.i` →
/// `attentions.i` → `temp_attentions.i`; then the optional `upsamplers.0`. Resnet i takes
/// (i == 0 ? prev_output_channel : out_channels) + (last layer ? in_channels : out_channels) channels.
public final class CrossAttnUpBlock3D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let tempConvs: ModuleList<TemporalConvLayer>
    public let attentions: ModuleList<Transformer2DModel>
    public let tempAttentions: ModuleList<TransformerTemporalModel>
    public let upsamplers: ModuleList<Upsample2D>?

    public init(inChannels: Int, outChannels: Int, previousOutputChannels: Int, timeEmbeddingChannels: Int, layers: Int,
                groups: Int, epsilon: Float, headParameter nh: Int, crossAttentionDimension: Int, addUpsample: Bool) {
        resnets = ModuleList((0..<layers).map { index in
            let skipChannels = index == layers - 1 ? inChannels : outChannels
            let resnetInChannels = index == 0 ? previousOutputChannels : outChannels
            return ResnetBlock2D(inChannels: resnetInChannels + skipChannels, outChannels: outChannels,
                                 timeEmbeddingChannels: timeEmbeddingChannels, groups: groups, epsilon: epsilon)
        })
        tempConvs = ModuleList((0..<layers).map { _ in
            TemporalConvLayer(inChannels: outChannels, outChannels: outChannels, dropout: 0.1, normGroups: groups)
        })
        attentions = ModuleList((0..<layers).map { _ in
            Transformer2DModel(heads: outChannels / nh, headDimension: nh, inChannels: outChannels, normGroups: groups,
                               crossAttentionDimension: crossAttentionDimension, useLinearProjection: true)
        })
        tempAttentions = ModuleList((0..<layers).map { _ in
            TransformerTemporalModel(heads: outChannels / nh, headDimension: nh, inChannels: outChannels, normGroups: groups)
        })
        upsamplers = addUpsample ? ModuleList([Upsample2D(channels: outChannels)]) : nil
        super.init()
        child("resnets", resnets)
        child("temp_convs", tempConvs)
        child("attentions", attentions)
        child("temp_attentions", tempAttentions)
        if let upsamplers { child("upsamplers", upsamplers) }
    }

    /// `skips`: this block's share of the down path's states, consumed from the end.
    public func callAsFunction(_ x: Tensor, skips: [Tensor], timeEmbedding: Tensor, upsampleSize: (height: Int, width: Int)? = nil,
                               context: ForwardContext) throws -> Tensor {
        var hidden = x
        var remaining = skips
        for index in 0..<resnets.count {
            hidden = try Tensor.concat([hidden, remaining.removeLast()], axis: 1)
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            hidden = try tempConvs[index](hidden, context: context)
            hidden = try attentions[index](hidden, context: context)
            hidden = try tempAttentions[index](hidden, context: context)
        }
        if let upsamplers { for upsampler in upsamplers { hidden = try upsampler(hidden, outputSize: upsampleSize) } }
        return hidden
    }
}
