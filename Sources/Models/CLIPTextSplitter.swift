/// Text cleaning and pre-tokenization of CLIP's tokenizer, on Unicode scalars.
///
/// Mirrors the path transformers' slow `CLIPTokenizer._tokenize` takes when `ftfy` is not installed:
/// `BasicTokenizer(strip_accents=False, do_split_on_punc=False)` (drop NUL, U+FFFD and control
/// characters, turn whitespace into spaces, put spaces around CJK ideographs, NFC, split on
/// whitespace, lower-case), then `re.findall` with CLIP's pattern
/// `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`.
/// Python's string functions are matched scalar by scalar (Python strings are sequences of code
/// points, not grapheme clusters).
enum CLIPTextSplitter {
    static let specialPieces = ["<|startoftext|>", "<|endoftext|>"]
    static let contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]

    /// The pieces BPE runs on, in order.
    static func pieces(of text: String) -> [String] {
        let cleaned = basicTokenize(text)
        return findAll(Array(cleaned.unicodeScalars))
    }

    // MARK: BasicTokenizer

    /// `BasicTokenizer.tokenize` joined by single spaces.
    static func basicTokenize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isBertWhitespace(scalar) {
                cleaned.append(" ")
            } else if isCJKIdeograph(scalar) {
                cleaned.append(" "); cleaned.append(scalar); cleaned.append(" ")
            } else {
                cleaned.append(scalar)
            }
        }
        let normalized = String(cleaned).precomposedStringWithCanonicalMapping
        let words = splitOnPythonWhitespace(Array(normalized.unicodeScalars))
        return words.map { pythonLower($0) }.joined(separator: " ")
    }

    /// transformers' `_is_control`: a `C*` category other than tab, newline and carriage return.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// transformers' `_is_whitespace`: space, tab, newline, carriage return or category `Zs`.
    static func isBertWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" { return true }
        return scalar.properties.generalCategory == .spaceSeparator
    }

    /// `_is_chinese_char`: the CJK Unified Ideographs blocks BERT's tokenizer isolates.
    static func isCJKIdeograph(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Python's `str.isspace()`: bidirectional class WS, B or S, or category Zs.
    static func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python's `str.split()` without arguments.
    static func splitOnPythonWhitespace(_ scalars: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for scalar in scalars {
            if isPythonWhitespace(scalar) {
                if !current.isEmpty { words.append(current); current = [] }
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// Python's `str.lower()`: the full lower-case mapping of each scalar, with the final-sigma rule
    /// (Σ becomes ς after a cased letter and not before one).
    static func pythonLower(_ word: [Unicode.Scalar]) -> String {
        var result = String.UnicodeScalarView()
        for (index, scalar) in word.enumerated() {
            if scalar == "\u{03A3}" {
                result.append(isFinalSigma(at: index, in: word) ? "\u{03C2}" : "\u{03C3}")
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(result)
    }

    private static func isFinalSigma(at index: Int, in word: [Unicode.Scalar]) -> Bool {
        func casedNeighbour(_ indices: some Sequence<Int>) -> Bool {
            for i in indices {
                let properties = word[i].properties
                if properties.isCaseIgnorable { continue }
                return properties.isCased
            }
            return false
        }
        return casedNeighbour(stride(from: index - 1, through: 0, by: -1))
            && !casedNeighbour(index + 1 ..< word.count)
    }

    // MARK: CLIP's pattern

    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` of the `regex` module: the Unicode White_Space property.
    static func isRegexSpace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace
    }

    /// `re.findall(pat, text)`: at each position the alternatives are tried in order; a position
    /// where none matches (whitespace) is skipped.
    static func findAll(_ scalars: [Unicode.Scalar]) -> [String] {
        var pieces: [String] = []
        var position = 0
        func piece(_ range: Range<Int>) -> String {
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[range])
            return String(view)
        }
        func hasPrefix(_ literal: String, at start: Int) -> Bool {
            var index = start
            for expected in literal.unicodeScalars {
                // The text is lower-cased already, so the pattern's IGNORECASE needs no work here.
                guard index < scalars.count, scalars[index] == expected else { return false }
                index += 1
            }
            return true
        }
        while position < scalars.count {
            if let literal = (specialPieces + contractions).first(where: { hasPrefix($0, at: position) }) {
                let length = literal.unicodeScalars.count
                pieces.append(piece(position ..< position + length))
                position += length
                continue
            }
            let scalar = scalars[position]
            if isLetter(scalar) {
                var end = position + 1
                while end < scalars.count, isLetter(scalars[end]) { end += 1 }
                pieces.append(piece(position ..< end))
                position = end
            } else if isNumber(scalar) {
                pieces.append(piece(position ..< position + 1))
                position += 1
            } else if !isRegexSpace(scalar) {
                var end = position + 1
                while end < scalars.count, !isRegexSpace(scalars[end]), !isLetter(scalars[end]), !isNumber(scalars[end]) {
                    end += 1
                }
                pieces.append(piece(position ..< end))
                position = end
            } else {
                position += 1
            }
        }
        return pieces
    }
}
