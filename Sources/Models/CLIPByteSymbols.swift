/// The byte-level alphabet of CLIP's BPE: every UTF-8 byte maps to one printable Unicode scalar.
///
/// Mirrors `bytes_to_unicode()` in transformers' `tokenization_clip.py` (and OpenAI's
/// `simple_tokenizer.py`): the printable Latin-1 bytes `!`…`~`, `¡`…`¬`, `®`…`ÿ` map to themselves,
/// the remaining 68 bytes (space, controls, …) map to U+0100 upwards in byte order, so BPE never
/// sees whitespace or control characters.
enum CLIPByteSymbols {
    /// The symbol of each byte value 0…255.
    static let symbolForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (byte, symbol) in orderedPairs { table[Int(byte)] = symbol }
        return table
    }()

    /// The byte of each symbol.
    static let byteForSymbol: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (byte, symbol) in orderedPairs { map[symbol] = byte }
        return map
    }()

    /// (byte, symbol) in the dictionary order of `bytes_to_unicode()`: the printable bytes first,
    /// then the others. CLIP's vocabulary lists the 256 single-symbol tokens in this order.
    static let orderedPairs: [(UInt8, Unicode.Scalar)] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let printableSet = Set(printable)
        var pairs = printable.map { (UInt8($0), Unicode.Scalar(UInt32($0))!) }
        var next: UInt32 = 256
        for byte in 0..<256 where !printableSet.contains(byte) {
            pairs.append((UInt8(byte), Unicode.Scalar(next)!))
            next += 1
        }
        return pairs
    }()

    /// A piece of text as byte symbols, one string per UTF-8 byte.
    static func symbols(of text: Substring) -> [String] {
        text.utf8.map { String(Character(symbolForByte[Int($0)])) }
    }

    /// The bytes a token string stands for; scalars outside the byte alphabet (a special token's
    /// text is plain ASCII, so this only concerns malformed vocabularies) fall back to their UTF-8.
    static func bytes(of token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in token.unicodeScalars {
            if let byte = byteForSymbol[scalar] {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
        }
        return bytes
    }
}
