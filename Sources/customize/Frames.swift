import ArgumentParser
import Evaluation
import Foundation
import Media

/// `customize frames CLIP --out DIR`: a clip's frames as numbered PNG files, sampled and resized
/// by `VideoReader.readFrames` (the frames a training run would see).
struct Frames: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Extract a clip's frames as PNG files frame_0001.png, frame_0002.png, ….",
        discussion: """
        Frames are sampled with --fps (frames nearest each instant) or --stride (every S-th frame), \
        starting at --start seconds, at most --count of them. --size resizes, cropping the centre \
        to the new aspect ratio, or with --letterbox fitting the whole frame and padding with black. \
        Each PNG is written to a temporary file and renamed, so a frame file is never half written.

        Examples:
          customize frames clip.mp4 --out frames/ --count 8 --size 64x64
          customize frames clip.mp4 --out frames/ --fps 4 --start 1.5 --size 96x64 --letterbox
        """)

    @Argument(help: "The clip to read (mp4, mov, webm, mkv, avi, gif, …).")
    var clip: String

    @Option(help: "Folder for the PNG frames (created if missing).")
    var out: String

    @Option(help: "Most frames to extract (default: all).")
    var count: Int?

    @Option(help: "Sample at this many frames per second.")
    var fps: Double?

    @Option(help: "Keep every S-th frame.")
    var stride: Int?

    @Option(help: "Start this many seconds into the clip.")
    var start: Double = 0

    @Option(help: "Output size WxH, e.g. 64x64 (default: the clip's size).")
    var size: String?

    @Flag(help: "With --size: fit the whole frame and pad with black instead of cropping the centre.")
    var letterbox = false

    func validate() throws {
        if let size { _ = try FrameSizeArgument.parse(size) }
        if let count, count < 1 { throw ValidationError("--count must be 1 or more, got \(count)") }
        if let stride, stride < 1 { throw ValidationError("--stride must be 1 or more, got \(stride)") }
        if let fps, !(fps.isFinite && fps > 0) { throw ValidationError("--fps must be a positive number, got \(fps)") }
        if fps != nil && stride != nil { throw ValidationError("give --fps or --stride, not both") }
        if !(start.isFinite && start >= 0) { throw ValidationError("--start must be 0 seconds or more, got \(start)") }
        if letterbox && size == nil { throw ValidationError("--letterbox needs --size") }
    }

    func run() throws {
        let target = try size.map { try FrameSizeArgument.parse($0) }
        let reader = try VideoReader(path: clip)
        let folder = try OutputFolder.prepare(out)
        FileHandle.standardError.write("frames: reading \(clip) (\(reader.info.width)x\(reader.info.height), "
                                       + "\(reader.info.frameCount) frames at \(NumberText.format(reader.info.fps)) fps)…\n")
        let frames = try reader.readFrames(count: count, fps: fps, stride: stride, start: start,
                                           size: target.map { ($0.width, $0.height) },
                                           mode: letterbox ? .letterbox : .centerCrop)
        guard let first = frames.first else {
            throw ExitStatus.Failure(status: .failure, message: "'\(clip)' has no frames from \(NumberText.format(start)) s on")
        }

        let digits = max(4, String(frames.count).count)
        let names = frames.indices.map { "frame_" + Self.zeroPadded($0 + 1, digits: digits) + ".png" }
        let input = SamePath.resolved(clip)
        if let clash = names.first(where: { SamePath.resolved(folder + "/" + $0) == input }) {
            throw ExitStatus.Failure(status: .failure, message: "refusing to write '\(folder)/\(clash)' over the input clip '\(clip)'")
        }

        let progress = ProgressReporter("frames", total: frames.count, unit: "frame")
        for (index, frame) in frames.enumerated() {
            try PNGImage.write(frame, to: folder + "/" + names[index],
                               text: [("Source", clip), ("Frame", String(index + 1))])
            progress.update(index + 1)
        }
        let stale = OutputFolder.staleFrames(in: folder, keeping: Set(names))
        if !stale.isEmpty {
            FileHandle.standardError.write("frames: note: \(folder) also holds \(stale.count) older frame file(s) "
                                           + "(\(stale.prefix(3).joined(separator: ", "))\(stale.count > 3 ? ", …" : "")); "
                                           + "`customize encode` would include them\n")
        }
        print("wrote \(frames.count) frame\(frames.count == 1 ? "" : "s") (\(first.width)x\(first.height)) to \(folder)/: "
              + (names.count > 2 ? "\(names[0]) … \(names[names.count - 1])" : names.joined(separator: ", ")))
    }

    static func zeroPadded(_ number: Int, digits: Int) -> String {
        let text = String(number)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}

/// The folder `frames` writes into.
enum OutputFolder {
    /// Creates the folder (and its parents) if needed; refuses a path that is a file.
    static func prepare(_ path: String) throws -> String {
        let folder = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw ExitStatus.Failure(status: .failure, message: "--out '\(path)' is a file; expected a folder for the frames")
            }
            return folder
        }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot create the folder '\(path)': \((error as NSError).localizedDescription)")
        }
        return folder
    }

    /// frame_N.png files left from an earlier, longer extraction.
    static func staleFrames(in folder: String, keeping written: Set<String>) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { name in
            guard !written.contains(name), name.hasPrefix("frame_"), name.hasSuffix(".png") else { return false }
            let number = name.dropFirst("frame_".count).dropLast(".png".count)
            return !number.isEmpty && number.allSatisfy(\.isNumber)
        }.sorted(by: NaturalOrder.less)
    }
}

/// Whether two paths name one file, after making them absolute and following symbolic links.
enum SamePath {
    static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
