/// A prompt as the text encoder takes it: exactly `maxLength` ids, begin and end markers included.
public struct TokenizedPrompt: Sendable, Equatable {
    /// Token ids, padded with the pad token (or cut) to the tokenizer's `maxLength`.
    public var ids: [Int]
    /// True when the prompt had more tokens than fit; the tail was dropped, the end marker kept.
    public var truncated: Bool
    /// The readable text of each id (its bytes as UTF-8, without the `</w>` end-of-word marker),
    /// so users can see which position holds which word.
    public var tokens: [String]

    public init(ids: [Int], truncated: Bool, tokens: [String]) {
        self.ids = ids
        self.truncated = truncated
        self.tokens = tokens
    }
}
