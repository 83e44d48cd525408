import Diffusion
import Foundation
import Tensor

/// DECOR's projection of text embeddings away from undesired words ("DECOR: Decomposition and
/// Projection of Text Embeddings for Text-to-Image Customization"): X′ = X − α·X·Ṽ·Ṽᵀ, where Ṽ holds
/// the right singular vectors of the undesired words' embedding rows X̃ whose singular values exceed
/// `relativeThreshold` (ours: 1e-3) times the largest. X is the text encoder's per-token output,
/// padding included; every row is projected.
///
/// Which rows make X̃ (ours): only the words' own tokens, without the begin, end and padding rows.
/// Under CLIP's causal attention the begin row is the same for every prompt, so keeping it would
/// put a direction into Ṽ that every prompt shares and the projection would strip it from all of
/// them; the end and padding rows summarise the whole phrase and carry as much of the template as
/// of the word. Each comma-separated phrase is encoded on its own, so a word is not coloured by the
/// ones before it.
public struct DECORProjection: Sendable {
    /// The default relative singular-value threshold (ours).
    public static let defaultThreshold: Double = 1e-3

    /// The undesired phrases, as given.
    public let phrases: [String]
    /// α ∈ [0, 1]: 1 removes the span completely, 0 leaves X as it is.
    public let strength: Float
    /// Ṽ's columns (each of the embedding width d), orthonormal.
    public let basis: [[Double]]
    /// The embedding width d.
    public let width: Int

    /// The projection away from the span of `undesiredRows` (X̃, each of width d).
    public init(undesiredRows: [[Float]], strength: Float = 1, relativeThreshold: Double = DECORProjection.defaultThreshold,
                phrases: [String] = []) throws {
        guard strength.isFinite, (0...1).contains(strength) else {
            throw MethodError.badSetting(name: "DECOR strength", reason: "must lie in [0, 1], got \(strength)")
        }
        guard relativeThreshold.isFinite, relativeThreshold >= 0, relativeThreshold < 1 else {
            throw MethodError.badSetting(name: "DECOR threshold", reason: "must lie in [0, 1), got \(relativeThreshold)")
        }
        guard let width = undesiredRows.first?.count, width > 0 else {
            throw MethodError.badSetting(name: "DECOR words", reason: "no embedding rows to remove")
        }
        guard undesiredRows.allSatisfy({ $0.count == width }) else {
            throw MethodError.badSetting(name: "DECOR words", reason: "embedding rows differ in width")
        }
        let svd = OneSidedJacobiSVD(rows: undesiredRows.map { $0.map(Double.init) })
        self.phrases = phrases
        self.strength = strength
        self.width = width
        basis = svd.vectors(aboveRelativeThreshold: relativeThreshold)
    }

    /// Encodes `words` (comma-separated phrases) with `pipeline`'s text encoder and takes their token rows.
    /// Any text encodes (CLIP's byte-level BPE has a token for every byte), so words outside the
    /// vocabulary are split into pieces rather than refused; text with no token at all is refused.
    public init(removing words: String, pipeline: TextToVideoPipeline, strength: Float = 1,
                relativeThreshold: Double = DECORProjection.defaultThreshold) throws {
        let phrases = words.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard !phrases.isEmpty else {
            throw MethodError.badSetting(name: "DECOR words", reason: "\"\(words)\" names no word to remove")
        }
        var rows: [[Float]] = []
        for phrase in phrases {
            rows += try Self.tokenRows(of: phrase, pipeline: pipeline)
        }
        try self.init(undesiredRows: rows, strength: strength, relativeThreshold: relativeThreshold, phrases: phrases)
    }

    /// The encoder's output rows of `phrase`'s own tokens (positions 1 … k after the begin token).
    public static func tokenRows(of phrase: String, pipeline: TextToVideoPipeline) throws -> [[Float]] {
        let tokens = min(pipeline.tokenizer.encode(phrase).count - 2, pipeline.tokenizer.maxLength - 2)
        guard tokens >= 1 else {
            throw MethodError.badSetting(name: "DECOR words", reason: "\"\(phrase)\" encodes to no token")
        }
        let states = try pipeline.encodePrompt(phrase)  // [1, L, d]
        let width = states.shape[2]
        let values = states.values
        return (1...tokens).map { row in Array(values[(row * width)..<((row + 1) * width)]) }
    }

    /// The rank of Ṽ (how many directions are removed).
    public var rank: Int { basis.count }

    /// X − α·X·Ṽ·Ṽᵀ for text states `[…, d]` (every row, padding included); no gradient history.
    public func apply(_ states: Tensor) throws -> Tensor {
        guard states.shape.last == width else {
            throw MethodError.badSetting(name: "DECOR projection",
                                         reason: "text states \(states.shape) do not end in the words' embedding width \(width)")
        }
        let result = states.detached().copy()
        guard strength != 0, !basis.isEmpty else { return result }
        let rows = states.count / width
        let x = result.data
        let alpha = Double(strength)
        var coefficients = [Double](repeating: 0, count: basis.count)
        for row in 0..<rows {
            let start = row * width
            for (k, vector) in basis.enumerated() {
                var dot = 0.0
                for j in 0..<width { dot += Double(x[start + j]) * vector[j] }
                coefficients[k] = dot
            }
            for j in 0..<width {
                var removed = 0.0
                for k in basis.indices { removed += coefficients[k] * basis[k][j] }
                x[start + j] = Float(Double(x[start + j]) - alpha * removed)
            }
        }
        return result
    }
}
