import ArgumentParser
import Foundation

/// A training command an evaluation runs into its `--out` folder: started fresh, or continued with
/// `--resume` when its run folder already holds a run record (a finished run then only writes its
/// file again). The command's own report goes to stderr: stdout belongs to the evaluation's table
/// or JSON.
enum EvalTrainingRun {
    /// Runs `Command` with `common + --out output --run-dir runFolder`, plus `--resume` for a run
    /// found in `runFolder` (by `runFile`) or `freshOnly` for a new one; returns `output`.
    @discardableResult
    static func ensure<Command: ParsableCommand>(_ type: Command.Type, output: String, runFolder: String, runFile: String,
                                                  common: [String], freshOnly: [String] = []) throws -> String {
        let resuming = FileManager.default.fileExists(atPath: (runFolder as NSString).appendingPathComponent(runFile))
        var command = try Command.parse(common + ["--out", output, "--run-dir", runFolder] + (resuming ? ["--resume"] : freshOnly))
        fflush(stdout)
        let saved = dup(STDOUT_FILENO)
        dup2(STDERR_FILENO, STDOUT_FILENO)
        defer { fflush(stdout); dup2(saved, STDOUT_FILENO); close(saved) }
        try command.run()
        return output
    }
}
