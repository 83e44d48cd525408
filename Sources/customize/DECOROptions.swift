import ArgumentParser
import Methods

/// `--decor-remove "words" [--decor-strength A]`: DECOR's projection of the prompt's text states
/// away from the words' embedding span (`DECORProjection`), shared by the commands that render.
struct DECOROptions: ParsableArguments {
    @Option(name: .customLong("decor-remove"),
            help: ArgumentHelp("Remove these words' meaning from the prompt's text embeddings (DECOR); comma-separated phrases.",
                               valueName: "words"))
    var words: String?
    @Option(name: .customLong("decor-strength"), help: "How much of the words' span DECOR removes, 0…1 (default 1: all).")
    var strength: Float?

    /// Throws unless the options fit together; `training` adds `--decor-train` to the check.
    func validate(training decorTrain: Bool) throws {
        if let strength {
            guard strength.isFinite, (0...1).contains(strength) else {
                throw ValidationError("--decor-strength must lie in [0, 1], got \(strength)")
            }
            guard words != nil else { throw ValidationError("--decor-strength needs --decor-remove WORDS") }
        }
        if let words, words.split(separator: ",").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw ValidationError("--decor-remove names no word")
        }
        if decorTrain, words == nil { throw ValidationError("--decor-train needs --decor-remove WORDS") }
    }

    /// The setting these options ask for, or nil without --decor-remove.
    func setting(training: Bool = false) -> DECORSetting? {
        words.map { DECORSetting(words: $0, strength: strength ?? 1, appliesToTraining: training) }
    }

    var setting: DECORSetting? { setting() }
}
