/// A small zlib (RFC 1950) / DEFLATE (RFC 1951) decompressor, modelled on Mark Adler's `puff.c`.
///
/// It exists for the compressed text chunks (zTXt, compressed iTXt): libpng decompresses those
/// only through its longjmp-based full API, and the package links no zlib module of its own. Text
/// chunks are small, so clarity wins over speed here; pixel data is decoded by libpng.
enum ZlibInflate {
    struct Failure: Error, Equatable {
        var reason: String
    }

    /// Decompresses a complete zlib stream, checking its header and Adler-32 trailer. Stops with a
    /// failure once the output would exceed `limit` bytes, so a decompression bomb costs nothing.
    static func decompress(_ input: ArraySlice<UInt8>, limit: Int) throws(Failure) -> [UInt8] {
        let bytes = Array(input)
        guard bytes.count >= 6 else { throw Failure(reason: "zlib stream of \(bytes.count) bytes is too short") }
        let method = bytes[0], flags = bytes[1]
        guard method & 0x0F == 8, method >> 4 <= 7 else {
            throw Failure(reason: "zlib header names compression method \(method & 0x0F), expected 8 (deflate)")
        }
        guard (UInt16(method) << 8 | UInt16(flags)) % 31 == 0 else {
            throw Failure(reason: "zlib header check bits are wrong")
        }
        guard flags & 0x20 == 0 else { throw Failure(reason: "zlib preset dictionaries are not allowed in PNG") }

        var state = InflateState(input: bytes, position: 2, limit: limit)
        try state.inflate()
        let trailerStart = state.position
        guard trailerStart + 4 <= bytes.count else { throw Failure(reason: "zlib stream ends before its Adler-32 checksum") }
        let stored = PNGChunkStream.readUInt32(bytes, at: trailerStart)
        let computed = adler32(state.output)
        guard stored == computed else { throw Failure(reason: "zlib Adler-32 checksum mismatch") }
        return state.output
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 bytes is the most that can be summed before the 32-bit sums may overflow.
            let end = min(bytes.count, index + 5552)
            for byte in bytes[index..<end] {
                a &+= UInt32(byte)
                b &+= a
            }
            a %= 65521
            b %= 65521
            index = end
        }
        return b << 16 | a
    }
}

/// A canonical Huffman code as `puff.c` stores it: how many codes have each length, and the
/// symbols ordered by code.
private struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int]

    /// Builds the code from per-symbol code lengths; rejects over-subscribed sets. Incomplete
    /// codes are allowed (RFC 1951 permits them for a single distance code).
    init(lengths: [Int]) throws(ZlibInflate.Failure) {
        symbols = [Int](repeating: 0, count: lengths.count)
        for length in lengths { counts[length] += 1 }
        var left = 1
        for length in 1..<16 {
            left <<= 1
            left -= counts[length]
            if left < 0 { throw ZlibInflate.Failure(reason: "deflate Huffman code is over-subscribed") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for length in 1..<15 { offsets[length + 1] = offsets[length] + counts[length] }
        for (symbol, length) in lengths.enumerated() where length != 0 {
            symbols[offsets[length]] = symbol
            offsets[length] += 1
        }
    }
}

private struct InflateState {
    let input: [UInt8]
    var position: Int
    let limit: Int
    var output: [UInt8] = []
    private var bitBuffer: UInt32 = 0
    private var bitCount = 0

    init(input: [UInt8], position: Int, limit: Int) {
        self.input = input
        self.position = position
        self.limit = limit
    }

    private static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                     35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                      3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                       257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
                                       8193, 12289, 16385, 24577]
    private static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                        7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    mutating func inflate() throws(ZlibInflate.Failure) {
        var isLast = false
        while !isLast {
            isLast = try bits(1) == 1
            switch try bits(2) {
            case 0: try storedBlock()
            case 1:
                var lengths = [Int](repeating: 8, count: 288)
                for symbol in 144..<256 { lengths[symbol] = 9 }
                for symbol in 256..<280 { lengths[symbol] = 7 }
                try codes(literals: Huffman(lengths: lengths),
                          distances: Huffman(lengths: [Int](repeating: 5, count: 30)))
            case 2: try dynamicBlock()
            default: throw ZlibInflate.Failure(reason: "deflate block type 3 is reserved")
            }
        }
        // The Adler-32 trailer starts at the next whole byte.
        bitBuffer = 0
        bitCount = 0
    }

    private mutating func bits(_ count: Int) throws(ZlibInflate.Failure) -> Int {
        while bitCount < count {
            guard position < input.count else {
                throw ZlibInflate.Failure(reason: "deflate stream ends unexpectedly")
            }
            bitBuffer |= UInt32(input[position]) << UInt32(bitCount)
            position += 1
            bitCount += 8
        }
        let value = Int(bitBuffer & ((1 << UInt32(count)) - 1))
        bitBuffer >>= UInt32(count)
        bitCount -= count
        return value
    }

    private mutating func storedBlock() throws(ZlibInflate.Failure) {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw ZlibInflate.Failure(reason: "stored block header is truncated") }
        let length = Int(input[position]) | Int(input[position + 1]) << 8
        let complement = Int(input[position + 2]) | Int(input[position + 3]) << 8
        guard length == ~complement & 0xFFFF else {
            throw ZlibInflate.Failure(reason: "stored block length does not match its complement")
        }
        position += 4
        guard position + length <= input.count else { throw ZlibInflate.Failure(reason: "stored block is truncated") }
        try reserve(length)
        output.append(contentsOf: input[position..<(position + length)])
        position += length
    }

    private mutating func reserve(_ count: Int) throws(ZlibInflate.Failure) {
        guard output.count + count <= limit else {
            throw ZlibInflate.Failure(reason: "decompressed data exceeds the limit of \(limit) bytes")
        }
    }

    private mutating func decode(_ code: Huffman) throws(ZlibInflate.Failure) -> Int {
        var value = 0, first = 0, index = 0
        for length in 1..<16 {
            value |= try bits(1)
            let count = code.counts[length]
            if value - count < first { return code.symbols[index + (value - first)] }
            index += count
            first = (first + count) << 1
            value <<= 1
        }
        throw ZlibInflate.Failure(reason: "invalid deflate Huffman code")
    }

    private mutating func codes(literals: Huffman, distances: Huffman) throws(ZlibInflate.Failure) {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 {
                try reserve(1)
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let lengthIndex = symbol - 257
                guard lengthIndex < 29 else { throw ZlibInflate.Failure(reason: "invalid deflate length symbol \(symbol)") }
                let length = Self.lengthBase[lengthIndex] + (try bits(Self.lengthExtra[lengthIndex]))
                let distanceIndex = try decode(distances)
                guard distanceIndex < 30 else { throw ZlibInflate.Failure(reason: "invalid deflate distance symbol \(distanceIndex)") }
                let distance = Self.distanceBase[distanceIndex] + (try bits(Self.distanceExtra[distanceIndex]))
                guard distance <= output.count else {
                    throw ZlibInflate.Failure(reason: "deflate distance \(distance) reaches before the start of the data")
                }
                try reserve(length)
                let start = output.count - distance
                for offset in 0..<length { output.append(output[start + offset]) }
            }
        }
    }

    private mutating func dynamicBlock() throws(ZlibInflate.Failure) {
        let literalCount = try bits(5) + 257
        let distanceCount = try bits(5) + 1
        let codeLengthCount = try bits(4) + 4
        guard literalCount <= 286, distanceCount <= 30 else {
            throw ZlibInflate.Failure(reason: "dynamic deflate block declares too many codes")
        }
        var codeLengthLengths = [Int](repeating: 0, count: 19)
        for index in 0..<codeLengthCount { codeLengthLengths[Self.codeLengthOrder[index]] = try bits(3) }
        let codeLengthCode = try Huffman(lengths: codeLengthLengths)

        var lengths: [Int] = []
        while lengths.count < literalCount + distanceCount {
            let symbol = try decode(codeLengthCode)
            switch symbol {
            case 0..<16:
                lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else {
                    throw ZlibInflate.Failure(reason: "deflate repeat code with no previous length")
                }
                lengths.append(contentsOf: repeatElement(previous, count: 3 + (try bits(2))))
            case 17:
                lengths.append(contentsOf: repeatElement(0, count: 3 + (try bits(3))))
            default:
                lengths.append(contentsOf: repeatElement(0, count: 11 + (try bits(7))))
            }
        }
        guard lengths.count == literalCount + distanceCount else {
            throw ZlibInflate.Failure(reason: "deflate code lengths overrun the declared count")
        }
        guard lengths[256] != 0 else { throw ZlibInflate.Failure(reason: "deflate block has no end-of-block code") }
        try codes(literals: Huffman(lengths: Array(lengths[0..<literalCount])),
                  distances: Huffman(lengths: Array(lengths[literalCount...])))
    }
}
