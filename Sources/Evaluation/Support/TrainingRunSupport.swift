import Adapters
import Diffusion
import Foundation

extension BaseModelIdentity {
    /// The identity adapter files record: the model folder's name and its U-Net config.
    public init(modelFolder: String, pipeline: TextToVideoPipeline) throws {
        try self.init(name: URL(fileURLWithPath: modelFolder).standardizedFileURL.lastPathComponent,
                      unet: pipeline.unet)
    }
}

/// The run folders of the training commands.
public enum RunFolder {
    /// Refuses a new run into a folder that already holds something.
    public static func requireFresh(_ folder: String) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            throw EvaluationError("the run folder \(folder) is not empty; pass --resume to continue it, or choose another --out or --run-dir")
        }
    }
}

/// The files the commands write.
public enum OutputFile {
    /// `path`'s folder exists and is writable, and `path` is not a folder; `option` names it in errors.
    public static func checkWritable(_ path: String, option: String) throws {
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw EvaluationError("\(option) '\(path)': the folder '\(folder)' does not exist")
        }
        guard access(folder, W_OK) == 0 else {
            throw EvaluationError("\(option) '\(path)': the folder '\(folder)' is not writable")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw EvaluationError("\(option) '\(path)' is a folder")
        }
    }
}
