import Tensor

/// The body shared by diffusers' `UNet2DConditionModel` (unets/unet_2d_condition.py) and
/// `UNetMotionModel` (unets/unet_motion_model.py): `conv_in`, `time_proj` + `time_embedding`,
/// `down_blocks`, `mid_block`, `up_blocks`, `conv_norm_out` + SiLU, `conv_out`, with motion
/// modules in the blocks when `layout.motion` is set. A clip's frames go through the image layers
/// as a batch `[B·F, C, H, W]`; only the motion modules look across them.
open class ImageUNet: Module {
    public let layout: ImageUNetLayout
    public let convIn: Conv2d
    public let timeProj: Timesteps
    public let timeEmbedding: TimestepEmbedding
    public let downBlocks: [ImageDownBlock]
    public let midBlock: ImageMidBlock
    public let upBlocks: [ImageUpBlock]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    /// Builds the tree with zero weights (load them with `loadWeights`, or `initializeParameters`).
    public init(layout: ImageUNetLayout) {
        self.layout = layout
        let channels = layout.blockOutChannels
        convIn = Conv2d(layout.inChannels, channels[0], kernelSize: 3, padding: 1)
        timeProj = Timesteps(channels: channels[0], flipSinToCos: true, downscaleFreqShift: 0)
        timeEmbedding = TimestepEmbedding(inChannels: channels[0], timeEmbeddingDimension: layout.timeEmbeddingDimension)
        downBlocks = channels.indices.map { ImageDownBlock(layout: layout, index: $0) }
        midBlock = ImageMidBlock(layout: layout)
        upBlocks = channels.indices.map { ImageUpBlock(layout: layout, index: $0) }
        convNormOut = GroupNorm(groups: layout.normNumGroups, channels: channels[0], epsilon: layout.normEps)
        convOut = Conv2d(channels[0], layout.outChannels, kernelSize: 3, padding: 1)
        super.init()
        child("conv_in", convIn)
        child("time_embedding", timeEmbedding)
        child("down_blocks", ModuleList(downBlocks))
        child("mid_block", midBlock)
        child("up_blocks", ModuleList(upBlocks))
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
        assignAttentionPaths()
    }

    /// Whether the blocks hold motion modules.
    public var hasMotionModules: Bool { layout.motion != nil }

    /// The prediction for `sample` `[B, in_channels, F, H, W]` at `timesteps` (one per clip, or one
    /// for all) given per-clip text states `[B, L, cross_attention_dim]` (repeated for each frame
    /// here, as `AnimateDiffPipeline` does before calling the U-Net); returns `[B, out_channels, F, H, W]`.
    /// `motion` false runs the image layers alone (each frame a picture); with motion modules, F
    /// must not exceed `motion_max_seq_length`.
    func forward(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor, motion: Bool,
                 dropoutGenerator: RandomGenerator?) throws -> (output: Tensor, generator: RandomGenerator?) {
        let name = layout.motion == nil ? "UNet2DConditionModel" : "UNetMotionModel"
        let (batch, channels, frames, height, width) = try checkDenoiserInputs(
            name, sample: sample, inChannels: layout.inChannels, encoderHiddenStates: encoderHiddenStates,
            crossAttentionDim: layout.crossAttentionDim, timesteps: timesteps)
        if let output = try inferInGroups(self, sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                                          dropoutGenerator: dropoutGenerator, {
            try forward(sample: $0, timesteps: $1, encoderHiddenStates: $2, motion: motion, dropoutGenerator: nil).output
        }) { return (output, dropoutGenerator) }
        let useMotion = motion && layout.motion != nil
        if useMotion, let limit = layout.motion?.maxSequenceLength, frames > limit {
            throw ModelError.badInput("\(name): \(frames) frames, but the motion modules cover at most \(limit) (motion_max_seq_length)")
        }
        let upsamplers = layout.blockOutChannels.count - 1
        let forwardUpsampleSize = height % (1 << upsamplers) != 0 || width % (1 << upsamplers) != 0

        // 1. time: one embedding per clip, repeated for each of its frames; likewise the text.
        let steps = timesteps.count == batch ? timesteps : Array(repeating: timesteps[0], count: batch)
        let embedding = try UNet3DConditionModel.repeatInterleave(timeEmbedding(timeProj(steps)), frames)
        let textStates = try UNet3DConditionModel.repeatInterleave(encoderHiddenStates, frames)
        let context = ForwardContext(frames: frames, encoderHiddenStates: textStates, dropoutGenerator: dropoutGenerator)

        // 2. [B, C, F, H, W] → [B·F, C, H, W].
        var hidden = frames == 1
            ? try sample.reshaped([batch, channels, height, width])
            : try sample.permuted([0, 2, 1, 3, 4]).reshaped([batch * frames, channels, height, width])
        hidden = try convIn(hidden)

        // 3. down
        var skips: [Tensor] = [hidden]
        for block in downBlocks {
            let (output, states) = try block(hidden, timeEmbedding: embedding, context: context, motion: useMotion)
            hidden = output
            skips += states
        }

        // 4. mid
        hidden = try midBlock(hidden, timeEmbedding: embedding, context: context, motion: useMotion)

        // 5. up: each block takes as many skip states as it has resnets, from the end.
        for (index, block) in upBlocks.enumerated() {
            let count = block.resnets.count
            let taken = Array(skips.suffix(count))
            skips.removeLast(count)
            var upsampleSize: (height: Int, width: Int)?
            if forwardUpsampleSize, index < upBlocks.count - 1, let next = skips.last {
                upsampleSize = (next.shape[2], next.shape[3])
            }
            hidden = try block(hidden, skips: taken, timeEmbedding: embedding, upsampleSize: upsampleSize,
                               context: context, motion: useMotion)
        }

        // 6. post-process, back to [B, C, F, H, W].
        hidden = try convOut(convNormOut(hidden).silu())
        let output = frames == 1
            ? try hidden.reshaped([batch, layout.outChannels, 1, height, width])
            : try hidden.reshaped([batch, frames, layout.outChannels, height, width]).permuted([0, 2, 1, 3, 4])
        return (output, context.dropoutGenerator)
    }
}
