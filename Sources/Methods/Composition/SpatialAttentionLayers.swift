import Models

/// The token grid of a spatial attention layer: its tokens are the pixels of a `height`×`width`
/// feature map (`[batch·frames, height·width, channels]`).
public struct FeatureGrid: Hashable, Sendable, CustomStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    public var count: Int { height * width }
    public var description: String { "\(height)x\(width)" }

    /// The grid `levels` down-sampling steps below a latent of `latentHeight`×`latentWidth`: each
    /// `Downsample2D` (3×3, stride 2, padding 1) halves a side rounding up.
    public static func level(_ levels: Int, latentHeight: Int, latentWidth: Int) -> FeatureGrid {
        var height = latentHeight, width = latentWidth
        for _ in 0 ..< max(levels, 0) {
            height = (height + 1) / 2
            width = (width + 1) / 2
        }
        return FeatureGrid(height: height, width: width)
    }

    /// The grid holding `tokens` tokens among the U-Net's levels over the latent, or nil.
    public static func resolve(tokens: Int, latentHeight: Int, latentWidth: Int) -> FeatureGrid? {
        var grid = FeatureGrid(height: latentHeight, width: latentWidth)
        while true {
            if grid.count == tokens { return grid }
            if grid.height <= 1 && grid.width <= 1 { return nil }
            grid = FeatureGrid(height: (grid.height + 1) / 2, width: (grid.width + 1) / 2)
        }
    }
}

/// The attention layers of a U-Net's spatial transformers (`…attentions.N.
/// transformer_blocks.M.attn1` self-attention over a frame's pixels, `…attn2` cross-attention to
/// the text), with the resolution level each works at. Temporal transformers (UNet3D's
/// `temp_attentions` and `transformer_in`, AnimateDiff's `motion_modules`) are not listed:
/// composition leaves them alone.
public struct SpatialAttentionLayers {
    public struct Layer {
        public let path: String
        public let attention: Attention
        public let isCrossAttention: Bool
        /// Down-sampling steps below the latent (0: full latent resolution).
        public let level: Int
    }

    public let layers: [Layer]
    public let blockCount: Int

    public init(unet: any Denoiser) {
        let blocks = unet.blockOutChannels.count
        blockCount = blocks
        layers = unet.attentionLayers().compactMap { path, attention in
            let parts = path.split(separator: ".").map(String.init)
            guard parts.count >= 2, parts.contains("attentions"), !parts.contains("temp_attentions"),
                  let last = parts.last, last == "attn1" || last == "attn2" else { return nil }
            let level: Int
            switch parts[0] {
            case "down_blocks": level = Int(parts[1]) ?? 0
            case "mid_block": level = blocks - 1
            case "up_blocks": level = blocks - 1 - (Int(parts[1]) ?? 0)
            default: return nil
            }
            return Layer(path: path, attention: attention, isCrossAttention: attention.isCrossAttention, level: level)
        }
    }

    public var crossAttention: [Layer] { layers.filter(\.isCrossAttention) }
    public var selfAttention: [Layer] { layers.filter { !$0.isCrossAttention } }

    /// The grids of the cross-attention layers, largest first.
    public func crossAttentionGrids(latentHeight: Int, latentWidth: Int) -> [FeatureGrid] {
        let levels = Set(crossAttention.map(\.level)).sorted()
        return levels.map { FeatureGrid.level($0, latentHeight: latentHeight, latentWidth: latentWidth) }
    }

    /// The grid both methods read attention maps at: the lowest-but-one resolution among the
    /// cross-attention layers (16×16 of Stable Diffusion's 64×64 latent, LoRA-Composer's and CLoRA's
    /// choice there); the only one when there is one.
    public func analysisGrid(latentHeight: Int, latentWidth: Int) throws -> FeatureGrid {
        let grids = crossAttentionGrids(latentHeight: latentHeight, latentWidth: latentWidth)
        guard !grids.isEmpty else {
            throw CompositionError.noCrossAttention("no …attentions.N.transformer_blocks.M.attn2 layer among \(layers.count) spatial attention layers")
        }
        return grids.count >= 2 ? grids[grids.count - 2] : grids[0]
    }
}
