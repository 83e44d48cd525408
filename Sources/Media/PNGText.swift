/// PNG textual metadata (PNG spec §11.3.4: tEXt, zTXt, iTXt), decoded from and encoded to chunk
/// data. libpng's simplified API neither reads nor writes text, so this is done in Swift.
enum PNGText {
    /// The most bytes one compressed text chunk may inflate to; libpng's default for ancillary
    /// chunks (`PNG_USER_CHUNK_MALLOC_MAX`) is the same.
    static let maxDecompressedBytes = 8_000_000

    /// Keyword and text of a tEXt, zTXt or iTXt chunk.
    static func decode(_ chunk: PNGChunk, in bytes: [UInt8], path: String) throws -> (keyword: String, text: String) {
        let data = bytes[chunk.data]
        func corrupt(_ reason: String) -> MediaError {
            .corrupt(path: path, reason: "\(chunk.type) chunk at offset \(chunk.offset): \(reason)")
        }
        guard let keywordEnd = data.firstIndex(of: 0) else { throw corrupt("no NUL after the keyword") }
        guard keywordEnd > data.startIndex else { throw corrupt("empty keyword") }
        let keyword = latin1(data[data.startIndex..<keywordEnd])
        var cursor = keywordEnd + 1

        func inflate(_ compressed: ArraySlice<UInt8>) throws -> [UInt8] {
            do {
                return try ZlibInflate.decompress(compressed, limit: maxDecompressedBytes)
            } catch {
                throw corrupt("text of keyword '\(keyword)' does not decompress: \(error.reason)")
            }
        }

        switch chunk.type {
        case "tEXt":
            return (keyword, latin1(data[cursor...]))

        case "zTXt":
            guard cursor < data.endIndex else { throw corrupt("missing compression method byte") }
            guard data[cursor] == 0 else { throw corrupt("unknown compression method \(data[cursor])") }
            cursor += 1
            return (keyword, latin1(try inflate(data[cursor...])[...]))

        default: // iTXt
            guard cursor + 2 <= data.endIndex else { throw corrupt("missing compression flag and method") }
            let compressed = data[cursor] != 0
            let method = data[cursor + 1]
            guard !compressed || method == 0 else { throw corrupt("unknown compression method \(method)") }
            cursor += 2
            // Language tag, then translated keyword: both NUL-terminated and not needed here.
            for field in ["language tag", "translated keyword"] {
                guard let end = data[cursor...].firstIndex(of: 0) else { throw corrupt("no NUL after the \(field)") }
                cursor = end + 1
            }
            let textBytes = compressed ? try inflate(data[cursor...])[...] : data[cursor...]
            guard let text = String(validating: textBytes, as: UTF8.self) else {
                throw corrupt("text of keyword '\(keyword)' is not valid UTF-8")
            }
            return (keyword, text)
        }
    }

    /// A tEXt chunk when the text is Latin-1, otherwise an uncompressed iTXt chunk (UTF-8).
    /// Throws when the keyword breaks the spec's rules: 1-79 printable Latin-1 characters, no
    /// leading, trailing or doubled spaces; or when the text contains NUL.
    static func encodeChunk(keyword: String, text: String) throws -> [UInt8] {
        guard let keywordBytes = latin1Bytes(keyword),
              (1...79).contains(keywordBytes.count),
              keywordBytes.allSatisfy({ (32...126).contains($0) || (161...255).contains($0) }),
              keywordBytes.first != 32, keywordBytes.last != 32,
              !zip(keywordBytes, keywordBytes.dropFirst()).contains(where: { $0 == 32 && $1 == 32 })
        else {
            throw MediaError.invalidArgument(
                what: "PNG text keyword '\(keyword)'",
                reason: "must be 1-79 printable Latin-1 characters without leading, trailing or double spaces")
        }
        guard !text.unicodeScalars.contains("\0") else {
            throw MediaError.invalidArgument(
                what: "PNG text for keyword '\(keyword)'", reason: "must not contain NUL characters")
        }
        if let textBytes = latin1Bytes(text) {
            return PNGChunkStream.encodeChunk(type: "tEXt", data: keywordBytes + [0] + textBytes)
        }
        // Keyword, NUL, compression flag 0, method 0, empty language tag, empty translated keyword.
        let header = keywordBytes + [0, 0, 0, 0, 0]
        return PNGChunkStream.encodeChunk(type: "iTXt", data: header + Array(text.utf8))
    }

    private static func latin1<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var result = ""
        result.unicodeScalars.append(contentsOf: bytes.map { Unicode.Scalar($0) })
        return result
    }

    private static func latin1Bytes(_ string: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        for scalar in string.unicodeScalars {
            guard scalar.value <= 0xFF else { return nil }
            bytes.append(UInt8(scalar.value))
        }
        return bytes
    }
}
