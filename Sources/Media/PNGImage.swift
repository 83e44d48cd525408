import CPNG

/// Reading and writing PNG files with libpng.
///
/// Pixels go through libpng's *simplified API* (`png_image_begin_read_from_memory`,
/// `png_image_finish_read`, `png_image_write_to_memory`). libpng reports errors by `longjmp`,
/// which must never cross Swift frames; the simplified API catches its own errors internally and
/// returns them in `png_image.warning_or_error` / `message`, so it is the one libpng surface that
/// is safe to call from Swift. What that API does not expose — text chunks, the original bit depth
/// and colour type — comes from walking the chunk stream in Swift (`PNGChunkStream`), which also
/// verifies every CRC so structural damage is reported with the file and chunk named. Text is
/// written the same way: libpng encodes the image to memory, then tEXt/iTXt chunks are inserted
/// after IHDR and the file is written atomically.
public enum PNGImage {
    /// libpng's default per-side limit (`PNG_USER_WIDTH_MAX`, `PNG_USER_HEIGHT_MAX`); checked here
    /// first so the error names the file and the limit.
    public static let maxDimension = 1_000_000
    /// Files above this size are refused before being read into memory.
    public static let maxFileBytes = 1 << 31

    /// Reads a PNG of any colour type and bit depth as 8-bit RGB.
    ///
    /// - Grey, palette (with or without tRNS), 1/2/4/8/16-bit and Adam7-interlaced files are
    ///   expanded by libpng. Sub-8-bit samples are scaled exactly (a 2-bit 1 becomes 85) and
    ///   16-bit samples are rounded to 8 bits (`round(v / 257)`: 0x8080 → 128, 0x12FF → 19).
    /// - Samples are taken as sRGB-encoded and gAMA, cHRM, sRGB and iCCP chunks are ignored, as
    ///   PIL and torchvision's `decode_png` do, so training data matches what those tools load.
    /// - Alpha (an alpha channel or tRNS) is composited over `background` in sRGB space,
    ///   `out = round((c·a + bg·(255−a)) / 255)` — the usual "flatten" of image editors, so a
    ///   pixel with alpha 255 is unchanged and alpha 0 gives exactly the background. 16-bit alpha
    ///   is composited at 16-bit precision before rounding, so it may differ from compositing the
    ///   8-bit-rounded values by one step.
    /// - `maxPixels` and `maxDimension` are checked from IHDR before any pixel memory is allocated.
    public static func read(path: String, background: (UInt8, UInt8, UInt8) = (255, 255, 255),
                            maxPixels: Int = 64_000_000) throws -> (image: RGBImage, info: PNGInfo) {
        let bytes = try FileBytes.readAll(path: path, limit: maxFileBytes)
        let (info, chunks) = try inspect(bytes, path: path, maxPixels: maxPixels)
        let stream = pixelStream(bytes, chunks: chunks)
        let pixels = info.bitDepth == 16
            ? try decodeSixteenBit(stream, info: info, background: background, path: path)
            : try decodeEightBit(stream, info: info, background: background, path: path)
        return (RGBImage(uncheckedWidth: info.width, height: info.height, pixels: pixels), info)
    }

    /// Only the header and text of a PNG, without decoding pixels; the chunk stream is still fully
    /// verified (CRCs, IHDR fields, limits).
    public static func readInfo(path: String, maxPixels: Int = 64_000_000) throws -> PNGInfo {
        let bytes = try FileBytes.readAll(path: path, limit: maxFileBytes)
        return try inspect(bytes, path: path, maxPixels: maxPixels).info
    }

    /// Writes an 8-bit RGB PNG (with an sRGB chunk, as libpng's simplified writer adds). Each
    /// `(keyword, text)` pair becomes a tEXt chunk, or an iTXt chunk when the text is not Latin-1.
    public static func write(_ image: RGBImage, to path: String, text: [(String, String)] = []) throws {
        try writeInterleaved(image.pixels, width: image.width, height: image.height,
                             channels: 3, to: path, text: text)
    }

    /// Writes an 8-bit RGBA PNG from non-premultiplied RGBA bytes (`4 * width * height`).
    public static func writeRGBA(width: Int, height: Int, rgba: [UInt8], to path: String,
                                 text: [(String, String)] = []) throws {
        try writeInterleaved(rgba, width: width, height: height, channels: 4, to: path, text: text)
    }

    // MARK: - Reading

    /// Verifies the chunk stream and returns the IHDR fields and text, applying the size limits.
    static func inspect(_ bytes: [UInt8], path: String, maxPixels: Int) throws
        -> (info: PNGInfo, chunks: [PNGChunk]) {
        let chunks = try PNGChunkStream.chunks(of: bytes, path: path)
        let header = chunks[0]
        guard header.data.count == 13 else {
            throw MediaError.corrupt(path: path, reason: "IHDR chunk has \(header.data.count) bytes, expected 13")
        }
        let start = header.data.lowerBound
        let width = Int(PNGChunkStream.readUInt32(bytes, at: start))
        let height = Int(PNGChunkStream.readUInt32(bytes, at: start + 4))
        let bitDepth = Int(bytes[start + 8])
        let colorCode = bytes[start + 9]
        let compression = bytes[start + 10], filter = bytes[start + 11], interlace = bytes[start + 12]

        guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF else {
            throw MediaError.corrupt(path: path, reason: "IHDR size \(width)x\(height) is not allowed by PNG (1 to 2^31-1 per side)")
        }
        guard let colorType = PNGColorType(code: colorCode) else {
            throw MediaError.corrupt(path: path, reason: "IHDR colour type \(colorCode) is not one of 0, 2, 3, 4, 6")
        }
        guard colorType.allowedBitDepths.contains(bitDepth) else {
            throw MediaError.corrupt(
                path: path,
                reason: "IHDR bit depth \(bitDepth) is not allowed for colour type \(colorType) (allowed: \(colorType.allowedBitDepths))")
        }
        guard compression == 0, filter == 0 else {
            throw MediaError.unsupported(path: path, reason: "IHDR compression method \(compression) / filter method \(filter); only 0 / 0 exist")
        }
        guard interlace <= 1 else {
            throw MediaError.unsupported(path: path, reason: "IHDR interlace method \(interlace); only 0 (none) and 1 (Adam7) exist")
        }
        guard width <= maxDimension, height <= maxDimension else {
            throw MediaError.tooLarge(path: path, what: "\(width)x\(height) pixels", limit: "\(maxDimension) pixels per side")
        }
        guard width * height <= maxPixels else {
            throw MediaError.tooLarge(path: path, what: "\(width)x\(height) = \(width * height) pixels",
                                      limit: "\(maxPixels) pixels")
        }

        var text: [String: String] = [:]
        var hasPalette = false, hasTRNS = false, hasData = false
        for chunk in chunks.dropFirst() {
            switch chunk.type {
            case "PLTE": hasPalette = true
            case "IDAT": hasData = true
            case "IEND": break
            case "tRNS": hasTRNS = true
            case "tEXt", "zTXt", "iTXt":
                let entry = try PNGText.decode(chunk, in: bytes, path: path)
                text[entry.keyword] = entry.text
            case "IHDR":
                throw MediaError.corrupt(path: path, reason: "a second IHDR chunk at offset \(chunk.offset)")
            default:
                if chunk.isCritical {
                    throw MediaError.unsupported(
                        path: path, reason: "unknown critical chunk '\(chunk.type)' at offset \(chunk.offset)")
                }
            }
        }
        guard hasData else { throw MediaError.corrupt(path: path, reason: "no IDAT chunk (no image data)") }
        if colorType == .palette && !hasPalette {
            throw MediaError.corrupt(path: path, reason: "palette image without a PLTE chunk")
        }
        let info = PNGInfo(width: width, height: height, bitDepth: bitDepth, colorType: colorType,
                           channels: colorType.channels, interlaced: interlace == 1,
                           hasTransparency: colorType == .greyAlpha || colorType == .rgba || hasTRNS,
                           text: text)
        return (info, chunks)
    }

    /// The chunks libpng needs for the pixels: IHDR, PLTE, tRNS, IDAT, IEND. Colour-space chunks
    /// are dropped so libpng does no gamma conversion (see `read`), and text chunks so libpng's
    /// text decompression is never reached.
    private static func pixelStream(_ bytes: [UInt8], chunks: [PNGChunk]) -> [UInt8] {
        var stream = PNGChunkStream.signature
        stream.reserveCapacity(bytes.count)
        for chunk in chunks where ["IHDR", "PLTE", "tRNS", "IDAT", "IEND"].contains(chunk.type) {
            stream.append(contentsOf: bytes[(chunk.offset)..<(chunk.data.upperBound + 4)])
        }
        return stream
    }

    /// Runs libpng's simplified reader on `stream` into `buffer` of `format`; the buffer has
    /// `width * height * channels` elements of 1 or 2 bytes as the format demands.
    private static func finishRead(_ stream: [UInt8], format: UInt32, into buffer: UnsafeMutableRawPointer,
                                   info: PNGInfo, path: String) throws {
        var control = png_image()
        control.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&control) }
        let failure: MediaError? = stream.withUnsafeBytes { file in
            guard png_image_begin_read_from_memory(&control, file.baseAddress, file.count) != 0 else {
                return .corrupt(path: path, reason: "libpng could not read the header: \(message(of: control))")
            }
            guard Int(control.width) == info.width, Int(control.height) == info.height else {
                return .corrupt(path: path, reason: "libpng read a \(control.width)x\(control.height) header, IHDR says \(info.width)x\(info.height)")
            }
            control.format = format
            guard png_image_finish_read(&control, nil, buffer, 0, nil) != 0,
                  control.warning_or_error & 2 == 0 else {
                return .corrupt(path: path, reason: "libpng could not decode the image data: \(message(of: control))")
            }
            return nil
        }
        if let failure { throw failure }
    }

    /// Files of up to 8 bits per sample are read as 8-bit RGB(A). The output keeps alpha whenever
    /// the file has any: asking libpng to drop it selects `png_image_read_composite`, which has
    /// out-of-bounds reads in libpng before 1.6.52 (CVE-2025-64720, CVE-2025-66293).
    private static func decodeEightBit(_ stream: [UInt8], info: PNGInfo, background: (UInt8, UInt8, UInt8),
                                       path: String) throws -> [UInt8] {
        let channels = info.hasTransparency ? 4 : 3
        let format = PNG_FORMAT_FLAG_COLOR | (info.hasTransparency ? PNG_FORMAT_FLAG_ALPHA : 0)
        var samples = [UInt8](repeating: 0, count: info.width * info.height * channels)
        try samples.withUnsafeMutableBytes { buffer in
            try finishRead(stream, format: format, into: buffer.baseAddress!, info: info, path: path)
        }
        guard info.hasTransparency else { return samples }

        var rgb = [UInt8](repeating: 0, count: info.width * info.height * 3)
        let backdrop = [UInt32(background.0), UInt32(background.1), UInt32(background.2)]
        samples.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { destination in
                for pixel in 0..<(info.width * info.height) {
                    let alpha = UInt32(source[pixel * 4 + 3])
                    for channel in 0..<3 {
                        let mixed = UInt32(source[pixel * 4 + channel]) * alpha + backdrop[channel] * (255 - alpha)
                        destination[pixel * 3 + channel] = UInt8((mixed + 127) / 255)
                    }
                }
            }
        }
        return rgb
    }

    /// 16-bit files are read as 16-bit "linear" samples and rounded to 8 bits here. Asking libpng
    /// for 8-bit output from a 16-bit interlaced file overflows its row buffer in libpng before
    /// 1.6.51 (CVE-2025-65018). With no gAMA/sRGB chunk in the stream libpng takes 16-bit data as
    /// linear, so linear output is the file's samples unchanged — premultiplied by alpha, as the
    /// simplified API's linear formats always are.
    private static func decodeSixteenBit(_ stream: [UInt8], info: PNGInfo, background: (UInt8, UInt8, UInt8),
                                         path: String) throws -> [UInt8] {
        let channels = info.hasTransparency ? 4 : 3
        let format = PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR
            | (info.hasTransparency ? PNG_FORMAT_FLAG_ALPHA : 0)
        var samples = [UInt16](repeating: 0, count: info.width * info.height * channels)
        try samples.withUnsafeMutableBytes { buffer in
            try finishRead(stream, format: format, into: buffer.baseAddress!, info: info, path: path)
        }
        var rgb = [UInt8](repeating: 0, count: info.width * info.height * 3)
        let backdrop = [UInt64(background.0), UInt64(background.1), UInt64(background.2)]
        samples.withUnsafeBufferPointer { source in
            rgb.withUnsafeMutableBufferPointer { destination in
                for pixel in 0..<(info.width * info.height) {
                    let alpha = channels == 4 ? UInt64(source[pixel * 4 + 3]) : 65535
                    for channel in 0..<3 {
                        // premultiplied·255 + background·(1 − alpha), all over 65535, rounded.
                        let mixed = UInt64(source[pixel * channels + channel]) * 255 + backdrop[channel] * (65535 - alpha)
                        destination[pixel * 3 + channel] = UInt8((mixed + 32767) / 65535)
                    }
                }
            }
        }
        return rgb
    }

    /// The NUL-terminated `png_image.message`, which libpng fills on warnings and errors.
    private static func message(of control: png_image) -> String {
        withUnsafeBytes(of: control.message) { raw in
            let bytes = raw.prefix(while: { $0 != 0 })
            return bytes.isEmpty ? "unknown libpng error" : String(decoding: bytes, as: UTF8.self)
        }
    }

    // MARK: - Writing

    private static func writeInterleaved(_ samples: [UInt8], width: Int, height: Int, channels: Int,
                                         to path: String, text: [(String, String)]) throws {
        guard (1...maxDimension).contains(width), (1...maxDimension).contains(height) else {
            throw MediaError.writeFailed(
                path: path, reason: "a \(width)x\(height) image cannot be written; PNG sides must be 1...\(maxDimension)")
        }
        let expected = width * height * channels
        guard samples.count == expected else {
            throw MediaError.writeFailed(
                path: path, reason: "\(width)x\(height) needs \(expected) bytes (\(channels) per pixel), got \(samples.count)")
        }
        let textChunks = try text.flatMap { try PNGText.encodeChunk(keyword: $0.0, text: $0.1) }
        var encoded = try encode(samples, width: width, height: height, channels: channels, path: path)

        // IHDR is always first and always 13 bytes: signature (8) + length, type (8) + data (13) + CRC (4).
        let afterHeader = PNGChunkStream.signature.count + 25
        guard encoded.count > afterHeader, Array(encoded[12..<16]) == Array("IHDR".utf8) else {
            throw MediaError.writeFailed(path: path, reason: "libpng produced a stream that does not start with IHDR")
        }
        encoded.insert(contentsOf: textChunks, at: afterHeader)
        try FileBytes.writeAtomically(encoded, to: path)
    }

    /// Encodes to an in-memory PNG with `png_image_write_to_memory`. The first guess at the size
    /// is the raw data plus a margin; libpng reports the exact size when that is too small.
    private static func encode(_ samples: [UInt8], width: Int, height: Int, channels: Int,
                               path: String) throws -> [UInt8] {
        let raw = height * (1 + width * channels)
        var capacity = raw + raw / 64 + 4096
        for _ in 0..<2 {
            var control = png_image()
            control.version = UInt32(PNG_IMAGE_VERSION)
            control.width = UInt32(width)
            control.height = UInt32(height)
            control.format = PNG_FORMAT_FLAG_COLOR | (channels == 4 ? PNG_FORMAT_FLAG_ALPHA : 0)
            var output = [UInt8](repeating: 0, count: capacity)
            var size = png_alloc_size_t(capacity)
            let succeeded = output.withUnsafeMutableBytes { memory in
                samples.withUnsafeBytes { pixels in
                    png_image_write_to_memory(&control, memory.baseAddress, &size, 0, pixels.baseAddress, 0, nil)
                }
            }
            png_image_free(&control)
            if succeeded != 0 {
                output.removeSubrange(Int(size)...)
                return output
            }
            guard Int(size) > capacity else {
                throw MediaError.writeFailed(path: path, reason: "libpng could not encode the image: \(message(of: control))")
            }
            capacity = Int(size)
        }
        throw MediaError.writeFailed(path: path, reason: "libpng kept asking for a larger output buffer")
    }
}
