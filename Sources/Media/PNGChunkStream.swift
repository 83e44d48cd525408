/// One chunk of a PNG datastream (PNG spec §5.3): its four-letter type and where its data lies in
/// the file's bytes. The length and CRC fields have already been checked.
struct PNGChunk: Sendable {
    var type: String
    var data: Range<Int>
    /// Offset of the chunk's length field, for error messages.
    var offset: Int

    /// A chunk whose first letter is upper case is critical: a decoder must understand it.
    var isCritical: Bool { type.utf8.first.map { $0 & 0x20 == 0 } ?? false }
}

/// Walks and builds PNG chunk streams in Swift. libpng's simplified API decodes the pixels but
/// hides the chunk layer (text, original bit depth); walking the chunks ourselves also lets every
/// structural error — a bad CRC, a truncated chunk — name the file and the chunk, instead of
/// surfacing as libpng's longjmp-based error path, which must never unwind through Swift frames.
enum PNGChunkStream {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Splits `bytes` into chunks, verifying the signature, every length and CRC, and that the
    /// stream starts with IHDR and ends with IEND. Bytes after IEND are ignored, as libpng does.
    static func chunks(of bytes: [UInt8], path: String) throws -> [PNGChunk] {
        guard !bytes.isEmpty else {
            throw MediaError.corrupt(path: path, reason: "the file is empty (0 bytes)")
        }
        guard bytes.count >= signature.count, Array(bytes[0..<signature.count]) == signature else {
            let prefix = bytes.prefix(8).map { byte -> String in
                (0x20..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "."
            }.joined()
            throw MediaError.corrupt(
                path: path, reason: "not a PNG file: the 8-byte PNG signature is missing (file starts with \"\(prefix)\")")
        }

        var chunks: [PNGChunk] = []
        var offset = signature.count
        while true {
            let previous = chunks.last.map { "after chunk '\($0.type)'" } ?? "after the signature"
            guard offset + 8 <= bytes.count else {
                throw MediaError.corrupt(
                    path: path,
                    reason: "the file ends at byte \(bytes.count) \(previous), before an IEND chunk (truncated?)")
            }
            let length = Int(readUInt32(bytes, at: offset))
            let typeBytes = bytes[(offset + 4)..<(offset + 8)]
            guard typeBytes.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw MediaError.corrupt(
                    path: path, reason: "invalid chunk type bytes \(Array(typeBytes)) at offset \(offset) \(previous)")
            }
            let type = String(decoding: typeBytes, as: UTF8.self)
            guard length <= 0x7FFF_FFFF else {
                throw MediaError.corrupt(
                    path: path, reason: "chunk '\(type)' at offset \(offset) declares length \(length), above 2^31-1")
            }
            let dataStart = offset + 8
            let dataEnd = dataStart + length
            guard dataEnd + 4 <= bytes.count else {
                throw MediaError.corrupt(
                    path: path,
                    reason: "chunk '\(type)' at offset \(offset) needs \(length + 12) bytes but only \(bytes.count - offset) remain (truncated file)")
            }
            let storedCRC = readUInt32(bytes, at: dataEnd)
            let computedCRC = CRC32.checksum(bytes[(offset + 4)..<dataEnd])
            guard storedCRC == computedCRC else {
                throw MediaError.corrupt(
                    path: path,
                    reason: "CRC mismatch in chunk '\(type)' at offset \(offset): stored \(hex(storedCRC)), computed \(hex(computedCRC))")
            }
            if chunks.isEmpty && type != "IHDR" {
                throw MediaError.corrupt(path: path, reason: "the first chunk is '\(type)', expected 'IHDR'")
            }
            chunks.append(PNGChunk(type: type, data: dataStart..<dataEnd, offset: offset))
            offset = dataEnd + 4
            if type == "IEND" { return chunks }
        }
    }

    /// A complete chunk: length, type, data and the CRC over type and data.
    static func encodeChunk(type: String, data: [UInt8]) -> [UInt8] {
        precondition(type.utf8.count == 4, "PNG chunk types have four letters")
        var chunk: [UInt8] = []
        chunk.reserveCapacity(data.count + 12)
        appendUInt32(UInt32(data.count), to: &chunk)
        chunk.append(contentsOf: type.utf8)
        chunk.append(contentsOf: data)
        appendUInt32(CRC32.checksum(chunk[4...]), to: &chunk)
        return chunk
    }

    static func readUInt32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    static func appendUInt32(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }
}

/// The CRC-32 of PNG chunks and zlib's gzip sibling (ISO 3309, polynomial 0xEDB88320 reflected).
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { entry in
        var crc = UInt32(entry)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    static func checksum<Bytes: Collection>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
