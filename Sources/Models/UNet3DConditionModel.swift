import Tensor

/// diffusers' `UNet3DConditionModel` (unets/unet_3d_condition.py), the ModelScope text-to-video
/// U-Net: `conv_in`, `time_proj` + `time_embedding`, `transformer_in` (8 heads of
/// `attention_head_dim` over the frames), `down_blocks`, `mid_block`, `up_blocks`,
/// `conv_norm_out` + SiLU, `conv_out`. Between blocks the states stay `[B·F, C, H, W]`, as in diffusers.
public final class UNet3DConditionModel: Module {
    public let config: UNet3DConfig
    public let convIn: Conv2d
    public let timeProj: Timesteps
    public let timeEmbedding: TimestepEmbedding
    public let transformerIn: TransformerTemporalModel
    public let downBlocks: [UNet3DDownBlock]
    public let midBlock: UNetMidBlock3DCrossAttn
    public let upBlocks: [UNet3DUpBlock]
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    /// Builds the model with zero weights (load them with `loadWeights`); throws `badConfig` for
    /// layouts this implementation does not support.
    public init(config: UNet3DConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        let channels = config.blockOutChannels
        let groups = config.normNumGroups!
        let epsilon = config.normEps
        let heads = config.blockHeadParameters
        let timeEmbeddingDimension = channels[0] * 4
        let crossDimension = config.crossAttentionDim

        convIn = Conv2d(config.inChannels, channels[0], kernelSize: 3, padding: 1)
        timeProj = Timesteps(channels: channels[0], flipSinToCos: true, downscaleFreqShift: 0)
        timeEmbedding = TimestepEmbedding(inChannels: channels[0], timeEmbeddingDimension: timeEmbeddingDimension)
        transformerIn = TransformerTemporalModel(heads: 8, headDimension: heads[0], inChannels: channels[0], normGroups: groups)

        var down: [UNet3DDownBlock] = []
        for (index, type) in config.downBlockTypes.enumerated() {
            let input = index == 0 ? channels[0] : channels[index - 1]
            let isFinal = index == channels.count - 1
            if type == "CrossAttnDownBlock3D" {
                down.append(.crossAttention(CrossAttnDownBlock3D(
                    inChannels: input, outChannels: channels[index], timeEmbeddingChannels: timeEmbeddingDimension,
                    layers: config.layersPerBlock, groups: groups, epsilon: epsilon, headParameter: heads[index],
                    crossAttentionDimension: crossDimension, addDownsample: !isFinal,
                    downsamplePadding: config.downsamplePadding)))
            } else {
                down.append(.plain(DownBlock3D(
                    inChannels: input, outChannels: channels[index], timeEmbeddingChannels: timeEmbeddingDimension,
                    layers: config.layersPerBlock, groups: groups, epsilon: epsilon, addDownsample: !isFinal,
                    downsamplePadding: config.downsamplePadding)))
            }
        }
        downBlocks = down

        midBlock = UNetMidBlock3DCrossAttn(channels: channels.last!, timeEmbeddingChannels: timeEmbeddingDimension,
                                           groups: groups, epsilon: epsilon, headParameter: heads.last!,
                                           crossAttentionDimension: crossDimension,
                                           outputScaleFactor: config.midBlockScaleFactor)

        let reversedChannels = Array(channels.reversed())
        let reversedHeads = Array(heads.reversed())
        var up: [UNet3DUpBlock] = []
        var outputChannels = reversedChannels[0]
        for (index, type) in config.upBlockTypes.enumerated() {
            let isFinal = index == channels.count - 1
            let previousOutput = outputChannels
            outputChannels = reversedChannels[index]
            let input = reversedChannels[min(index + 1, channels.count - 1)]
            if type == "CrossAttnUpBlock3D" {
                up.append(.crossAttention(CrossAttnUpBlock3D(
                    inChannels: input, outChannels: outputChannels, previousOutputChannels: previousOutput,
                    timeEmbeddingChannels: timeEmbeddingDimension, layers: config.layersPerBlock + 1, groups: groups,
                    epsilon: epsilon, headParameter: reversedHeads[index], crossAttentionDimension: crossDimension,
                    addUpsample: !isFinal)))
            } else {
                up.append(.plain(UpBlock3D(
                    inChannels: input, outChannels: outputChannels, previousOutputChannels: previousOutput,
                    timeEmbeddingChannels: timeEmbeddingDimension, layers: config.layersPerBlock + 1, groups: groups,
                    epsilon: epsilon, addUpsample: !isFinal)))
            }
        }
        upBlocks = up

        convNormOut = GroupNorm(groups: groups, channels: channels[0], epsilon: epsilon)
        convOut = Conv2d(channels[0], config.outChannels, kernelSize: 3, padding: 1)
        super.init()
        child("conv_in", convIn)
        child("time_embedding", timeEmbedding)
        child("transformer_in", transformerIn)
        child("down_blocks", ModuleList(downBlocks.map(\.module)))
        child("mid_block", midBlock)
        child("up_blocks", ModuleList(upBlocks.map(\.module)))
        child("conv_norm_out", convNormOut)
        child("conv_out", convOut)
        assignAttentionPaths()
    }

    /// The noise prediction for `sample` `[B, in_channels, F, H, W]` at `timesteps` (one per batch
    /// item, or one for all) given `encoderHiddenStates` `[B, L, cross_attention_dim]`; returns
    /// `[B, out_channels, F, H, W]`. Inference mode: dropout inactive.
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor) throws -> Tensor {
        try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates, dropoutGenerator: nil).output
    }

    /// Training mode: the temporal convolutions' dropout (p = 0.1, as diffusers) draws from `dropoutGenerator`.
    public func callAsFunction(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                               dropoutGenerator: inout RandomGenerator) throws -> Tensor {
        let result = try forward(sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                                 dropoutGenerator: dropoutGenerator)
        dropoutGenerator = result.generator!
        return result.output
    }

    func forward(sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                 dropoutGenerator: RandomGenerator?) throws -> (output: Tensor, generator: RandomGenerator?) {
        let (batch, _, frames, height, width) = try checkDenoiserInputs(
            "UNet3D", sample: sample, inChannels: config.inChannels, encoderHiddenStates: encoderHiddenStates,
            crossAttentionDim: config.crossAttentionDim, timesteps: timesteps)
        // conv_in and transformer_in read neither the text nor the timestep.
        if let output = try inferSharingInputStates(self, sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                dropoutGenerator: dropoutGenerator,
                inputStates: { try self.inputStates($0, context: ForwardContext(frames: frames)) },
                rest: { states, steps, text in
                    try self.denoise(states, batch: 1, frames: frames, height: height, width: width, timesteps: steps,
                                     context: self.context(text: text, frames: frames, dropoutGenerator: nil))
                }) {
            return (output, dropoutGenerator)
        }
        if let output = try inferInGroups(self, sample: sample, timesteps: timesteps, encoderHiddenStates: encoderHiddenStates,
                                          dropoutGenerator: dropoutGenerator, {
            try forward(sample: $0, timesteps: $1, encoderHiddenStates: $2, dropoutGenerator: nil).output
        }) { return (output, dropoutGenerator) }
        let context = try context(text: encoderHiddenStates, frames: frames, dropoutGenerator: dropoutGenerator)
        let hidden = try inputStates(sample, context: context)
        let output = try denoise(hidden, batch: batch, frames: frames, height: height, width: width, timesteps: timesteps, context: context)
        return (output, context.dropoutGenerator)
    }

    /// The context of a pass over clips with text `[B, L, D]`: the text repeated for each frame.
    private func context(text: Tensor, frames: Int, dropoutGenerator: RandomGenerator?) throws -> ForwardContext {
        ForwardContext(frames: frames, encoderHiddenStates: try UNet3DConditionModel.repeatInterleave(text, frames),
                       dropoutGenerator: dropoutGenerator)
    }

    /// `sample` `[B, C, F, H, W]` → `[B·F, C, H, W]`, then conv_in and transformer_in: the states the
    /// down blocks start from, which depend on nothing but the sample.
    private func inputStates(_ sample: Tensor, context: ForwardContext) throws -> Tensor {
        let (batch, channels, frames, height, width) = (sample.shape[0], sample.shape[1], sample.shape[2], sample.shape[3], sample.shape[4])
        let hidden = try convIn(sample.permuted([0, 2, 1, 3, 4]).reshaped([batch * frames, channels, height, width]))
        return try transformerIn(hidden, context: context)
    }

    /// The rest of the forward pass from `inputStates`' result `[batch·frames, C, H, W]`: the time
    /// embedding, down, mid and up blocks and conv_out, back to `[batch, out_channels, frames, H, W]`.
    private func denoise(_ states: Tensor, batch: Int, frames: Int, height: Int, width: Int, timesteps: [Float],
                         context: ForwardContext) throws -> Tensor {
        // Sides that are not multiples of 2^upsamplers: each upsampler resizes to its skip's size (diffusers).
        let upsamplers = config.blockOutChannels.count - 1
        let forwardUpsampleSize = height % (1 << upsamplers) != 0 || width % (1 << upsamplers) != 0

        // 1. time: one embedding per clip, repeated for each of its frames.
        let steps = timesteps.count == batch ? timesteps : Array(repeating: timesteps[0], count: batch)
        let embedding = try UNet3DConditionModel.repeatInterleave(timeEmbedding(timeProj(steps)), frames)

        // 2. down (the pre-processing is `inputStates`).
        var hidden = states
        var skips: [Tensor] = [hidden]
        for block in downBlocks {
            let (output, states) = try block(hidden, timeEmbedding: embedding, context: context)
            hidden = output
            skips += states
        }

        // 3. mid
        hidden = try midBlock(hidden, timeEmbedding: embedding, context: context)

        // 4. up: each block takes as many skip states as it has resnets, from the end.
        for (index, block) in upBlocks.enumerated() {
            let taken = Array(skips.suffix(block.resnetCount))
            skips.removeLast(block.resnetCount)
            var upsampleSize: (height: Int, width: Int)?
            if forwardUpsampleSize, index < upBlocks.count - 1, let next = skips.last {
                upsampleSize = (next.shape[2], next.shape[3])
            }
            hidden = try block(hidden, skips: taken, timeEmbedding: embedding, upsampleSize: upsampleSize, context: context)
        }

        // 5. post-process, back to [B, C, F, H, W].
        hidden = try convOut(convNormOut(hidden).silu())
        return try hidden.reshaped([batch, frames, config.outChannels, height, width]).permuted([0, 2, 1, 3, 4])
    }

    /// torch.repeat_interleave along axis 0: each row repeated `times` times in place.
    static func repeatInterleave(_ x: Tensor, _ times: Int) throws -> Tensor {
        if times == 1 { return x }
        let rest = Array(x.shape.dropFirst())
        let expanded = try x.reshaped([x.shape[0], 1] + rest)
            .repeated([1, times] + Array(repeating: 1, count: rest.count))
        return try expanded.reshaped([x.shape[0] * times] + rest)
    }
}

/// A down block of `UNet3DConditionModel`: with or without cross-attention.
public enum UNet3DDownBlock {
    case crossAttention(CrossAttnDownBlock3D)
    case plain(DownBlock3D)

    public var module: Module {
        switch self {
        case .crossAttention(let block): return block
        case .plain(let block): return block
        }
    }

    func callAsFunction(_ x: Tensor, timeEmbedding: Tensor, context: ForwardContext) throws -> (Tensor, [Tensor]) {
        switch self {
        case .crossAttention(let block): return try block(x, timeEmbedding: timeEmbedding, context: context)
        case .plain(let block): return try block(x, timeEmbedding: timeEmbedding, context: context)
        }
    }
}

/// An up block of `UNet3DConditionModel`: with or without cross-attention.
public enum UNet3DUpBlock {
    case crossAttention(CrossAttnUpBlock3D)
    case plain(UpBlock3D)

    public var module: Module {
        switch self {
        case .crossAttention(let block): return block
        case .plain(let block): return block
        }
    }

    var resnetCount: Int {
        switch self {
        case .crossAttention(let block): return block.resnets.count
        case .plain(let block): return block.resnets.count
        }
    }

    func callAsFunction(_ x: Tensor, skips: [Tensor], timeEmbedding: Tensor, upsampleSize: (height: Int, width: Int)?,
                        context: ForwardContext) throws -> Tensor {
        switch self {
        case .crossAttention(let block):
            return try block(x, skips: skips, timeEmbedding: timeEmbedding, upsampleSize: upsampleSize, context: context)
        case .plain(let block):
            return try block(x, skips: skips, timeEmbedding: timeEmbedding, upsampleSize: upsampleSize, context: context)
        }
    }
}
