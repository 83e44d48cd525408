import Diffusion
import Foundation

/// What a command asks of DECOR: the undesired words (comma-separated phrases), the strength α, and
/// whether the projection also applies to the training prompts' embeddings (`--decor-train`, ours);
/// recorded in run files so a resumed run projects as the first part did.
public struct DECORSetting: Codable, Equatable, Sendable {
    public var words: String
    public var strength: Float
    public var appliesToTraining: Bool

    enum CodingKeys: String, CodingKey {
        case words, strength
        case appliesToTraining = "applies_to_training"
    }

    public init(words: String, strength: Float = 1, appliesToTraining: Bool = false) {
        self.words = words
        self.strength = strength
        self.appliesToTraining = appliesToTraining
    }

    /// The projection for `pipeline`'s text encoder.
    public func projection(for pipeline: TextToVideoPipeline) throws -> DECORProjection {
        try DECORProjection(removing: words, pipeline: pipeline, strength: strength)
    }

    /// Sets `pipeline` to project its conditional text states (or clears it, for nil).
    public static func install(_ setting: DECORSetting?, on pipeline: TextToVideoPipeline) throws {
        guard let setting else {
            pipeline.conditionalTextTransform = nil
            return
        }
        let projection = try setting.projection(for: pipeline)
        pipeline.conditionalTextTransform = { try projection.apply($0) }
    }

    /// "words" at strength 1, else "words@α": how metadata records it.
    public var label: String { strength == 1 ? words : "\(words)@\(strength)" }
}
