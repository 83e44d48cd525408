import Foundation
import Tensor

/// A token's attention drawn over a frame: the map min-max normalised, bilinearly upsampled to the
/// frame (`F.interpolate(..., mode="bilinear", align_corners=False)`), coloured with matplotlib's
/// "jet" and blended over the frame, as prompt-to-prompt's and CLoRA's notebooks show maps.
public enum AttentionHeatMap {
    /// RGB bytes (row-major, 3 per pixel) of `frame` (`[3, H, W]` in [-1, 1]) under `map`
    /// (`grid.height × grid.width`), the map's colour weighted `opacity`.
    public static func overlay(map: [Float], grid: FeatureGrid, frame: Tensor, opacity: Float = 0.5) throws -> [UInt8] {
        guard frame.rank == 3, frame.shape[0] == 3, map.count == grid.count else {
            throw CompositionError.invalidSetting("heat map: a \(grid) map over a frame of shape \(frame.shape)")
        }
        let (height, width) = (frame.shape[1], frame.shape[2])
        let low = map.min() ?? 0, high = map.max() ?? 0
        let normalised = map.map { high > low ? ($0 - low) / (high - low) : 0 }
        let pixels = frame.values
        var bytes = [UInt8](repeating: 0, count: height * width * 3)
        for y in 0 ..< height {
            for x in 0 ..< width {
                let value = bilinear(normalised, grid: grid, x: x, y: y, width: width, height: height)
                let colour = jet(value)
                for channel in 0 ..< 3 {
                    let image = (pixels[(channel * height + y) * width + x] + 1) / 2
                    let mixed = (1 - opacity) * min(max(image, 0), 1) + opacity * colour[channel]
                    bytes[(y * width + x) * 3 + channel] = UInt8((mixed * 255).rounded())
                }
            }
        }
        return bytes
    }

    /// The map's value at pixel (x, y) of a `width`×`height` image, half-pixel centres, edges clamped.
    static func bilinear(_ map: [Float], grid: FeatureGrid, x: Int, y: Int, width: Int, height: Int) -> Float {
        func source(_ position: Int, _ size: Int, _ gridSize: Int) -> (Int, Int, Float) {
            let coordinate = max((Float(position) + 0.5) * Float(gridSize) / Float(size) - 0.5, 0)
            let lower = min(Int(coordinate), gridSize - 1)
            let upper = min(lower + 1, gridSize - 1)
            return (lower, upper, coordinate - Float(lower))
        }
        let (y0, y1, fy) = source(y, height, grid.height)
        let (x0, x1, fx) = source(x, width, grid.width)
        let top = map[y0 * grid.width + x0] * (1 - fx) + map[y0 * grid.width + x1] * fx
        let bottom = map[y1 * grid.width + x0] * (1 - fx) + map[y1 * grid.width + x1] * fx
        return top * (1 - fy) + bottom * fy
    }

    /// matplotlib's "jet" as its piecewise-linear segments: blue → cyan → yellow → red.
    static func jet(_ value: Float) -> [Float] {
        let v = min(max(value, 0), 1)
        func channel(_ centre: Float) -> Float { min(max(1.5 - abs(4 * v - centre), 0), 1) }
        return [channel(3), channel(2), channel(1)]
    }
}
