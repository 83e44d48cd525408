import Adapters
import Diffusion
import Foundation

/// What the adapter-training runs (train-lora, train-content, train-style, make) and the runs the
/// evaluations train share.
enum AdapterRun {
    /// The model a run trains on and the identity its adapter file records (`base_model`).
    static func loadModel(_ folder: String, motionAdapter: String? = nil) throws -> (TextToVideoPipeline, BaseModelIdentity) {
        let pipeline = try TextToVideoPipeline.load(folder: folder, motionAdapter: motionAdapter)
        return (pipeline, try BaseModelIdentity(modelFolder: folder, pipeline: pipeline))
    }

    /// A run's folder: the one given, else `<out without extension>-run`.
    static func runFolder(_ given: String?, out: String) -> String {
        given ?? (out as NSString).deletingPathExtension + "-run"
    }
}

/// What a finished adapter-training run (train-lora, train-content, train-style, make) wrote.
public struct AdapterRunResult {
    /// The adapter file.
    public var output: String
    /// The run folder (checkpoints, loss.csv, loss.png, previews).
    public var runFolder: String
    public var seconds: Double
    /// The line the training commands print, e.g. "trained in 0:42; wrote cat.safetensors (run in cat-run)".
    public var summary: String

    init(output: String, runFolder: String, seconds: Double, verb: String) {
        self.output = output
        self.runFolder = runFolder
        self.seconds = seconds
        summary = "\(verb) in \(ProgressReporter.formatDuration(seconds)); wrote \(output) (run in \(runFolder))"
    }

    /// Whether `runFolder` holds a run record (`runFile`): an evaluation then continues the run
    /// instead of starting it again (a finished run only writes its file again).
    public static func isStarted(_ runFolder: String, runFile: String) -> Bool {
        FileManager.default.fileExists(atPath: (runFolder as NSString).appendingPathComponent(runFile))
    }
}

extension AdapterRunResult {
    /// For a run an evaluation trains: the summary goes to standard error (standard output belongs to
    /// the evaluation's table or JSON); returns the adapter file.
    func reported() -> String {
        FileHandle.standardError.write(summary + "\n")
        return output
    }
}
