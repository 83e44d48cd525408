@testable import Media

/// A deliberately simple PNG encoder for test fixtures: every colour type and bit depth, optional
/// Adam7 interlacing, PLTE/tRNS and arbitrary extra chunks, with the image data in zlib *stored*
/// blocks so no compressor is needed. libpng's simplified writer only produces 8-bit RGB(A)/grey,
/// so the reader's other paths need fixtures made this way.
struct PNGFixtureEncoder {
    var width: Int
    var height: Int
    var bitDepth: Int
    var colorType: UInt8
    /// Row-major samples, `channels` per pixel (one palette index per pixel for colour type 3).
    var samples: [Int]
    var palette: [(UInt8, UInt8, UInt8)] = []
    var transparency: [UInt8]? = nil
    var interlaced = false
    var extraChunks: [(type: String, data: [UInt8])] = []

    var channels: Int {
        switch colorType {
        case 0, 3: return 1
        case 4: return 2
        case 2: return 3
        default: return 4
        }
    }

    func encode() -> [UInt8] {
        var header: [UInt8] = []
        PNGChunkStream.appendUInt32(UInt32(width), to: &header)
        PNGChunkStream.appendUInt32(UInt32(height), to: &header)
        header += [UInt8(bitDepth), colorType, 0, 0, interlaced ? 1 : 0]

        var file = PNGChunkStream.signature
        file += PNGChunkStream.encodeChunk(type: "IHDR", data: header)
        if !palette.isEmpty {
            file += PNGChunkStream.encodeChunk(type: "PLTE", data: palette.flatMap { [$0.0, $0.1, $0.2] })
        }
        if let transparency { file += PNGChunkStream.encodeChunk(type: "tRNS", data: transparency) }
        for chunk in extraChunks { file += PNGChunkStream.encodeChunk(type: chunk.type, data: chunk.data) }
        file += PNGChunkStream.encodeChunk(type: "IDAT", data: Self.storedZlib(scanlines()))
        file += PNGChunkStream.encodeChunk(type: "IEND", data: [])
        return file
    }

    /// Filter-type-0 scanlines of the whole image, or of each non-empty Adam7 pass in order.
    private func scanlines() -> [UInt8] {
        guard interlaced else {
            return packRows(columns: Array(0..<width), rows: Array(0..<height))
        }
        let passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        var data: [UInt8] = []
        for (xStart, yStart, xStep, yStep) in passes {
            let columns = Array(stride(from: xStart, to: width, by: xStep))
            let rows = Array(stride(from: yStart, to: height, by: yStep))
            if columns.isEmpty || rows.isEmpty { continue }
            data += packRows(columns: columns, rows: rows)
        }
        return data
    }

    private func packRows(columns: [Int], rows: [Int]) -> [UInt8] {
        var data: [UInt8] = []
        for y in rows {
            data.append(0) // filter type None
            var accumulator = 0, bitsHeld = 0
            for x in columns {
                for channel in 0..<channels {
                    let value = samples[(y * width + x) * channels + channel]
                    switch bitDepth {
                    case 16:
                        data += [UInt8(value >> 8), UInt8(value & 0xFF)]
                    case 8:
                        data.append(UInt8(value))
                    default:
                        accumulator = accumulator << bitDepth | value
                        bitsHeld += bitDepth
                        if bitsHeld == 8 {
                            data.append(UInt8(accumulator))
                            accumulator = 0
                            bitsHeld = 0
                        }
                    }
                }
            }
            if bitsHeld > 0 { data.append(UInt8(accumulator << (8 - bitsHeld))) }
        }
        return data
    }

    /// A zlib stream of stored (uncompressed) deflate blocks.
    static func storedZlib(_ data: [UInt8]) -> [UInt8] {
        var stream: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let isLast = offset + length == data.count
            stream += [isLast ? 1 : 0, UInt8(length & 0xFF), UInt8(length >> 8),
                       UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            stream += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        PNGChunkStream.appendUInt32(ZlibInflate.adler32(data), to: &stream)
        return stream
    }
}
