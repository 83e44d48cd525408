import Foundation

extension CLIPTokenizer {
    /// Writes a minimal CLIP-format tokenizer folder in which each of `words` is a single token.
    ///
    /// The vocabulary is laid out as OpenAI's CLIP builds it: the 256 byte symbols in
    /// `bytes_to_unicode()` order, the same with `</w>`, one token per merge result, then
    /// `<|startoftext|>` and `<|endoftext|>` last; ids are dense. Merges are found word by word: the
    /// word is run through the merges so far and, while it is still several tokens, a merge of its
    /// first two tokens is appended. A merge appended last cannot change a word that already ends as
    /// one token, so every listed word stays whole. Words are cleaned and lower-cased as prompts are;
    /// a "word" the pre-tokenizer splits (a contraction, digits, punctuation next to letters) gives one
    /// token per piece. The folder gets vocab.json, merges.txt (`#version: 0.2` header),
    /// tokenizer_config.json and special_tokens_map.json (pad `<|endoftext|>`, `model_max_length`
    /// `maxLength`, CLIP's 77 by default; a compact text encoder with fewer positions needs fewer),
    /// which transformers' `CLIPTokenizer.from_pretrained` reads as well. Each file is written atomically.
    public static func writeVocabulary(words: [String], to folder: String, maxLength: Int = 77) throws {
        var merges: [(String, String)] = []
        var ranks: [SymbolPair: Int] = [:]
        for word in words {
            for piece in CLIPTextSplitter.pieces(of: word) where !CLIPTextSplitter.specialPieces.contains(piece) {
                let symbols = CLIPByteSymbols.symbols(of: piece[...]).joined()
                var tokens = applyMerges(to: symbols, ranks: ranks)
                while tokens.count > 1 {
                    let pair = SymbolPair(first: tokens[0], second: tokens[1])
                    ranks[pair] = merges.count
                    merges.append((pair.first, pair.second))
                    tokens = applyMerges(to: symbols, ranks: ranks)
                }
            }
        }

        var orderedTokens: [String] = []
        var seen = Set<String>()
        func add(_ token: String) {
            if seen.insert(token).inserted { orderedTokens.append(token) }
        }
        let byteSymbols = CLIPByteSymbols.orderedPairs.map { String(Character($0.1)) }
        byteSymbols.forEach(add)
        byteSymbols.forEach { add($0 + "</w>") }
        merges.forEach { add($0.0 + $0.1) }
        add(beginToken)
        add(endToken)

        let vocabularyJSON = "{\n" + orderedTokens.enumerated()
            .map { "  \(jsonString($0.element)): \($0.offset)" }
            .joined(separator: ",\n") + "\n}\n"
        let mergesText = "#version: 0.2\n" + merges.map { "\($0.0) \($0.1)\n" }.joined()
        let specialTokens = """
            {
              "bos_token": "<|startoftext|>",
              "eos_token": "<|endoftext|>",
              "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>"
            }

            """
        let tokenizerConfig = """
            {
              "add_prefix_space": false,
              "bos_token": "<|startoftext|>",
              "do_lower_case": true,
              "eos_token": "<|endoftext|>",
              "errors": "replace",
              "model_max_length": \(maxLength),
              "pad_token": "<|endoftext|>",
              "tokenizer_class": "CLIPTokenizer",
              "unk_token": "<|endoftext|>"
            }

            """

        let base = URL(fileURLWithPath: folder)
        do {
            try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        } catch {
            throw ModelError.badTokenizer(file: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        for (name, text) in [("vocab.json", vocabularyJSON), ("merges.txt", mergesText),
                             ("tokenizer_config.json", tokenizerConfig), ("special_tokens_map.json", specialTokens)] {
            let url = base.appendingPathComponent(name)
            do {
                try Data(text.utf8).write(to: url, options: .atomic)
            } catch {
                throw ModelError.badTokenizer(file: url.path, reason: "cannot write: \(error.localizedDescription)")
            }
        }
    }

    /// A JSON string literal; non-ASCII characters stay as UTF-8, as Python's `ensure_ascii=False` writes them.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
