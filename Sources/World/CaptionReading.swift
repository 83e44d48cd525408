/// What a caption in the world's grammar says about its first object and its background, read back
/// from the words ("a medium yellow dotted circle zigzagging quickly on a brown background": yellow,
/// circle, medium, "zigzagging quickly", brown). Words the grammar does not know are passed over, so
/// a caption of another kind yields what it happens to name, and nil for the rest.
public struct CaptionReading: Equatable, Sendable {
    public var colour: NamedColour?
    public var shape: ObjectShape?
    public var size: ObjectSize?
    /// The background's colour: the colour word between the last "on" and "background".
    public var background: NamedColour?
    /// The words between the object's name and the next "on" ("zigzagging quickly",
    /// "moving up and left slowly"); nil when the object is not named or nothing follows it.
    public var motionPhrase: String?
}

extension CaptionReading {
    /// Reads `caption` (an extension, so that the memberwise initialiser stays).
    public init(_ caption: String) {
        let words = caption.lowercased().split { !$0.isLetter }.map(String.init)
        let objectIndex = words.firstIndex { ObjectKind(word: $0) != nil }
        if let objectIndex {
            if case let .shape(shape)? = ObjectKind(word: words[objectIndex]) { self.shape = shape }
            let before = words[..<objectIndex]
            colour = before.last { NamedColour(rawValue: $0) != nil }.flatMap(NamedColour.init(rawValue:))
            size = before.last { ObjectSize(rawValue: $0) != nil }.flatMap(ObjectSize.init(rawValue:))
            let after = words[(objectIndex + 1)...]
            let phrase = after.prefix { $0 != "on" }
            motionPhrase = phrase.isEmpty ? nil : phrase.joined(separator: " ")
        }
        if let phrase = Self.backgroundWords(words) {
            background = phrase.first { NamedColour(rawValue: $0) != nil }.flatMap(NamedColour.init(rawValue:))
        }
    }

    /// The caption's background phrase, from its last "on" before its last "background" through
    /// that word ("on an orange gradient background"), lower-cased; nil when it has none.
    public static func backgroundPhrase(in caption: String) -> String? {
        let words = caption.lowercased().split { !$0.isLetter }.map(String.init)
        return backgroundWords(words).map { words[($0.startIndex - 1)...$0.endIndex].joined(separator: " ") }
    }

    /// The words between the last "on" and the last "background" (both left out), or nil.
    private static func backgroundWords(_ words: [String]) -> ArraySlice<String>? {
        guard let end = words.lastIndex(of: "background"), let on = words[..<end].lastIndex(of: "on") else { return nil }
        return words[(on + 1)..<end]
    }
}
