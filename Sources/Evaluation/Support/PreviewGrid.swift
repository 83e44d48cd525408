import Diffusion
import Foundation
import Media
import Tensor

/// A preview grid: one row per prompt, one column per frame, frames separated by a 2-pixel white
/// gutter; the prompts are stored in the PNG's text chunks (row by row).
public enum PreviewGrid {
    public static func write(_ samples: [PreviewSample], step: Int, to path: String) throws {
        guard let first = samples.first?.frames.first else { return }
        let height = first.shape[1], width = first.shape[2], gap = 2
        let columns = samples.map(\.frames.count).max() ?? 1
        var grid = try RGBImage(width: columns * (width + gap) + gap, height: samples.count * (height + gap) + gap,
                                fill: (255, 255, 255))
        for (row, sample) in samples.enumerated() {
            for (column, frame) in sample.frames.enumerated() {
                let image = try RGBImage(chwFloats: frame.values, width: width, height: height)
                let x0 = gap + column * (width + gap), y0 = gap + row * (height + gap)
                for y in 0..<height {
                    for x in 0..<width { grid[x: x0 + x, y: y0 + y] = image[x: x, y: y] }
                }
            }
        }
        var text = [("step", String(step))]
        text += samples.enumerated().map { ("prompt \($0.offset + 1)", $0.element.prompt) }
        try PNGImage.write(grid, to: path, text: text)
    }
}
