import Tensor

/// diffusers' `CrossAttnDownBlock3D` (unets/unet_3d_blocks.py): per layer `resnets.i` →
/// `temp_convs.i` → `attentions.i` (Transformer2DModel) → `temp_attentions.i`
/// (TransformerTemporalModel), each layer's output kept for the skip connections; then the optional
/// `downsamplers.0`, whose output is kept too. Both transformers get `C / nh` heads of `nh`
/// channels (diffusers passes `out_channels // num_attention_heads` as the head count).
public final class CrossAttnDownBlock3D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let tempConvs: ModuleList<TemporalConvLayer>
    public let attentions: ModuleList<Transformer2DModel>
    public let tempAttentions: ModuleList<TransformerTemporalModel>
    public let downsamplers: ModuleList<Downsample2D>?

    public init(inChannels: Int, outChannels: Int, timeEmbeddingChannels: Int, layers: Int, groups: Int, epsilon: Float,
                headParameter nh: Int, crossAttentionDimension: Int, addDownsample: Bool, downsamplePadding: Int) {
        resnets = ModuleList((0..<layers).map { index in
            ResnetBlock2D(inChannels: index == 0 ? inChannels : outChannels, outChannels: outChannels,
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
        downsamplers = addDownsample
            ? ModuleList([Downsample2D(channels: outChannels, padding: downsamplePadding)]) : nil
        super.init()
        child("resnets", resnets)
        child("temp_convs", tempConvs)
        child("attentions", attentions)
        child("temp_attentions", tempAttentions)
        if let downsamplers { child("downsamplers", downsamplers) }
    }

    /// Returns the block's output and the states its up-block partner concatenates, in order.
    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext) throws -> (Tensor, [Tensor]) {
        var hidden = x
        var outputs: [Tensor] = []
        for index in 0..<resnets.count {
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            hidden = try tempConvs[index](hidden, context: context)
            hidden = try attentions[index](hidden, context: context)
            hidden = try tempAttentions[index](hidden, context: context)
            outputs.append(hidden)
        }
        if let downsamplers {
            for downsampler in downsamplers { hidden = try downsampler(hidden) }
            outputs.append(hidden)
        }
        return (hidden, outputs)
    }
}
