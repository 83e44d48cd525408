/// How an image is fitted into a target size whose aspect ratio may differ from its own.
public enum ResizeMode: Sendable {
    /// Scale each axis independently; the aspect ratio changes.
    case stretch
    /// Scale until the target is covered, then cut the overflow equally from both sides
    /// (torchvision's `Resize` + `CenterCrop`, the usual video-diffusion training transform).
    case centerCrop
    /// Scale until the image fits, then pad equally on both sides with the background colour.
    case letterbox(background: (UInt8, UInt8, UInt8))
}

extension RGBImage {
    /// A resampled copy of size `width` x `height`.
    ///
    /// Each axis is resampled separably: when it shrinks, every output pixel is the area average
    /// of the source pixels it covers (fractional coverage weighted), which avoids the aliasing a
    /// point sampler gives on downscaled frames; when it grows, output pixels are bilinearly
    /// interpolated at their centres (half-pixel aligned, like `align_corners=False`).
    public func resized(width targetWidth: Int, height targetHeight: Int,
                        mode: ResizeMode = .centerCrop) throws -> RGBImage {
        guard targetWidth > 0, targetHeight > 0 else {
            throw MediaError.invalidArgument(
                what: "resize target", reason: "\(targetWidth)x\(targetHeight) must be positive")
        }
        guard width > 0, height > 0 else {
            throw MediaError.invalidArgument(
                what: "resize source", reason: "cannot resize an empty \(width)x\(height) image")
        }
        _ = try RGBImage.byteCount(width: targetWidth, height: targetHeight)
        let sourceWidth = Double(width), sourceHeight = Double(height)

        switch mode {
        case .stretch:
            return resample(regionX: 0, regionY: 0, regionWidth: sourceWidth, regionHeight: sourceHeight,
                            outputWidth: targetWidth, outputHeight: targetHeight)

        case .centerCrop:
            let scale = max(Double(targetWidth) / sourceWidth, Double(targetHeight) / sourceHeight)
            let regionWidth = min(sourceWidth, Double(targetWidth) / scale)
            let regionHeight = min(sourceHeight, Double(targetHeight) / scale)
            return resample(regionX: (sourceWidth - regionWidth) / 2,
                            regionY: (sourceHeight - regionHeight) / 2,
                            regionWidth: regionWidth, regionHeight: regionHeight,
                            outputWidth: targetWidth, outputHeight: targetHeight)

        case let .letterbox(background):
            let scale = min(Double(targetWidth) / sourceWidth, Double(targetHeight) / sourceHeight)
            let contentWidth = min(targetWidth, max(1, Int((sourceWidth * scale).rounded())))
            let contentHeight = min(targetHeight, max(1, Int((sourceHeight * scale).rounded())))
            let content = resample(regionX: 0, regionY: 0,
                                   regionWidth: sourceWidth, regionHeight: sourceHeight,
                                   outputWidth: contentWidth, outputHeight: contentHeight)
            var canvas = try RGBImage(width: targetWidth, height: targetHeight, fill: background)
            let offsetX = (targetWidth - contentWidth) / 2
            let offsetY = (targetHeight - contentHeight) / 2
            for row in 0..<contentHeight {
                let sourceStart = row * contentWidth * 3
                let destinationStart = ((row + offsetY) * targetWidth + offsetX) * 3
                canvas.pixels.replaceSubrange(
                    destinationStart..<(destinationStart + contentWidth * 3),
                    with: content.pixels[sourceStart..<(sourceStart + contentWidth * 3)])
            }
            return canvas
        }
    }

    /// Resamples the source rectangle (in continuous pixel coordinates) to the output size.
    private func resample(regionX: Double, regionY: Double, regionWidth: Double, regionHeight: Double,
                          outputWidth: Int, outputHeight: Int) -> RGBImage {
        let columns = ResampleTaps(sourceCount: width, regionStart: regionX,
                                   regionLength: regionWidth, outputCount: outputWidth)
        let rows = ResampleTaps(sourceCount: height, regionStart: regionY,
                                regionLength: regionHeight, outputCount: outputHeight)
        // Only source rows some output row reads need the horizontal pass.
        let firstRow = rows.indices.min() ?? 0
        let lastRow = rows.indices.max() ?? 0
        let rowCount = lastRow - firstRow + 1

        var horizontal = [Float](repeating: 0, count: rowCount * outputWidth * 3)
        var output = [UInt8](repeating: 0, count: outputWidth * outputHeight * 3)
        pixels.withUnsafeBufferPointer { source in
            horizontal.withUnsafeMutableBufferPointer { intermediate in
                for row in 0..<rowCount {
                    let sourceRow = (firstRow + row) * width * 3
                    let intermediateRow = row * outputWidth * 3
                    for x in 0..<outputWidth {
                        var r: Float = 0, g: Float = 0, b: Float = 0
                        for tap in columns.taps(for: x) {
                            let offset = sourceRow + columns.indices[tap] * 3
                            let weight = columns.weights[tap]
                            r += weight * Float(source[offset])
                            g += weight * Float(source[offset + 1])
                            b += weight * Float(source[offset + 2])
                        }
                        intermediate[intermediateRow + x * 3] = r
                        intermediate[intermediateRow + x * 3 + 1] = g
                        intermediate[intermediateRow + x * 3 + 2] = b
                    }
                }
            }
        }
        horizontal.withUnsafeBufferPointer { intermediate in
            output.withUnsafeMutableBufferPointer { destination in
                for y in 0..<outputHeight {
                    let destinationRow = y * outputWidth * 3
                    for value in 0..<(outputWidth * 3) {
                        var sum: Float = 0
                        for tap in rows.taps(for: y) {
                            let intermediateRow = (rows.indices[tap] - firstRow) * outputWidth * 3
                            sum += rows.weights[tap] * intermediate[intermediateRow + value]
                        }
                        destination[destinationRow + value] = UInt8(min(255, max(0, sum.rounded())))
                    }
                }
            }
        }
        return RGBImage(uncheckedWidth: outputWidth, height: outputHeight, pixels: output)
    }

    /// For internal callers that computed the buffer size themselves.
    init(uncheckedWidth width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// The source indices and weights each output pixel of one axis reads. Weights of one output
/// pixel sum to 1, so resampling never leaves the [0, 255] range.
private struct ResampleTaps {
    var indices: [Int] = []
    var weights: [Float] = []
    var ranges: [Range<Int>] = []

    init(sourceCount: Int, regionStart: Double, regionLength: Double, outputCount: Int) {
        let step = regionLength / Double(outputCount)
        for output in 0..<outputCount {
            let first = indices.count
            if step >= 1 {
                // Area average over [start, end).
                let start = regionStart + Double(output) * step
                let end = start + step
                var pixel = Int(start.rounded(.down))
                var total = 0.0
                var local: [(Int, Double)] = []
                while Double(pixel) < end {
                    let overlap = min(end, Double(pixel + 1)) - max(start, Double(pixel))
                    if overlap > 1e-9 {
                        local.append((min(max(pixel, 0), sourceCount - 1), overlap))
                        total += overlap
                    }
                    pixel += 1
                }
                for (index, overlap) in local {
                    indices.append(index)
                    weights.append(Float(overlap / total))
                }
            } else {
                // Bilinear at the output pixel's centre.
                let centre = regionStart + (Double(output) + 0.5) * step - 0.5
                let clamped = min(max(centre, 0), Double(sourceCount - 1))
                let lower = Int(clamped.rounded(.down))
                let upper = min(lower + 1, sourceCount - 1)
                let fraction = clamped - Double(lower)
                indices.append(lower)
                weights.append(Float(1 - fraction))
                if upper != lower && fraction > 0 {
                    indices.append(upper)
                    weights.append(Float(fraction))
                }
            }
            ranges.append(first..<indices.count)
        }
    }

    func taps(for output: Int) -> Range<Int> { ranges[output] }
}
