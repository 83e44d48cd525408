import Tensor

/// diffusers' `UNetMidBlock2D` (unets/unet_2d_blocks.py) as the VAE builds it: `resnets.0`, then per
/// layer an `attentions.N` (one head over all channels, `group_norm`, biased projections, residual
/// connection) and `resnets.N+1`. No time embedding.
public final class UNetMidBlock2D: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Attention>?

    public init(channels: Int, groups: Int, epsilon: Float = 1e-6, layers: Int = 1, addAttention: Bool = true,
                attentionHeadDimension: Int? = nil, outputScaleFactor: Float = 1) {
        let headDimension = attentionHeadDimension ?? channels
        resnets = ModuleList((0...layers).map { _ in
            ResnetBlock2D(inChannels: channels, outChannels: channels, timeEmbeddingChannels: nil, groups: groups,
                          epsilon: epsilon, outputScaleFactor: outputScaleFactor)
        })
        attentions = addAttention ? ModuleList((0..<layers).map { _ in
            Attention(queryDimension: channels, heads: channels / headDimension, dimHead: headDimension, bias: true,
                      normGroups: groups, epsilon: epsilon, residualConnection: true, rescaleOutputFactor: outputScaleFactor)
        }) : nil
        super.init()
        if let attentions { child("attentions", attentions) }
        child("resnets", resnets)
    }

    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = try resnets[0](x, timeEmbedding: nil, context: context)
        for index in 1..<resnets.count {
            if let attentions { hidden = try attentions[index - 1](image: hidden, context: context) }
            hidden = try resnets[index](hidden, timeEmbedding: nil, context: context)
        }
        return hidden
    }
}
