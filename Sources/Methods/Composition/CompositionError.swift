import Foundation

/// What composing several concept LoRAs can refuse (principle 6): each case names the concept,
/// region, word, file or setting involved and says what was expected.
public enum CompositionError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// No concept to compose.
    case noConcepts
    /// Two concepts under one name.
    case duplicateConcept(String)
    /// A box with a coordinate outside [0, 1] (or not a number).
    case boxOutOfRange(concept: String, box: ConceptBox)
    /// A box whose x0 ≥ x1 or y0 ≥ y1.
    case emptyBox(concept: String, box: ConceptBox)
    /// Two boxes that share an area (concept isolation would then block attention inside the overlap).
    case boxesOverlap(String, ConceptBox, String, ConceptBox)
    /// A box that covers no cell of the attention grid the method works on.
    case boxTooSmall(concept: String, box: ConceptBox, grid: FeatureGrid)
    /// A method that places concepts in boxes got a concept without one.
    case missingBox(concept: String)
    /// None of a concept's words occurs in a prompt the method reads its tokens from.
    case wordsNotInPrompt(concept: String, words: [String], prompt: String)
    /// A concept names an adapter that is not loaded.
    case unknownAdapter(concept: String, adapter: String, loaded: [String])
    /// A LoRA file made for another base model (its stored U-Net config differs from this model's).
    case baseModelMismatch(file: String, stored: String, expected: String)
    /// The model has no spatial cross-attention layer to inject concepts into or read maps from.
    case noCrossAttention(String)
    /// A setting outside its range (the message names it and the range).
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .noConcepts:
            return "no concept LoRA to compose (give at least one)"
        case let .duplicateConcept(name):
            return "two concepts are named \"\(name)\"; give each LoRA its own name"
        case let .boxOutOfRange(concept, box):
            return "region of \(concept): \(box) lies outside the image; coordinates are fractions x0,y0,x1,y1 in [0, 1]"
        case let .emptyBox(concept, box):
            return "region of \(concept): \(box) is empty; x0 must be below x1 and y0 below y1"
        case let .boxesOverlap(first, firstBox, second, secondBox):
            return "regions of \(first) (\(firstBox)) and \(second) (\(secondBox)) overlap; give boxes that do not share an area"
        case let .boxTooSmall(concept, box, grid):
            return "region of \(concept): \(box) covers no cell of the \(grid.height)x\(grid.width) attention grid; make it larger"
        case let .missingBox(concept):
            return "\(concept) has no region"
        case let .wordsNotInPrompt(concept, words, prompt):
            return "the prompt \"\(prompt)\" does not name \(concept) (looked for: \(words.map { "\"\($0)\"" }.joined(separator: ", ")))"
        case let .unknownAdapter(concept, adapter, loaded):
            return "\(concept): no adapter named \"\(adapter)\" is loaded (loaded: \(loaded.isEmpty ? "none" : loaded.joined(separator: ", ")))"
        case let .baseModelMismatch(file, stored, expected):
            return "LoRA '\(file)' was made for another model (\(stored)); this model is \(expected)"
        case let .noCrossAttention(reason):
            return "the U-Net has no spatial cross-attention layer: \(reason)"
        case let .invalidSetting(message):
            return message
        }
    }

    public var errorDescription: String? { description }
}
