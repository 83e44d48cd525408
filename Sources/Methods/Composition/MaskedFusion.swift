import Tensor

/// CLoRA's masks and masked fusion of noise predictions (`attention_map_to_mask` and the fusion in
/// `__call__` of the reference's `pipeline_clora.py`).
public enum MaskedFusion {
    /// One mask per prompt, `[F, h, w]` at latent size (1 or 0), from each prompt's token maps
    /// `[F, H·W, L]` at `grid`: the union over the prompt's mask tokens of (map > α·max map), per
    /// frame; the first prompt (the base prompt, without LoRA) also covers every position that no
    /// other mask covers. Upsampled to the latent by nearest neighbour (`F.interpolate`'s "nearest":
    /// source index ⌊destination · in / out⌋).
    public static func masks(maps: [Tensor], maskTokens: [[Int]], threshold: Float, grid: FeatureGrid,
                             latentHeight: Int, latentWidth: Int) throws -> [Tensor] {
        guard let first = maps.first, maps.count == maskTokens.count else {
            throw CompositionError.invalidSetting("masked fusion: \(maps.count) maps for \(maskTokens.count) prompts")
        }
        let frames = first.shape[0], tokens = first.shape[2]
        for map in maps where map.shape != [frames, grid.count, tokens] {
            throw CompositionError.invalidSetting("masked fusion: a map of shape \(map.shape) does not fit \(frames) frames on the \(grid) grid")
        }
        // Masks on the attention grid.
        var small = maps.indices.map { _ in [Float](repeating: 0, count: frames * grid.count) }
        for (prompt, map) in maps.enumerated() {
            let values = map.values
            for position in maskTokens[prompt] where position < tokens {
                for frame in 0 ..< frames {
                    var peak = -Float.infinity
                    for cell in 0 ..< grid.count { peak = max(peak, values[(frame * grid.count + cell) * tokens + position]) }
                    for cell in 0 ..< grid.count where values[(frame * grid.count + cell) * tokens + position] > threshold * peak {
                        small[prompt][frame * grid.count + cell] = 1
                    }
                }
            }
        }
        for index in 0 ..< frames * grid.count where !small.contains(where: { $0[index] != 0 }) {
            small[0][index] = 1
        }
        // Nearest-neighbour upsampling to the latent.
        return try small.map { mask in
            var large = [Float](repeating: 0, count: frames * latentHeight * latentWidth)
            for frame in 0 ..< frames {
                for row in 0 ..< latentHeight {
                    let sourceRow = min(row * grid.height / latentHeight, grid.height - 1)
                    for column in 0 ..< latentWidth {
                        let sourceColumn = min(column * grid.width / latentWidth, grid.width - 1)
                        large[(frame * latentHeight + row) * latentWidth + column] =
                            mask[frame * grid.count + sourceRow * grid.width + sourceColumn]
                    }
                }
            }
            return try Tensor(shape: [frames, latentHeight, latentWidth], values: large)
        }
    }

    /// Σ_p M_p ⊙ ε_p / Σ_p M_p for predictions `[1, C, F, h, w]` and masks `[F, h, w]` (shared by
    /// the channels). Throws where no mask covers a position.
    public static func fuse(_ predictions: [Tensor], masks: [Tensor]) throws -> Tensor {
        guard let first = predictions.first, predictions.count == masks.count, first.rank == 5 else {
            throw CompositionError.invalidSetting("masked fusion: \(predictions.count) predictions for \(masks.count) masks")
        }
        let channels = first.shape[1], plane = first.shape[2] * first.shape[3] * first.shape[4]
        for (prediction, mask) in zip(predictions, masks) {
            guard prediction.shape == first.shape, mask.count == plane else {
                throw CompositionError.invalidSetting("masked fusion: prediction \(prediction.shape) and mask \(mask.shape) do not fit \(first.shape)")
            }
        }
        var cover = [Float](repeating: 0, count: plane)
        for mask in masks { for index in 0 ..< plane { cover[index] += mask[flat: index] } }
        guard !cover.contains(0) else {
            throw CompositionError.invalidSetting("masked fusion: some positions are covered by no mask")
        }
        let fused = Tensor(zeros: first.shape)
        let out = fused.data
        for (prediction, mask) in zip(predictions, masks) {
            let p = prediction.data, m = mask.data
            for channel in 0 ..< channels {
                let offset = channel * plane
                for index in 0 ..< plane where m[index] != 0 { out[offset + index] += m[index] * p[offset + index] }
            }
        }
        for channel in 0 ..< channels {
            for index in 0 ..< plane { out[channel * plane + index] /= cover[index] }
        }
        return fused
    }
}
