import Tensor

/// diffusers' `TemporalConvLayer` (resnet.py, from ModelScope): four stages over the frames of
/// each clip, each an `nn.Sequential` of GroupNorm, SiLU, (Dropout,) Conv3d with kernel (3, 1, 1),
/// plus the identity. Keys: `conv1.0` (GroupNorm), `conv1.2` (Conv3d); `convN.0`, `convN.3` for
/// N = 2…4. diffusers zero-initialises conv4's convolution, so a fresh layer is the identity.
public final class TemporalConvLayer: Module {
    public let stages: [TemporalConvStage]

    public init(inChannels: Int, outChannels: Int? = nil, dropout: Float = 0, normGroups: Int = 32) {
        let outChannels = outChannels ?? inChannels
        stages = [
            TemporalConvStage(inChannels: inChannels, outChannels: outChannels, normGroups: normGroups, dropout: nil),
            TemporalConvStage(inChannels: outChannels, outChannels: inChannels, normGroups: normGroups, dropout: dropout),
            TemporalConvStage(inChannels: outChannels, outChannels: inChannels, normGroups: normGroups, dropout: dropout),
            TemporalConvStage(inChannels: outChannels, outChannels: inChannels, normGroups: normGroups, dropout: dropout),
        ]
        super.init()
        for (index, stage) in stages.enumerated() { child("conv\(index + 1)", stage) }
    }

    /// `x` `[B·F, C, H, W]` with F = `context.frames` → same shape.
    public func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        let (batchFrames, channels, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let frames = context.frames
        guard frames >= 1, batchFrames % frames == 0 else {
            throw ModelError.badInput("temporal convolution: batch \(batchFrames) is not a multiple of \(frames) frames")
        }
        let identity = try x.reshaped([batchFrames / frames, frames, channels, height, width]).permuted([0, 2, 1, 3, 4])
        var hidden = identity
        for stage in stages { hidden = try stage(hidden, context: context) }
        let sum = try identity + hidden
        return try sum.permuted([0, 2, 1, 3, 4]).reshaped([batchFrames, sum.shape[1], height, width])
    }
}

/// One `nn.Sequential(GroupNorm, SiLU, [Dropout], Conv3d)` of `TemporalConvLayer`, children named
/// by their Sequential index ("0" the norm, "2" or "3" the convolution).
public final class TemporalConvStage: Module {
    public let norm: GroupNorm
    let dropout: Dropout?
    public let conv: Conv3dTemporal

    init(inChannels: Int, outChannels: Int, normGroups: Int, dropout: Float?) {
        // nn.GroupNorm's default epsilon: TemporalConvLayer does not pass one.
        norm = GroupNorm(groups: normGroups, channels: inChannels, epsilon: 1e-5)
        self.dropout = dropout.map { Dropout($0) }
        conv = Conv3dTemporal(inChannels, outChannels, kernelFrames: 3)
        super.init()
        child("0", norm)
        if let d = self.dropout {
            child("2", d)
            child("3", conv)
        } else {
            child("2", conv)
        }
    }

    /// `x` `[B, C, F, H, W]`.
    func callAsFunction(_ x: Tensor, context: ForwardContext) throws -> Tensor {
        var hidden = try norm(x).silu()
        if let dropout { hidden = try dropout(hidden, context: context) }
        return try conv(hidden)
    }
}
