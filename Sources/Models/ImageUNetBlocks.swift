import Tensor

/// A down block of the image U-Net: diffusers' `CrossAttnDownBlock2D` / `DownBlock2D`
/// (unets/unet_2d_blocks.py) and, with motion modules, `CrossAttnDownBlockMotion` /
/// `DownBlockMotion` (unets/unet_motion_model.py). Per layer `resnets.i` → `attentions.i`
/// (cross-attention blocks) → `motion_modules.i` (motion blocks), each layer's output kept for the
/// skip connections; then the optional `downsamplers.0`, whose output is kept too.
public final class ImageDownBlock: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Transformer2DModel>?
    public let motionModules: ModuleList<TransformerTemporalModel>?
    public let downsamplers: ModuleList<Downsample2D>?

    init(layout: ImageUNetLayout, index: Int) {
        let channels = layout.blockOutChannels[index]
        let input = index == 0 ? channels : layout.blockOutChannels[index - 1]
        let layers = layout.layersPerBlock[index]
        resnets = ModuleList((0..<layers).map { layer in
            ResnetBlock2D(inChannels: layer == 0 ? input : channels, outChannels: channels,
                          timeEmbeddingChannels: layout.timeEmbeddingDimension, groups: layout.normNumGroups,
                          epsilon: layout.normEps)
        })
        attentions = layout.downCrossAttention[index]
            ? ModuleList((0..<layers).map { _ in layout.spatialTransformer(channels: channels, block: index,
                                                                           layers: layout.transformerLayersPerBlock[index]) })
            : nil
        motionModules = layout.motion.map {
            ModuleList($0.modules(layers, channels: channels, block: index, layers: $0.layersPerBlock[index], groups: layout.normNumGroups))
        }
        downsamplers = index < layout.blockOutChannels.count - 1
            ? ModuleList([Downsample2D(channels: channels, padding: layout.downsamplePadding)]) : nil
        super.init()
        child("resnets", resnets)
        if let attentions { child("attentions", attentions) }
        if let motionModules { child("motion_modules", motionModules) }
        if let downsamplers { child("downsamplers", downsamplers) }
    }

    /// Returns the block's output and the states its up-block partner concatenates, in order.
    /// `motion` false skips the motion modules (the image U-Net alone).
    func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext, motion: Bool) throws -> (Tensor, [Tensor]) {
        var hidden = x
        var outputs: [Tensor] = []
        for index in 0..<resnets.count {
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            if let attentions { hidden = try attentions[index](hidden, context: context) }
            if motion, let motionModules { hidden = try motionModules[index](hidden, context: context) }
            outputs.append(hidden)
        }
        if let downsamplers {
            for downsampler in downsamplers { hidden = try downsampler(hidden) }
            outputs.append(hidden)
        }
        return (hidden, outputs)
    }
}

/// The middle block: diffusers' `UNetMidBlock2DCrossAttn` and, with motion modules,
/// `UNetMidBlockCrossAttnMotion`: `resnets.0`, then per layer `attentions.i` →
/// `motion_modules.i` → `resnets.i+1` (the motion module sits between attention and resnet).
public final class ImageMidBlock: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Transformer2DModel>
    public let motionModules: ModuleList<TransformerTemporalModel>?

    init(layout: ImageUNetLayout) {
        let channels = layout.blockOutChannels.last!
        let block = layout.blockOutChannels.count - 1
        resnets = ModuleList((0...layout.midBlockLayers).map { _ in
            ResnetBlock2D(inChannels: channels, outChannels: channels, timeEmbeddingChannels: layout.timeEmbeddingDimension,
                          groups: layout.normNumGroups, epsilon: layout.normEps, outputScaleFactor: layout.midBlockScaleFactor)
        })
        attentions = ModuleList((0..<layout.midBlockLayers).map { _ in
            layout.spatialTransformer(channels: channels, block: block, layers: layout.transformerLayersPerMidBlock)
        })
        if let motion = layout.motion, motion.useMidBlock {
            motionModules = ModuleList(motion.modules(layout.midBlockLayers, channels: channels, block: block,
                                                      layers: motion.layersPerMidBlock, groups: layout.normNumGroups))
        } else {
            motionModules = nil
        }
        super.init()
        child("resnets", resnets)
        child("attentions", attentions)
        if let motionModules { child("motion_modules", motionModules) }
    }

    func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext, motion: Bool) throws -> Tensor {
        var hidden = try resnets[0](x, timeEmbedding: timeEmbedding, context: context)
        for index in 0..<attentions.count {
            hidden = try attentions[index](hidden, context: context)
            if motion, let motionModules { hidden = try motionModules[index](hidden, context: context) }
            hidden = try resnets[index + 1](hidden, timeEmbedding: timeEmbedding, context: context)
        }
        return hidden
    }
}

/// An up block: diffusers' `CrossAttnUpBlock2D` / `UpBlock2D` and, with motion modules,
/// `CrossAttnUpBlockMotion` / `UpBlockMotion`. Per layer the hidden states are concatenated
/// (channels) with the last remaining skip state, then `resnets.i` → `attentions.i` →
/// `motion_modules.i`; then the optional `upsamplers.0`. Up block i (from the bottom) has
/// `layers_per_block + 1` layers; resnet j takes (j == 0 ? the previous block's channels : this
/// block's) + (last layer ? the next-shallower block's : this block's) channels.
public final class ImageUpBlock: Module {
    public let resnets: ModuleList<ResnetBlock2D>
    public let attentions: ModuleList<Transformer2DModel>?
    public let motionModules: ModuleList<TransformerTemporalModel>?
    public let upsamplers: ModuleList<Upsample2D>?

    init(layout: ImageUNetLayout, index: Int) {
        let count = layout.blockOutChannels.count
        let reversed = Array(layout.blockOutChannels.reversed())
        let channels = reversed[index]
        let previous = reversed[max(index - 1, 0)]
        let input = reversed[min(index + 1, count - 1)]
        let block = count - 1 - index
        let layers = layout.layersPerBlock[block] + 1
        resnets = ModuleList((0..<layers).map { layer in
            let skip = layer == layers - 1 ? input : channels
            return ResnetBlock2D(inChannels: (layer == 0 ? previous : channels) + skip, outChannels: channels,
                                 timeEmbeddingChannels: layout.timeEmbeddingDimension, groups: layout.normNumGroups,
                                 epsilon: layout.normEps)
        })
        attentions = layout.upCrossAttention[index]
            ? ModuleList((0..<layers).map { _ in layout.spatialTransformer(channels: channels, block: block,
                                                                           layers: layout.reverseTransformerLayersPerBlock[index]) })
            : nil
        motionModules = layout.motion.map {
            ModuleList($0.modules(layers, channels: channels, block: block, layers: $0.reverseLayersPerBlock[index],
                                  groups: layout.normNumGroups))
        }
        upsamplers = index < count - 1 ? ModuleList([Upsample2D(channels: channels)]) : nil
        super.init()
        child("resnets", resnets)
        if let attentions { child("attentions", attentions) }
        if let motionModules { child("motion_modules", motionModules) }
        if let upsamplers { child("upsamplers", upsamplers) }
    }

    /// `skips`: this block's share of the down path's states, consumed from the end.
    func callAsFunction(_ x: Tensor, skips: [Tensor], timeEmbedding: Tensor, upsampleSize: (height: Int, width: Int)?,
                        context: ForwardContext, motion: Bool) throws -> Tensor {
        var hidden = x
        var remaining = skips
        for index in 0..<resnets.count {
            hidden = try Tensor.concat([hidden, remaining.removeLast()], axis: 1)
            hidden = try resnets[index](hidden, timeEmbedding: timeEmbedding, context: context)
            if let attentions { hidden = try attentions[index](hidden, context: context) }
            if motion, let motionModules { hidden = try motionModules[index](hidden, context: context) }
        }
        if let upsamplers { for upsampler in upsamplers { hidden = try upsampler(hidden, outputSize: upsampleSize) } }
        return hidden
    }
}
