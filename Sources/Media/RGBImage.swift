/// An 8-bit sRGB image: what a PNG is read into and written from, and what a decoded video frame
/// becomes before it is normalised for the model (diffusers' `VaeImageProcessor` works on the
/// same kind of image: HWC bytes in, CHW floats in [-1, 1] out).
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// RGB interleaved, row-major, top row first: `3 * width * height` bytes.
    public var pixels: [UInt8]

    /// Wraps existing pixel bytes; throws when their count does not match the dimensions.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        let expected = try RGBImage.byteCount(width: width, height: height)
        guard pixels.count == expected else {
            throw MediaError.invalidArgument(
                what: "RGB pixel buffer",
                reason: "\(width)x\(height) needs \(expected) bytes (3 per pixel), got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image of one colour.
    public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) throws {
        let count = try RGBImage.byteCount(width: width, height: height)
        var pixels = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            pixels[index] = fill.0
            pixels[index + 1] = fill.1
            pixels[index + 2] = fill.2
            index += 3
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The bytes an image of this size needs; throws for negative sizes or ones that overflow.
    static func byteCount(width: Int, height: Int) throws -> Int {
        guard width >= 0, height >= 0 else {
            throw MediaError.invalidArgument(
                what: "image size", reason: "\(width)x\(height) has a negative dimension")
        }
        let (area, areaOverflow) = width.multipliedReportingOverflow(by: height)
        let (bytes, bytesOverflow) = area.multipliedReportingOverflow(by: 3)
        guard !areaOverflow, !bytesOverflow else {
            throw MediaError.invalidArgument(
                what: "image size", reason: "\(width)x\(height) overflows the address space")
        }
        return bytes
    }

    /// The colour at column `x`, row `y` (0-based, top-left origin). Out-of-range coordinates are a
    /// programming error, like an out-of-range array index.
    public subscript(x x: Int, y y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height,
                         "pixel (\(x), \(y)) outside \(width)x\(height) image")
            let offset = (y * width + x) * 3
            return (pixels[offset], pixels[offset + 1], pixels[offset + 2])
        }
        set {
            precondition(x >= 0 && x < width && y >= 0 && y < height,
                         "pixel (\(x), \(y)) outside \(width)x\(height) image")
            let offset = (y * width + x) * 3
            pixels[offset] = newValue.r
            pixels[offset + 1] = newValue.g
            pixels[offset + 2] = newValue.b
        }
    }
}

// MARK: - Model tensors

extension RGBImage {
    /// Channel-planar floats in [-1, 1] (all R, then all G, then all B; each plane row-major):
    /// the layout and range diffusers' `VaeImageProcessor.preprocess` feeds the VAE encoder.
    public func toCHWFloats() -> [Float] {
        let planeSize = width * height
        var floats = [Float](repeating: 0, count: planeSize * 3)
        pixels.withUnsafeBufferPointer { source in
            floats.withUnsafeMutableBufferPointer { destination in
                for pixel in 0..<planeSize {
                    for channel in 0..<3 {
                        destination[channel * planeSize + pixel] =
                            Float(source[pixel * 3 + channel]) / 127.5 - 1
                    }
                }
            }
        }
        return floats
    }

    /// The inverse of `toCHWFloats` (diffusers' `postprocess`): values are clamped to [-1, 1] and
    /// rounded to the nearest byte. NaN becomes black so a diverged sample is visible, not a trap.
    public init(chwFloats: [Float], width: Int, height: Int) throws {
        let byteCount = try RGBImage.byteCount(width: width, height: height)
        guard chwFloats.count == byteCount else {
            throw MediaError.invalidArgument(
                what: "CHW float buffer",
                reason: "\(width)x\(height) needs \(byteCount) floats (3 planes), got \(chwFloats.count)")
        }
        let planeSize = width * height
        var pixels = [UInt8](repeating: 0, count: byteCount)
        chwFloats.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { destination in
                for pixel in 0..<planeSize {
                    for channel in 0..<3 {
                        let value = source[channel * planeSize + pixel]
                        let scaled = ((value + 1) * 127.5).rounded()
                        // The comparisons are written so that NaN falls through to 0.
                        destination[pixel * 3 + channel] =
                            scaled >= 255 ? 255 : (scaled > 0 ? UInt8(scaled) : 0)
                    }
                }
            }
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
