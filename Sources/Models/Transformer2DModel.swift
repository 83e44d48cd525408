import Tensor

/// diffusers' `Transformer2DModel` (transformers/transformer_2d.py) for continuous input:
/// `norm` (GroupNorm, eps 1e-6) → `proj_in` → `transformer_blocks` over the pixels as tokens →
/// `proj_out` → + residual. `proj_in`/`proj_out` are Linear with `use_linear_projection` (what
/// UNet3DConditionModel's blocks receive from `get_down_block`'s default) and 1×1 Conv2d otherwise.
public final class Transformer2DModel: Module {
    public let heads: Int
    public let headDimension: Int
    public let inChannels: Int
    public let useLinearProjection: Bool
    public let norm: GroupNorm
    public let projIn: Module
    public let transformerBlocks: ModuleList<BasicTransformerBlock>
    public let projOut: Module

    public init(heads: Int, headDimension: Int, inChannels: Int, layers: Int = 1, normGroups: Int = 32,
                crossAttentionDimension: Int?, useLinearProjection: Bool, attentionBias: Bool = false) {
        self.heads = heads
        self.headDimension = headDimension
        self.inChannels = inChannels
        self.useLinearProjection = useLinearProjection
        let inner = heads * headDimension
        norm = GroupNorm(groups: normGroups, channels: inChannels, epsilon: 1e-6)
        projIn = useLinearProjection ? Linear(inChannels, inner) : Conv2d(inChannels, inner, kernelSize: 1)
        transformerBlocks = ModuleList((0..<layers).map { _ in
            BasicTransformerBlock(dimension: inner, heads: heads, headDimension: headDimension,
                                  crossAttentionDimension: crossAttentionDimension, attentionBias: attentionBias)
        })
        projOut = useLinearProjection ? Linear(inner, inChannels) : Conv2d(inner, inChannels, kernelSize: 1)
        super.init()
        child("norm", norm)
        child("proj_in", projIn)
        child("transformer_blocks", transformerBlocks)
        child("proj_out", projOut)
    }

    /// `hiddenStates` `[N, C, H, W]` (N = batch·frames); cross-attention reads `context.encoderHiddenStates`.
    public func callAsFunction(_ hiddenStates: Tensor, context: ForwardContext) throws -> Tensor {
        let (batch, channels, height, width) = (hiddenStates.shape[0], hiddenStates.shape[1], hiddenStates.shape[2], hiddenStates.shape[3])
        let normed = try norm(hiddenStates)
        if !GradMode.isEnabled, let (inWeight, inBias) = try plainProjection(projIn),
           let (outWeight, outBias) = try plainProjection(projOut) {
            // Inference: the same computation without the two transposes (Tensor.projectChannelMajor).
            var tokens = try Tensor.projectChannelMajor(normed, frames: 1, weight: inWeight, bias: inBias, order: .frameMajor)
                .reshaped([batch, height * width, inWeight.shape[0]])
            for block in transformerBlocks {
                tokens = try block(tokens, encoderHiddenStates: context.encoderHiddenStates, context: context)
            }
            return try Tensor.projectToChannelMajor(tokens, frames: 1, weight: outWeight, bias: outBias,
                                                    residual: hiddenStates, order: .frameMajor)
        }
        var tokens: Tensor
        if let linear = projIn as? Linear {
            tokens = try linear(normed.reshaped([batch, channels, height * width]).transposed(1, 2))
        } else {
            let projected = try (projIn as! Conv2d)(normed)
            tokens = try projected.reshaped([batch, projected.shape[1], height * width]).transposed(1, 2)
        }
        for block in transformerBlocks {
            tokens = try block(tokens, encoderHiddenStates: context.encoderHiddenStates, context: context)
        }
        let output: Tensor
        if let linear = projOut as? Linear {
            let projected = try linear(tokens)
            output = try projected.transposed(1, 2).reshaped([batch, projected.shape[2], height, width])
        } else {
            let image = try tokens.transposed(1, 2).reshaped([batch, tokens.shape[2], height, width])
            output = try (projOut as! Conv2d)(image)
        }
        return try output + hiddenStates
    }

    /// A projection's `[out, in]` weight and bias where it has no adapter deltas (Linear, or a 1×1 Conv2d's
    /// weight viewed as a matrix); nil where it has some.
    private func plainProjection(_ module: Module) throws -> (Tensor, Tensor?)? {
        if let linear = module as? Linear {
            return linear.deltas.isEmpty ? (linear.weight, linear.bias) : nil
        }
        let conv = module as! Conv2d
        return conv.deltas.isEmpty ? (try conv.weight.reshaped([conv.weight.shape[0], conv.weight.shape[1]]), conv.bias) : nil
    }
}
