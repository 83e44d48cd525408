import Models

/// Which positions of a prompt's token sequence hold a concept's words: what both methods read
/// attention maps at. Users name concepts by words; indices are found here and shown to them
/// (CLoRA's reference notebook takes hand-written indices, and its most reported bug is an index one
/// off: in "A cat and a dog" it gives 6, the end token, for "dog", which sits at 5).
public enum ConceptTokens {
    /// The positions in the encoder's input of `prompt` (the begin token is position 0) that hold
    /// the tokens of `word`, every occurrence, only where the word starts and ends at word
    /// boundaries ("cat" is not found inside "bobcat"); a word of several tokens gives all of them.
    /// Occurrences cut off by the tokenizer's length limit are left out.
    public static func positions(of word: String, in prompt: String, tokenizer: CLIPTokenizer) -> [Int] {
        let needle = tokenizer.tokenStrings(word)
        let haystack = tokenizer.tokenStrings(prompt)
        let room = tokenizer.maxLength - 2
        guard !needle.isEmpty, needle.count <= haystack.count else { return [] }
        var positions: [Int] = []
        for start in 0 ... haystack.count - needle.count where start + needle.count <= room {
            guard haystack[start ..< start + needle.count].elementsEqual(needle) else { continue }
            // A word's last token carries CLIP's end-of-word marker; a match must follow one.
            guard start == 0 || haystack[start - 1].hasSuffix("</w>") else { continue }
            positions += Array(start + 1 ... start + needle.count)
        }
        return positions
    }

    /// The positions of any of `words` in `prompt`, sorted, each once.
    public static func positions(of words: [String], in prompt: String, tokenizer: CLIPTokenizer) -> [Int] {
        Array(Set(words.flatMap { positions(of: $0, in: prompt, tokenizer: tokenizer) })).sorted()
    }

    /// `2 (cat), 3 (dog)`: positions with the readable token each holds.
    public static func describe(_ positions: [Int], in prompt: String, tokenizer: CLIPTokenizer) -> String {
        let tokens = tokenizer(prompt).tokens
        return positions.map { "\($0) (\($0 < tokens.count ? tokens[$0] : "?"))" }.joined(separator: ", ")
    }
}
