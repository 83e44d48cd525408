import Adapters
import Diffusion
import Foundation

extension BaseModelIdentity {
    /// The identity adapter files record: the model folder's name and its U-Net config.
    init(modelFolder: String, pipeline: TextToVideoPipeline) throws {
        try self.init(name: URL(fileURLWithPath: modelFolder).standardizedFileURL.lastPathComponent,
                      unet: pipeline.unet)
    }
}

/// The run folders of the training commands.
enum RunFolder {
    /// Refuses a new run into a folder that already holds something.
    static func requireFresh(_ folder: String) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            throw ExitStatus.Failure(status: .failure, message: "the run folder \(folder) is not empty; pass --resume to continue it, or choose another --out or --run-dir")
        }
    }
}
