import ArgumentParser

/// Which world an evaluation (or train-onestep's default prompts) draws from: the core world, the
/// shipped base's pretraining distribution, unless `--full` asks for the full world's.
struct EvalWorldOption: ParsableArguments {
    @Flag(help: "Use the full world (its vocabulary and held-out compositions) instead of the core world, the shipped base's (the default).")
    var full = false
    /// The default since the shipped base is a core-world model; kept so that older command lines run.
    @Flag(help: .hidden) var core = false

    var isCore: Bool { !full }

    func validate() throws {
        guard !(core && full) else { throw ValidationError("--core and --full name different worlds; the core world is the default") }
    }
}
