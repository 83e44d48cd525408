import Diffusion
import Foundation
import Media

/// The loss curve PNG written beside loss.csv: the raw loss per step in light grey, an
/// exponentially smoothed curve (TensorBoard's smoothing, weight 0.9) in blue, axes with tick
/// labels, and a logarithmic loss axis when the loss spans more than a factor of 10.
public enum LossCurvePlot {
    public static func render(_ records: [LossRecord], width: Int = 640, height: Int = 360) throws -> RGBImage {
        var image = try RGBImage(width: width, height: height, fill: (255, 255, 255))
        let left = 56, right = width - 12, top = 12, bottom = height - 28
        let losses = records.map(\.loss).filter { $0.isFinite }
        drawLine(&image, from: (left, bottom), to: (right, bottom), colour: (0, 0, 0))
        drawLine(&image, from: (left, top), to: (left, bottom), colour: (0, 0, 0))
        guard let low = losses.min(), let high = losses.max(), let lastStep = records.last?.step else { return image }
        let firstStep = records.first!.step
        let logScale = low > 0 && high / low > 10
        func transform(_ value: Float) -> Double { logScale ? log10(Double(value)) : Double(value) }
        var yLow = transform(low), yHigh = transform(high)
        if yHigh - yLow < 1e-12 { yLow -= 0.5; yHigh += 0.5 }
        func x(_ step: Int) -> Int {
            lastStep == firstStep ? (left + right) / 2 : left + Int(Double(step - firstStep) / Double(lastStep - firstStep) * Double(right - left))
        }
        func y(_ value: Float) -> Int { bottom - Int((transform(value) - yLow) / (yHigh - yLow) * Double(bottom - top)) }

        // Ticks: five on each axis, labelled.
        for tick in 0...4 {
            let fraction = Double(tick) / 4
            let value = yLow + fraction * (yHigh - yLow)
            let ty = bottom - Int(fraction * Double(bottom - top))
            drawLine(&image, from: (left - 4, ty), to: (left, ty), colour: (0, 0, 0))
            drawLine(&image, from: (left + 1, ty), to: (right, ty), colour: (235, 235, 235))
            let label = logScale ? shortNumber(pow(10, value)) : shortNumber(value)
            TinyFont.draw(label, into: &image, x: left - 6 - TinyFont.width(of: label), y: ty - 3)
            let step = firstStep + Int(fraction * Double(lastStep - firstStep))
            let tx = x(step)
            drawLine(&image, from: (tx, bottom), to: (tx, bottom + 4), colour: (0, 0, 0))
            let stepLabel = String(step)
            TinyFont.draw(stepLabel, into: &image, x: tx - TinyFont.width(of: stepLabel) / 2, y: bottom + 8)
        }
        let finite = records.filter { $0.loss.isFinite }
        var previous: (Int, Int)?
        for record in finite {
            let point = (x(record.step), y(record.loss))
            if let previous { drawLine(&image, from: previous, to: point, colour: (200, 200, 200)) }
            previous = point
        }
        var smoothed: Double?
        previous = nil
        for record in finite {
            smoothed = smoothed.map { 0.9 * $0 + 0.1 * Double(record.loss) } ?? Double(record.loss)
            let point = (x(record.step), y(Float(smoothed!)))
            if let previous { drawLine(&image, from: previous, to: point, colour: (20, 80, 200)) }
            previous = point
        }
        return image
    }

    public static func write(_ records: [LossRecord], to path: String) throws {
        try PNGImage.write(render(records), to: path, text: [("Title", "training loss")])
    }

    static func shortNumber(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude != 0 && (magnitude < 0.01 || magnitude >= 10_000) { return String(format: "%.1e", value) }
        return String(format: magnitude < 1 ? "%.3f" : "%.2f", value)
    }

    /// Bresenham's line, clipped to the image.
    static func drawLine(_ image: inout RGBImage, from start: (Int, Int), to end: (Int, Int), colour: (UInt8, UInt8, UInt8)) {
        var (x0, y0) = start
        let (x1, y1) = end
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        while true {
            if x0 >= 0, x0 < image.width, y0 >= 0, y0 < image.height { image[x: x0, y: y0] = colour }
            if x0 == x1 && y0 == y1 { break }
            let doubled = 2 * error
            if doubled >= dy { error += dy; x0 += sx }
            if doubled <= dx { error += dx; y0 += sy }
        }
    }
}

/// A 3×5 pixel font for the digits, '.', '-', '+' and 'e' of tick labels.
enum TinyFont {
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7],
        "4": [5, 5, 7, 1, 1], "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1],
        "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7], ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0],
        "+": [0, 2, 7, 2, 0], "e": [0, 7, 7, 4, 7],
    ]

    static func width(of text: String) -> Int { text.count * 4 }

    static func draw(_ text: String, into image: inout RGBImage, x: Int, y: Int) {
        for (index, character) in text.enumerated() {
            guard let rows = glyphs[character] else { continue }
            for (row, bits) in rows.enumerated() {
                for column in 0..<3 where bits & (4 >> column) != 0 {
                    let px = x + index * 4 + column, py = y + row
                    if px >= 0, px < image.width, py >= 0, py < image.height { image[x: px, y: py] = (0, 0, 0) }
                }
            }
        }
    }
}
