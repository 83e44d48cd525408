import Diffusion
import Foundation
import Media
import Methods

/// What the adapter-training commands show and write while they train: a progress bar with the
/// loss, loss.png beside loss.csv, and previews under `<run>/previews/` (one grid PNG per preview
/// step, plus an MP4 per prompt when the previews have several frames).
public enum AdapterTrainingReport {
    public static func attach(_ training: AdapterTraining, label: String) {
        let reporter = ProgressReporter(label, total: training.totalSteps, unit: "step", completedBefore: training.step)
        if training.step > 0 {
            FileHandle.standardError.write("\(label): resuming at step \(training.step) of \(training.totalSteps)\n")
        }
        training.onStep = { report in
            reporter.update(report.step, note: String(format: "loss %.4f", report.loss))
        }
        training.onLog = { folder, records in
            try LossCurvePlot.write(records, to: (folder as NSString).appendingPathComponent("loss.png"))
        }
    }

    /// Writes `samples` of step `step` into `<folder>/previews/`; returns the paths written.
    @discardableResult
    public static func writePreview(_ samples: [PreviewSample], step: Int, folder: String, fps: Double = 8) throws -> [String] {
        let previews = (folder as NSString).appendingPathComponent("previews")
        try FileManager.default.createDirectory(atPath: previews, withIntermediateDirectories: true)
        let stem = (previews as NSString).appendingPathComponent(String(format: "step-%06d", step))
        try PreviewGrid.write(samples, step: step, to: stem + ".png")
        var written = [stem + ".png"]
        for (index, sample) in samples.enumerated() where sample.frames.count > 1 {
            let images = try sample.frames.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
            let path = stem + "-\(index + 1).mp4"
            try VideoWriter.write(images, to: path, options: VideoWriter.Options(fps: fps))
            written.append(path)
        }
        return written
    }
}
