/// One 256-colour palette shared by every frame of a GIF, and the mapping of RGB pixels onto it —
/// the role of FFmpeg's `palettegen`/`paletteuse` filters (stats_mode=full, no dithering).
/// A clip with at most 256 distinct colours is kept exactly; otherwise colours are quantised to
/// 5 bits per channel and the histogram is split by median cut, each palette entry being the
/// pixel-weighted mean of its box. Deterministic: no sampling, no randomness.
struct GIFPalette {
    /// `0xAARRGGBB` entries as the gif encoder reads `AV_PIX_FMT_PAL8` palettes; alpha is opaque.
    let colors: [UInt32]
    private let index: (UInt8, UInt8, UInt8) -> UInt8

    static let maximumColors = 256

    init(frames: [RGBImage]) {
        if let exact = Self.exactColors(frames) {
            let table = Dictionary(uniqueKeysWithValues: exact.enumerated().map { ($1, UInt8($0)) })
            colors = exact.map { 0xFF00_0000 | $0 }
            index = { r, g, b in table[UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)] ?? 0 }
        } else {
            let (palette, lookup) = Self.medianCut(frames)
            colors = palette.map { 0xFF00_0000 | $0 }
            index = { r, g, b in lookup[Self.bin(r, g, b)] }
        }
    }

    /// Palette index of each pixel, row after row.
    func indices(of image: RGBImage, into destination: UnsafeMutablePointer<UInt8>, rowStride: Int) {
        image.pixels.withUnsafeBufferPointer { pixels in
            for y in 0..<image.height {
                let row = destination + y * rowStride
                for x in 0..<image.width {
                    let offset = (y * image.width + x) * 3
                    row[x] = index(pixels[offset], pixels[offset + 1], pixels[offset + 2])
                }
            }
        }
    }

    /// The distinct colours in first-seen order, or nil when there are more than 256.
    private static func exactColors(_ frames: [RGBImage]) -> [UInt32]? {
        var seen = Set<UInt32>()
        var ordered: [UInt32] = []
        for frame in frames {
            let pixels = frame.pixels
            var offset = 0
            while offset + 2 < pixels.count {
                let color = UInt32(pixels[offset]) << 16 | UInt32(pixels[offset + 1]) << 8 | UInt32(pixels[offset + 2])
                if seen.insert(color).inserted {
                    ordered.append(color)
                    if ordered.count > maximumColors { return nil }
                }
                offset += 3
            }
        }
        return ordered
    }

    private static func bin(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> Int {
        Int(r >> 3) << 10 | Int(g >> 3) << 5 | Int(b >> 3)
    }

    /// A box of histogram bins; split along its widest channel at the pixel-weighted median.
    private struct Box {
        var bins: [Int]
        var pixelCount: Int
        var widestChannel = 0
        var widestRange = 0

        init(bins: [Int], counts: [Int]) {
            self.bins = bins
            pixelCount = bins.reduce(0) { $0 + counts[$1] }
            for channel in 0..<3 {
                let values = bins.map { GIFPalette.channel($0, channel) }
                let range = (values.max() ?? 0) - (values.min() ?? 0)
                if range > widestRange { (widestRange, widestChannel) = (range, channel) }
            }
        }
    }

    private static func channel(_ bin: Int, _ channel: Int) -> Int { (bin >> (10 - 5 * channel)) & 31 }

    private static func medianCut(_ frames: [RGBImage]) -> (palette: [UInt32], lookup: [UInt8]) {
        var counts = [Int](repeating: 0, count: 1 << 15)
        var sums = [(Int, Int, Int)](repeating: (0, 0, 0), count: 1 << 15)
        for frame in frames {
            let pixels = frame.pixels
            var offset = 0
            while offset + 2 < pixels.count {
                let (r, g, b) = (pixels[offset], pixels[offset + 1], pixels[offset + 2])
                let key = bin(r, g, b)
                counts[key] += 1
                sums[key].0 += Int(r); sums[key].1 += Int(g); sums[key].2 += Int(b)
                offset += 3
            }
        }
        var boxes = [Box(bins: (0..<(1 << 15)).filter { counts[$0] > 0 }, counts: counts)]
        while boxes.count < maximumColors {
            // Split the box whose widest side, weighted by its pixels, is largest.
            guard let (chosen, _) = boxes.enumerated()
                .filter({ $0.element.bins.count > 1 && $0.element.widestRange > 0 })
                .max(by: { $0.element.pixelCount * $0.element.widestRange < $1.element.pixelCount * $1.element.widestRange })
                .map({ ($0.offset, $0.element) }) else { break }
            let box = boxes[chosen]
            let sorted = box.bins.sorted {
                let (a, b) = (channel($0, box.widestChannel), channel($1, box.widestChannel))
                return a != b ? a < b : $0 < $1
            }
            var running = 0, cut = 1
            for (position, bin) in sorted.enumerated() {
                running += counts[bin]
                if running * 2 >= box.pixelCount { cut = max(1, min(sorted.count - 1, position + 1)); break }
            }
            boxes[chosen] = Box(bins: Array(sorted[..<cut]), counts: counts)
            boxes.append(Box(bins: Array(sorted[cut...]), counts: counts))
        }
        let palette: [UInt32] = boxes.map { box in
            var total = (0, 0, 0)
            for bin in box.bins { total.0 += sums[bin].0; total.1 += sums[bin].1; total.2 += sums[bin].2 }
            let n = max(1, box.pixelCount)
            let (r, g, b) = ((total.0 + n / 2) / n, (total.1 + n / 2) / n, (total.2 + n / 2) / n)
            return UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
        }
        // Each occupied bin maps to the palette colour nearest its own mean colour.
        var lookup = [UInt8](repeating: 0, count: 1 << 15)
        for bin in 0..<(1 << 15) where counts[bin] > 0 {
            let n = counts[bin]
            let mean = (sums[bin].0 / n, sums[bin].1 / n, sums[bin].2 / n)
            var best = 0, bestDistance = Int.max
            for (candidate, color) in palette.enumerated() {
                let dr = Int(color >> 16 & 0xFF) - mean.0, dg = Int(color >> 8 & 0xFF) - mean.1, db = Int(color & 0xFF) - mean.2
                let distance = dr * dr + dg * dg + db * db
                if distance < bestDistance { (best, bestDistance) = (candidate, distance) }
            }
            lookup[bin] = UInt8(best)
        }
        return (palette, lookup)
    }
}
