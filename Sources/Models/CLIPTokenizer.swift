import Foundation

/// CLIP's byte-level BPE tokenizer, as transformers' slow `CLIPTokenizer` (without `ftfy`) runs it.
///
/// Text is cleaned and split by `CLIPTextSplitter`, each piece becomes UTF-8 byte symbols
/// (`CLIPByteSymbols`) with `</w>` appended to its last symbol, and the merges of merges.txt are
/// applied lowest rank first. A token missing from vocab.json becomes the unknown token
/// (`<|endoftext|>`, as in transformers); in CLIP's format every byte symbol is in the vocabulary,
/// so any text encodes.
public final class CLIPTokenizer: @unchecked Sendable {
    public static let beginToken = "<|startoftext|>"
    public static let endToken = "<|endoftext|>"
    /// transformers reads at most this many merges (`49152 - 256 - 2`), CLIP's vocabulary size less
    /// the byte symbols and the two markers.
    static let maxMerges = 49152 - 256 - 2

    public let vocabulary: [String: Int]
    /// The sequence length of `callAsFunction` (CLIP's 77 positions).
    public let maxLength: Int
    public let beginId: Int
    public let endId: Int
    public let padId: Int
    /// transformers' `unk_token`, CLIP's end marker.
    public let unknownId: Int

    private let tokenForId: [Int: String]
    private let mergeRanks: [SymbolPair: Int]
    private var bpeCache: [String: [String]] = [:]
    private let cacheLock = NSLock()

    struct SymbolPair: Hashable {
        let first: String
        let second: String
    }

    /// Loads vocab.json (token → id) and merges.txt (one merge per line, the first line a
    /// `#version` header that is skipped, as transformers does).
    public init(vocabularyFile: String, mergesFile: String, maxLength: Int = 77, padToken: String = CLIPTokenizer.endToken) throws {
        guard maxLength >= 2 else {
            throw ModelError.badTokenizer(file: vocabularyFile, reason: "maximum length \(maxLength) leaves no room for the begin and end tokens")
        }
        let vocabulary = try Self.readVocabulary(vocabularyFile)
        func id(of token: String, role: String) throws -> Int {
            guard let id = vocabulary[token] else {
                throw ModelError.badTokenizer(file: vocabularyFile, reason: "the \(role) token \"\(token)\" is not in the vocabulary")
            }
            return id
        }
        self.vocabulary = vocabulary
        self.maxLength = maxLength
        self.beginId = try id(of: Self.beginToken, role: "begin")
        self.endId = try id(of: Self.endToken, role: "end")
        self.padId = try id(of: padToken, role: "pad")
        self.unknownId = endId
        var tokenForId: [Int: String] = [:]
        for (token, id) in vocabulary { tokenForId[id] = token }
        self.tokenForId = tokenForId
        self.mergeRanks = try Self.readMerges(mergesFile)
    }

    /// Loads a diffusers `tokenizer/` folder: vocab.json, merges.txt, and when present
    /// tokenizer_config.json (`model_max_length`, `pad_token`) and special_tokens_map.json (`pad_token`).
    public convenience init(folder: String) throws {
        let base = URL(fileURLWithPath: folder)
        let vocabularyFile = base.appendingPathComponent("vocab.json").path
        let mergesFile = base.appendingPathComponent("merges.txt").path
        for file in [vocabularyFile, mergesFile] where !FileManager.default.fileExists(atPath: file) {
            throw ModelError.missingComponent(folder: folder, component: (file as NSString).lastPathComponent)
        }
        let configFile = base.appendingPathComponent("tokenizer_config.json").path
        let specialFile = base.appendingPathComponent("special_tokens_map.json").path
        let config = try Self.readOptionalJSONObject(configFile)
        let special = try Self.readOptionalJSONObject(specialFile)

        var maxLength = 77
        if let value = config?["model_max_length"] {
            guard let number = value as? NSNumber else {
                throw ModelError.badTokenizer(file: configFile, reason: "model_max_length must be a number, found \(value)")
            }
            // transformers writes 1e30 ("VERY_LARGE_INTEGER") when no length was set; CLIP has 77 positions then.
            if number.doubleValue < 1e12 {
                maxLength = number.intValue
            }
        }
        let padToken = try Self.tokenText(config?["pad_token"], file: configFile)
            ?? Self.tokenText(special?["pad_token"], file: specialFile)
            ?? Self.endToken
        try self.init(vocabularyFile: vocabularyFile, mergesFile: mergesFile, maxLength: maxLength, padToken: padToken)
    }

    // MARK: Encoding

    /// The ids of `text` with the begin and end tokens, neither padded nor truncated.
    public func encode(_ text: String) -> [Int] {
        [beginId] + contentIds(text) + [endId]
    }

    /// `text` as the text encoder takes it: begin token, at most `maxLength - 2` tokens, end token,
    /// then pad tokens up to `maxLength` (transformers' `padding="max_length", truncation=True`).
    public func callAsFunction(_ text: String) -> TokenizedPrompt {
        let content = contentIds(text)
        let room = maxLength - 2
        let truncated = content.count > room
        var ids = [beginId] + content.prefix(room) + [endId]
        ids += Array(repeating: padId, count: maxLength - ids.count)
        return TokenizedPrompt(ids: ids, truncated: truncated, tokens: ids.map(readableToken))
    }

    /// The positions in the padded sequence of `prompt` that hold the tokens of `word` (every
    /// occurrence; a word of several tokens contributes all of them). Empty when the word does not
    /// occur, or occurs only in the truncated tail.
    public func tokenIndices(of word: String, in prompt: String) -> [Int] {
        let needle = contentIds(word)
        let haystack = callAsFunction(prompt).ids
        guard !needle.isEmpty, needle.count <= haystack.count else { return [] }
        var positions: [Int] = []
        for start in 0 ... haystack.count - needle.count where haystack[start ..< start + needle.count].elementsEqual(needle) {
            positions += Array(start ..< start + needle.count)
        }
        return positions
    }

    /// The text of `ids` as transformers' `decode(ids, skip_special_tokens=True)` gives it: begin,
    /// end and pad tokens (and ids outside the vocabulary) are left out, bytes are decoded as UTF-8
    /// with replacement characters, each `</w>` becomes a space, and the ends are trimmed.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where id != beginId && id != endId && id != padId {
            guard let token = tokenForId[id] else { continue }
            bytes += CLIPByteSymbols.bytes(of: token)
        }
        let text = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "</w>", with: " ")
        let scalars = Array(text.unicodeScalars)
        guard let first = scalars.firstIndex(where: { !CLIPTextSplitter.isPythonWhitespace($0) }),
              let last = scalars.lastIndex(where: { !CLIPTextSplitter.isPythonWhitespace($0) }) else { return "" }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first ... last])
        return String(view)
    }

    /// The token strings (vocabulary keys) of `text`, without begin and end tokens.
    public func tokenStrings(_ text: String) -> [String] {
        CLIPTextSplitter.pieces(of: text).flatMap { piece -> [String] in
            if CLIPTextSplitter.specialPieces.contains(piece) { return [piece] }
            return bpe(CLIPByteSymbols.symbols(of: piece[...]).joined())
        }
    }

    func contentIds(_ text: String) -> [Int] {
        tokenStrings(text).map { vocabulary[$0] ?? unknownId }
    }

    func readableToken(_ id: Int) -> String {
        guard let token = tokenForId[id] else { return "" }
        if token == Self.beginToken || token == Self.endToken || id == padId { return token }
        var text = String(decoding: CLIPByteSymbols.bytes(of: token), as: UTF8.self)
        if text.hasSuffix("</w>") { text.removeLast(4) }
        return text
    }

    // MARK: BPE

    /// The BPE tokens of one piece given as byte symbols; mirrors `CLIPTokenizer.bpe`.
    func bpe(_ piece: String) -> [String] {
        cacheLock.lock()
        let cached = bpeCache[piece]
        cacheLock.unlock()
        if let cached { return cached }

        let word = Self.applyMerges(to: piece, ranks: mergeRanks)
        cacheLock.lock()
        bpeCache[piece] = word
        cacheLock.unlock()
        return word
    }

    /// The BPE loop of transformers' `CLIPTokenizer.bpe`: split into symbols, mark the last with
    /// `</w>`, then repeatedly merge every occurrence of the lowest-ranked adjacent pair present.
    static func applyMerges(to piece: String, ranks: [SymbolPair: Int]) -> [String] {
        var word = piece.unicodeScalars.map { String(Character($0)) }
        guard !word.isEmpty else { return [] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, pair: SymbolPair)?
            for index in 0 ..< word.count - 1 {
                let pair = SymbolPair(first: word[index], second: word[index + 1])
                if let rank = ranks[pair], rank < (best?.rank ?? Int.max) {
                    best = (rank, pair)
                }
            }
            guard let (_, pair) = best else { break }
            // Merge every occurrence, scanning left to right without overlap.
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var index = 0
            while index < word.count {
                if index < word.count - 1, word[index] == pair.first, word[index + 1] == pair.second {
                    merged.append(pair.first + pair.second)
                    index += 2
                } else {
                    merged.append(word[index])
                    index += 1
                }
            }
            word = merged
        }
        return word
    }

    // MARK: Files

    static func readVocabulary(_ file: String) throws -> [String: Int] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ModelError.badTokenizer(file: file, reason: "cannot read the vocabulary: \(error.localizedDescription)")
        }
        // JSONDecoder, unlike JSONSerialization on Linux, tells 0 and 1 from false and true.
        guard let vocabulary = try? JSONDecoder().decode([String: Int].self, from: data) else {
            throw ModelError.badTokenizer(file: file, reason: "expected a JSON object mapping tokens to integer ids")
        }
        if let (token, id) = vocabulary.first(where: { $0.value < 0 }) {
            throw ModelError.badTokenizer(file: file, reason: "token \"\(token)\" has the negative id \(id)")
        }
        return vocabulary
    }

    static func readMerges(_ file: String) throws -> [SymbolPair: Int] {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ModelError.badTokenizer(file: file, reason: "cannot read the merges as UTF-8 text: \(error.localizedDescription)")
        }
        // transformers: read().strip().split("\n")[1 : 49152 - 256 - 2 + 1]
        let lines = text.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        var ranks: [SymbolPair: Int] = [:]
        for (lineIndex, line) in lines.enumerated().dropFirst().prefix(maxMerges) {
            let parts = line.split(whereSeparator: { $0.isWhitespace })
            if parts.isEmpty { continue }
            guard parts.count == 2 else {
                throw ModelError.badTokenizer(file: file, reason: "line \(lineIndex + 1): expected two symbols separated by a space, found \"\(line)\"")
            }
            let pair = SymbolPair(first: String(parts[0]), second: String(parts[1]))
            // A repeated merge takes its last rank, as Python's dict(zip(...)) does.
            ranks[pair] = lineIndex - 1
        }
        return ranks
    }

    static func readOptionalJSONObject(_ file: String) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        guard let data = FileManager.default.contents(atPath: file),
              let object = try? JSONSerialization.jsonObject(with: data), let dictionary = object as? [String: Any] else {
            throw ModelError.badTokenizer(file: file, reason: "expected a JSON object")
        }
        return dictionary
    }

    /// A special-token entry: a string, or an `AddedToken` object with a `content` string.
    static func tokenText(_ value: Any?, file: String) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        if let text = value as? String { return text }
        if let object = value as? [String: Any], let content = object["content"] as? String { return content }
        throw ModelError.badTokenizer(file: file, reason: "pad_token must be a string or an object with a \"content\" string, found \(value)")
    }
}
