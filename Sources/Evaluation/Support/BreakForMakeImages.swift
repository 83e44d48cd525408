import Adapters
import Diffusion
import Foundation
import Methods

/// The image folders of the Break-for-Make commands, read as `train-lora` reads its folder: every
/// image centre-cropped to the model's size plus the crop-jitter margin, its caption from the .txt file
/// beside it or else a default, encoded to cached latents (with mirrored copies when flipping).
public enum BreakForMakeImages {
    /// The images of `folder` with `fallbackCaption`; names get `prefix` (an auxiliary set's folder name).
    public static func read(_ folder: String, fallbackCaption: String, prefix: String = "", pipeline: TextToVideoPipeline,
                            jitter: Int, command: String) throws -> [MotionClipSource] {
        let names = try TrainingMedia.files(in: folder, extensions: TrainingMedia.imageExtensions, kind: "images")
        let margin = 2 * jitter * pipeline.vaeScaleFactor
        let width = pipeline.pixelSize.width + margin, height = pipeline.pixelSize.height + margin
        var sources: [MotionClipSource] = [], skipped: [(name: String, reason: String)] = []
        for name in names {
            let path = (folder as NSString).appendingPathComponent(name)
            do {
                let caption = try TrainingMedia.caption(besides: path) ?? fallbackCaption
                let image = try TrainingMedia.image(path, width: width, height: height)
                sources.append(MotionClipSource(name: prefix + name, caption: caption, frames: try TrainingMedia.tensor([image])))
            } catch {
                skipped.append((prefix + name, describe(error)))
            }
        }
        TrainingMedia.warnSkipped(skipped, command: command)
        guard !sources.isEmpty else {
            throw EvaluationError("no usable image in '\(folder)':\n"
                                  + skipped.map { "  \($0.name): \($0.reason)" }.joined(separator: "\n"))
        }
        return sources
    }

    /// Reads and encodes, with a progress line.
    public static func encode(_ sources: [MotionClipSource], pipeline: TextToVideoPipeline, config: BreakForMakeConfig,
                              label: String) throws -> [MotionTrainingClip] {
        let progress = ProgressReporter(label, total: sources.count, unit: "image")
        return try MotionTrainingClip.encode(sources, pipeline: pipeline, flips: config.randomFlip > 0, seed: config.seed) { done, _ in
            progress.update(done)
        }
    }

    /// A folder's last path component (an auxiliary set's name in default captions).
    public static func setName(_ folder: String) -> String {
        (URL(fileURLWithPath: folder).standardizedFileURL.lastPathComponent as NSString).deletingPathExtension
    }
}
