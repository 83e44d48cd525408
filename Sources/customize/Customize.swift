import ArgumentParser
import Evaluation
import Foundation

/// The `customize` command: one subcommand per file in this folder, each thin over the libraries.
struct Customize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customize",
        abstract: "Customize compact text-to-video and text-to-image diffusion models on a CPU.",
        discussion: """
        Examples:
          customize render "a red ball bouncing" --frames 8 --seed 1 --out ball.mp4
          customize render --prompts prompts/demo.txt --out renders/demo
          customize inspect samples/base clip.mp4 adapter.safetensors
          customize inspect frames/ --json
          customize frames clip.mp4 --out frames/ --count 8 --size 64x64
          customize encode frames/ --out clip.mp4 --fps 8
          customize world --out world/ --images 16 --clips 4 --split train
          customize pretrain --out runs/base
          customize world --motion zigzag --clips 3 --out samples/clips
          customize train-motion samples/clips --out motions/zigzag
          customize render "a red star on a gray background" --motion motions/zigzag/temporal.safetensors --out star.mp4
          customize animate star.png "a red star zigzagging" --motion motions/zigzag/temporal.safetensors
          customize train-lora samples/concepts/cat --token "<cat>" --class cat --out loras/cat.safetensors
          customize compose "a cat on the left and a dog on the right" --lora cat --lora dog
          customize eval base --prompts 40
          customize bench engine --json
          customize bench motion --json
        """,
        version: "0.1.0",
        subcommands: [Render.self, Compose.self, Inspect.self, Frames.self, Encode.self, WorldCommand.self, Pretrain.self,
                      TrainMotion.self, TrainLoRA.self, TrainContent.self, TrainStyle.self, Make.self, TrainOnestep.self, Animate.self, Eval.self, Bench.self])

    /// Runs the command line with the project's error reporting and exit codes (see `ExitStatus`).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ExitStatus.Failure {
            FileHandle.standardError.write("customize: \(error.message)\n")
            Foundation.exit(error.status.rawValue)
        } catch let error as EvaluationError {
            // The libraries' failures: bad input or files, named in the message.
            FileHandle.standardError.write("customize: \(error.message)\n")
            Foundation.exit(ExitStatus.failure.rawValue)
        } catch {
            if let exitCode = error as? ExitCode { Foundation.exit(exitCode.rawValue) }
            // ArgumentParser's own errors (usage, --help, --version) keep its formatting and codes.
            let message = fullMessage(for: error)
            let code = exitCode(for: error)
            if code == .success {
                print(message)
                Foundation.exit(0)
            }
            if isArgumentParserError(error) {
                FileHandle.standardError.write("\(message)\n")
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            FileHandle.standardError.write("customize: error: \(describe(error))\n")
            Foundation.exit(ExitStatus.failure.rawValue)
        }
    }

    private static func isArgumentParserError(_ error: Error) -> Bool {
        String(reflecting: type(of: error)).hasPrefix("ArgumentParser.")
    }
}

/// Exit codes, the same for every subcommand.
enum ExitStatus: Int32 {
    case success = 0
    /// The command failed: bad input, unreadable file, unwritable output...
    case failure = 1
    /// A command over many items finished, but some items failed (each was reported).
    case partial = 2
    /// The command line itself was wrong (unknown option, missing argument).
    case usage = 64

    /// A failure with its exit status; `describe` (Evaluation) gives its message.
    struct Failure: Error, CustomStringConvertible {
        let status: ExitStatus
        let message: String

        var description: String { message }
    }
}
