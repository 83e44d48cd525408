import ArgumentParser
import Evaluation
import Foundation
import Media

/// `customize encode FRAMES_DIR --out clip.mp4|clip.gif`: numbered PNG frames assembled into a clip
/// by `VideoWriter` (what diffusers' `export_to_video` / `export_to_gif` do).
struct Encode: ParsableCommand {
    static let supportedExtensions = ["mp4", "m4v", "gif"]

    static let configuration = CommandConfiguration(
        abstract: "Assemble a folder of PNG frames into an MP4 (H.264) or an animated GIF.",
        discussion: """
        Frames are the folder's .png files in natural order of the numbers in their names \
        (frame_2.png before frame_10.png); all must have one size. The container follows the \
        extension of --out: .mp4 or .m4v (H.264, or MPEG-4 part 2 where libx264 is missing) or \
        .gif (one palette fitted to the whole clip). The file appears only once it is complete.

        Examples:
          customize encode frames/ --out clip.mp4 --fps 8
          customize encode frames/ --out clip.gif --fps 4
        """)

    @Argument(help: "Folder of PNG frames.")
    var framesFolder: String

    @Option(help: "Output clip: .mp4, .m4v or .gif.")
    var out: String

    @Option(help: "Frames per second of the output.")
    var fps: Double = 8

    @Option(help: "H.264 quality, 0 (lossless) to 51; lower is better.")
    var crf: Int = 18

    func validate() throws {
        let fileExtension = URL(fileURLWithPath: out).pathExtension.lowercased()
        guard Self.supportedExtensions.contains(fileExtension) else {
            throw ValidationError("--out '\(out)': cannot write \(fileExtension.isEmpty ? "a file without an extension" : "'.\(fileExtension)' files"); "
                                  + "supported extensions: " + Self.supportedExtensions.map { ".\($0)" }.joined(separator: ", "))
        }
        guard fps.isFinite, fps > 0, fps <= 1000 else { throw ValidationError("--fps must be in (0, 1000], got \(fps)") }
        guard (0...51).contains(crf) else { throw ValidationError("--crf must be 0 to 51, got \(crf)") }
    }

    func run() throws {
        let frames = try Self.frameFiles(in: framesFolder)
        let output = SamePath.resolved(out)
        if output == SamePath.resolved(framesFolder) || frames.contains(where: { SamePath.resolved($0) == output }) {
            throw ExitStatus.Failure(status: .failure, message: "refusing to write --out '\(out)' over an input")
        }

        // Headers first: a size mismatch is reported before anything is decoded or encoded.
        let firstInfo = try PNGImage.readInfo(path: frames[0])
        for frame in frames.dropFirst() {
            let info = try PNGImage.readInfo(path: frame)
            if info.width != firstInfo.width || info.height != firstInfo.height {
                throw ExitStatus.Failure(status: .failure, message: "'\(frame)' is \(info.width)x\(info.height), "
                                         + "but the first frame '\(frames[0])' is \(firstInfo.width)x\(firstInfo.height); all frames must have one size")
            }
        }

        let writer = try VideoWriter(path: out, options: VideoWriter.Options(fps: fps, crf: crf))
        let progress = ProgressReporter("encode", total: frames.count, unit: "frame")
        for (index, frame) in frames.enumerated() {
            try writer.append(try PNGImage.read(path: frame).image)
            progress.update(index + 1)
        }
        try writer.finish()
        let padded = writer.container == .mp4 && (firstInfo.width % 2 == 1 || firstInfo.height % 2 == 1)
        print("wrote \(out): \(frames.count) frame\(frames.count == 1 ? "" : "s"), \(firstInfo.width)x\(firstInfo.height), "
              + "\(NumberText.format(fps)) fps, \(writer.encoderName ?? writer.container.rawValue)"
              + (padded ? " (odd size: the last column/row is repeated, H.264 needs even sizes)" : ""))
    }

    /// The folder's PNG files in natural order; an error when there are none.
    static func frameFiles(in folder: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw ExitStatus.Failure(status: .failure, message: "'\(folder)': no such folder")
        }
        guard isDirectory.boolValue else {
            throw ExitStatus.Failure(status: .failure, message: "'\(folder)' is a file; expected a folder of PNG frames")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot list '\(folder)': \((error as NSError).localizedDescription)")
        }
        let pngs = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".png") }.sorted(by: NaturalOrder.less)
        guard !pngs.isEmpty else {
            throw ExitStatus.Failure(status: .failure, message: "'\(folder)' holds no .png frames")
        }
        let base = folder.count > 1 && folder.hasSuffix("/") ? String(folder.dropLast()) : folder
        return pngs.map { base + "/" + $0 }
    }
}
