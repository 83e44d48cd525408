import Tensor

/// diffusers' `ResnetBlock2D` (resnet.py) with `time_embedding_norm="default"` and SiLU:
/// `norm1` → SiLU → `conv1` (+ `time_emb_proj(silu(temb))` per channel) → `norm2` → SiLU →
/// `dropout` → `conv2`, plus the input (through the 1×1 `conv_shortcut` when the channel count
/// changes), divided by `output_scale_factor`. Without `temb_channels` (the VAE) there is no
/// `time_emb_proj`.
public final class ResnetBlock2D: Module {
    public let inChannels: Int
    public let outChannels: Int
    public let outputScaleFactor: Float
    public let norm1: GroupNorm
    public let conv1: Conv2d
    public let timeEmbProj: Linear?
    public let norm2: GroupNorm
    let dropout: Dropout
    public let conv2: Conv2d
    public let convShortcut: Conv2d?

    public init(inChannels: Int, outChannels: Int? = nil, timeEmbeddingChannels: Int?, groups: Int = 32,
                epsilon: Float = 1e-6, dropout: Float = 0, outputScaleFactor: Float = 1) {
        let outChannels = outChannels ?? inChannels
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.outputScaleFactor = outputScaleFactor
        norm1 = GroupNorm(groups: groups, channels: inChannels, epsilon: epsilon)
        conv1 = Conv2d(inChannels, outChannels, kernelSize: 3, padding: 1)
        timeEmbProj = timeEmbeddingChannels.map { Linear($0, outChannels) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, epsilon: epsilon)
        self.dropout = Dropout(dropout)
        conv2 = Conv2d(outChannels, outChannels, kernelSize: 3, padding: 1)
        convShortcut = inChannels != outChannels ? Conv2d(inChannels, outChannels, kernelSize: 1) : nil
        super.init()
        child("norm1", norm1)
        child("conv1", conv1)
        if let timeEmbProj { child("time_emb_proj", timeEmbProj) }
        child("norm2", norm2)
        child("dropout", self.dropout)
        child("conv2", conv2)
        if let convShortcut { child("conv_shortcut", convShortcut) }
    }

    /// `x` `[N, in, H, W]`, `timeEmbedding` `[N, temb]` or nil → `[N, out, H, W]`.
    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor?, context: ForwardContext) throws -> Tensor {
        var hidden = try conv1(norm1(x).silu())
        if let timeEmbProj, let timeEmbedding {
            let projected = try timeEmbProj(timeEmbedding.silu())
            hidden = try hidden + projected.reshaped([projected.shape[0], projected.shape[1], 1, 1])
        }
        hidden = try conv2(dropout(norm2(hidden).silu(), context: context))
        let shortcut = try convShortcut.map { try $0(x) } ?? x
        let sum = try shortcut + hidden
        return outputScaleFactor == 1 ? sum : sum / outputScaleFactor
    }
}
