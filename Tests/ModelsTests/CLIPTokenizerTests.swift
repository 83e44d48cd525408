import Foundation
import XCTest
@testable import Models

final class CLIPTokenizerTests: XCTestCase {
    static let fixtureFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizer").path

    /// The words of the committed fixture vocabulary (Tests/Fixtures/tokenizer), written by
    /// `writeVocabulary`; `testWriterReproducesCommittedFixture` keeps the two in step.
    static let fixtureWords = [
        "a", "photo", "of", "the", "cat", "cats", "dog", "red", "blue", "car", "toy", "running", "on",
        "beach", "in", "style", "video", "walking", "and", "with", "jumping", "ball", "green", "tree",
        "sky", "at", "ca", "café", "naïve", "'s", "!!", "...", "hello", "world",
    ]

    func temporaryFolder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("clip-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func writtenTokenizer(_ words: [String]) throws -> CLIPTokenizer {
        let folder = try temporaryFolder()
        try CLIPTokenizer.writeVocabulary(words: words, to: folder)
        return try CLIPTokenizer(folder: folder)
    }

    // MARK: Writer

    func testWrittenVocabularyMakesEachWordOneToken() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        for word in Self.fixtureWords {
            let ids = tokenizer.encode(word)
            XCTAssertEqual(ids.count, 3, "\(word) should be one token, got \(tokenizer.tokenStrings(word))")
            XCTAssertEqual(tokenizer.decode(ids), word.lowercased())
        }
        // Dense ids, the byte symbols first, the two markers last, as CLIP lays them out.
        let ids = Set(tokenizer.vocabulary.values)
        XCTAssertEqual(ids, Set(0 ..< tokenizer.vocabulary.count))
        XCTAssertEqual(tokenizer.vocabulary["!"], 0)
        XCTAssertEqual(tokenizer.vocabulary["!</w>"], 256)
        XCTAssertEqual(tokenizer.beginId, tokenizer.vocabulary.count - 2)
        XCTAssertEqual(tokenizer.endId, tokenizer.vocabulary.count - 1)
        XCTAssertEqual(tokenizer.padId, tokenizer.endId)
        XCTAssertEqual(tokenizer.maxLength, 77)
    }

    func testWriterReproducesCommittedFixture() throws {
        let folder = try temporaryFolder()
        try CLIPTokenizer.writeVocabulary(words: Self.fixtureWords, to: folder)
        for name in ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] {
            let written = try Data(contentsOf: URL(fileURLWithPath: folder).appendingPathComponent(name))
            let committed = try Data(contentsOf: URL(fileURLWithPath: Self.fixtureFolder).appendingPathComponent(name))
            XCTAssertEqual(written, committed, "\(name) differs from Tests/Fixtures/tokenizer/\(name)")
        }
    }

    func testPiecesOfWordsStayWholeWhenSharingPrefixes() throws {
        // "cat" first, then "cats" and "ca": later merges must not split earlier words.
        let tokenizer = try writtenTokenizer(["cat", "cats", "ca", "c"])
        for word in ["cat", "cats", "ca", "c"] {
            XCTAssertEqual(tokenizer.tokenStrings(word), [word + "</w>"])
        }
    }

    // MARK: Encoding with the written vocabulary

    func testKnownIdsLowerCasingAndWhitespace() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        let cat = try XCTUnwrap(tokenizer.vocabulary["cat</w>"])
        let photo = try XCTUnwrap(tokenizer.vocabulary["photo</w>"])
        let a = try XCTUnwrap(tokenizer.vocabulary["a</w>"])
        let of = try XCTUnwrap(tokenizer.vocabulary["of</w>"])
        let expected = [tokenizer.beginId, a, photo, of, a, cat, tokenizer.endId]
        XCTAssertEqual(tokenizer.encode("a photo of a cat"), expected)
        XCTAssertEqual(tokenizer.encode("A PHOTO of a Cat"), expected)
        XCTAssertEqual(tokenizer.encode("  a\tphoto \n\n of   a cat  "), expected)
    }

    func testPunctuationDigitsAndContractions() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        XCTAssertEqual(tokenizer.tokenStrings("a cat's toy!!"), ["a</w>", "cat</w>", "'s</w>", "toy</w>", "!!</w>"])
        XCTAssertEqual(tokenizer.tokenStrings("cat,dog"), ["cat</w>", ",</w>", "dog</w>"])
        // Digits split one by one; each is a byte token.
        XCTAssertEqual(tokenizer.tokenStrings("42 cats"), ["4</w>", "2</w>", "cats</w>"])
        XCTAssertEqual(tokenizer.tokenStrings("red...blue"), ["red</w>", "...</w>", "blue</w>"])
    }

    func testUnknownWordsFallBackToByteSymbols() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        XCTAssertEqual(tokenizer.tokenStrings("zebra"), ["z", "e", "b", "r", "a</w>"])
        // "é" is two UTF-8 bytes, 0xC3 0xA9, shown as the symbols "Ã" and "©".
        XCTAssertEqual(tokenizer.tokenStrings("é"), ["Ã", "©</w>"])
        let ids = tokenizer.encode("zebra é 🐈")
        XCTAssertFalse(ids.dropFirst().dropLast().contains(tokenizer.unknownId))
        XCTAssertEqual(tokenizer.decode(ids), "zebra é 🐈")
    }

    func testPaddingAndTruncation() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        let short = tokenizer("a red car")
        XCTAssertEqual(short.ids.count, 77)
        XCTAssertFalse(short.truncated)
        XCTAssertEqual(Array(short.ids.prefix(5)), tokenizer.encode("a red car"))
        XCTAssertTrue(short.ids[5...].allSatisfy { $0 == tokenizer.padId })
        XCTAssertEqual(Array(short.tokens.prefix(5)), ["<|startoftext|>", "a", "red", "car", "<|endoftext|>"])

        let exactly = tokenizer(Array(repeating: "cat", count: 75).joined(separator: " "))
        XCTAssertFalse(exactly.truncated)
        XCTAssertEqual(exactly.ids.last, tokenizer.endId)

        let long = tokenizer(Array(repeating: "cat", count: 80).joined(separator: " "))
        XCTAssertTrue(long.truncated)
        XCTAssertEqual(long.ids.count, 77)
        XCTAssertEqual(long.ids.first, tokenizer.beginId)
        XCTAssertEqual(long.ids.last, tokenizer.endId)
        XCTAssertEqual(Set(long.ids[1 ..< 76]), [tokenizer.vocabulary["cat</w>"]!])
    }

    func testTokenIndices() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        XCTAssertEqual(tokenizer.tokenIndices(of: "cat", in: "a cat and a dog"), [2])
        XCTAssertEqual(tokenizer.tokenIndices(of: "a", in: "a cat and a dog"), [1, 4])
        XCTAssertEqual(tokenizer.tokenIndices(of: "Dog", in: "a cat and a dog"), [5])
        // A word of several tokens gives all of its positions; absent words give none.
        XCTAssertEqual(tokenizer.tokenIndices(of: "zebra", in: "a zebra"), [2, 3, 4, 5, 6])
        XCTAssertEqual(tokenizer.tokenIndices(of: "red car", in: "a red car"), [2, 3])
        XCTAssertEqual(tokenizer.tokenIndices(of: "tree", in: "a cat"), [])
        XCTAssertEqual(tokenizer.tokenIndices(of: "cats", in: "a cat"), [])
    }

    func testDecodeRoundTrip() throws {
        let tokenizer = try writtenTokenizer(Self.fixtureWords)
        for text in ["a photo of the cat", "walking in the green tree", "café naïve", "hello world"] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
            XCTAssertEqual(tokenizer.decode(tokenizer(text).ids), text)
        }
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("A  Photo\tOF the CAT")), "a photo of the cat")
    }

    // MARK: A hand-made BPE

    func handMadeTokenizer() throws -> CLIPTokenizer {
        let folder = try temporaryFolder()
        let vocabulary = ["h": 0, "e": 1, "l": 2, "o": 3, "o</w>": 4, "l</w>": 5, "he": 6, "ll": 7, "hell": 8,
                          "hello</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11]
        try JSONSerialization.data(withJSONObject: vocabulary).write(to: URL(fileURLWithPath: folder + "/vocab.json"))
        try "#version: 0.2\nh e\nl l\nhe ll\nhell o</w>\n".write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        return try CLIPTokenizer(folder: folder)
    }

    func testHandMadeMergesApplyByRank() throws {
        let tokenizer = try handMadeTokenizer()
        XCTAssertEqual(tokenizer.encode("hello"), [10, 9, 11])
        XCTAssertEqual(tokenizer.tokenStrings("hell"), ["he", "l", "l</w>"])
        XCTAssertEqual(tokenizer.encode("hell"), [10, 6, 2, 5, 11])
        XCTAssertEqual(tokenizer.tokenStrings("hellohello"), ["hell", "o", "hello</w>"])
        // A symbol missing from the vocabulary becomes the unknown token (<|endoftext|>).
        XCTAssertEqual(tokenizer.encode("help"), [10, 6, 2, 11, 11])
        XCTAssertEqual(tokenizer.maxLength, 77)
        XCTAssertEqual(tokenizer.padId, 11)
    }

    func testBadFilesThrowNamingTheFile() throws {
        let folder = try temporaryFolder()
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
        try "[1, 2]".write(toFile: folder + "/vocab.json", atomically: true, encoding: .utf8)
        try "#version: 0.2\n".write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("vocab.json"), "\(error)")
        }
        try "{\"a\": 0}".write(toFile: folder + "/vocab.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("<|startoftext|>"), "\(error)")
        }
        try "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}".write(toFile: folder + "/vocab.json", atomically: true, encoding: .utf8)
        try "#version: 0.2\na b c\n".write(toFile: folder + "/merges.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("merges.txt") && "\(error)".contains("line 2"), "\(error)")
        }
    }

    // MARK: transformers fixture

    struct ExpectedFile: Decodable {
        let cases: [ExpectedCase]
    }

    struct ExpectedCase: Decodable {
        let prompt: String
        let ids: [Int]
        let padded: [Int]
        let decoded: String
    }

    /// Ids recorded from transformers' slow CLIPTokenizer (no ftfy) by
    /// Tests/Fixtures/make_tokenizer_fixture.py on the committed fixture vocabulary.
    func testMatchesTransformersFixture() throws {
        let tokenizer = try CLIPTokenizer(folder: Self.fixtureFolder)
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtureFolder + "/expected.json"))
        let cases = try JSONDecoder().decode(ExpectedFile.self, from: data).cases
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for expected in cases {
            XCTAssertEqual(tokenizer.encode(expected.prompt), expected.ids, "prompt \(expected.prompt.debugDescription)")
            XCTAssertEqual(tokenizer(expected.prompt).ids, expected.padded, "padded prompt \(expected.prompt.debugDescription)")
            XCTAssertEqual(tokenizer.decode(expected.ids), expected.decoded, "decoding \(expected.prompt.debugDescription)")
        }
    }
}
