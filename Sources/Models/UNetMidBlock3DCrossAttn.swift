import Tensor

/// diffusers' `UNetMidBlock3DCrossAttn` (unets/unet_3d_blocks.py): `resnets.0` → `temp_convs.0`,
/// then per layer `attentions.i` → `temp_attentions.i` → `resnets.i+1` → `temp_convs.i+1`.
public final class UNetMidBlock3DCrossAttn: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let tempConvs: ModuleList<TemporalConvLayer>
    public let attentions: ModuleList<Transformer2DModel>
    public let tempAttentions: ModuleList<TransformerTemporalModel>

    public init(channels: Int, timeEmbeddingChannels: Int, layers: Int = 1, groups: Int, epsilon: Float,
                headParameter nh: Int, crossAttentionDimension: Int, outputScaleFactor: Float) {
        resnets = ModuleList((0...layers).map { _ in
            ResnetBlock2D(inChannels: channels, outChannels: channels, timeEmbeddingChannels: timeEmbeddingChannels,
                          groups: groups, epsilon: epsilon, outputScaleFactor: outputScaleFactor)
        })
        tempConvs = ModuleList((0...layers).map { _ in
            TemporalConvLayer(inChannels: channels, outChannels: channels, dropout: 0.1, normGroups: groups)
        })
        attentions = ModuleList((0..<layers).map { _ in
            Transformer2DModel(heads: channels / nh, headDimension: nh, inChannels: channels, normGroups: groups,
                               crossAttentionDimension: crossAttentionDimension, useLinearProjection: true)
        })
        tempAttentions = ModuleList((0..<layers).map { _ in
            TransformerTemporalModel(heads: channels / nh, headDimension: nh, inChannels: channels, normGroups: groups)
        })
        super.init()
        child("resnets", resnets)
        child("temp_convs", tempConvs)
        child("attentions", attentions)
        child("temp_attentions", tempAttentions)
    }

    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = try resnets[0](x, timeEmbedding: timeEmbedding, context: context)
        hidden = try tempConvs[0](hidden, context: context)
        for index in 0..<attentions.count {
            hidden = try attentions[index](hidden, context: context)
            hidden = try tempAttentions[index](hidden, context: context)
            hidden = try resnets[index + 1](hidden, timeEmbedding: timeEmbedding, context: context)
            hidden = try tempConvs[index + 1](hidden, context: context)
        }
        return hidden
    }
}
