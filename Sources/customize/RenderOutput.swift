import Checkpoints
import Evaluation
import Foundation
import Media
import Tensor

/// Where `render` writes: one PNG, or a video plus `<stem>_frames/frame_0001.png…` and
/// `<stem>_sheet.png`. Everything is written into a hidden staging folder beside the output and
/// then renamed into place, so a failure leaves nothing half-written.
struct RenderOutput {
    enum Kind { case image, video }

    let out: String
    let kind: Kind

    static let videoExtensions = ["mp4", "m4v", "gif"]

    init(out: String, frames: Int) throws {
        let fileExtension = URL(fileURLWithPath: out).pathExtension.lowercased()
        if frames == 1 {
            guard fileExtension == "png" else {
                throw ExitStatus.Failure(status: .usage, message: "--out '\(out)': one frame is written as a .png")
            }
            kind = .image
        } else {
            guard Self.videoExtensions.contains(fileExtension) else {
                throw ExitStatus.Failure(status: .usage, message: "--out '\(out)': \(frames) frames are written as .mp4, .m4v or .gif")
            }
            kind = .video
        }
        self.out = out
        try OutputFile.checkWritable(out, option: "--out")
    }

    var stem: String { (out as NSString).deletingPathExtension }
    var framesFolder: String { stem + "_frames" }
    var sheet: String { stem + "_sheet.png" }

    /// The paths written, in the order a reader wants them.
    var paths: [String] { kind == .image ? [out] : [out, framesFolder + "/", sheet] }

    func write(_ frames: [RGBImage], metadata: [(String, String)], fps: Double) throws -> [String] {
        let parent = (out as NSString).deletingLastPathComponent.isEmpty ? "." : (out as NSString).deletingLastPathComponent
        let staging = parent + "/.render-\(getpid())-\(String(UInt32.random(in: 0 ... UInt32.max), radix: 16))"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        let staged = { (path: String) in staging + "/" + (path as NSString).lastPathComponent }

        switch kind {
        case .image:
            try PNGImage.write(frames[0], to: staged(out), text: metadata)
        case .video:
            try FileManager.default.createDirectory(atPath: staged(framesFolder), withIntermediateDirectories: false)
            for (index, frame) in frames.enumerated() {
                try PNGImage.write(frame, to: staged(framesFolder) + String(format: "/frame_%04d.png", index + 1),
                                   text: metadata + [("frame", "\(index + 1)/\(frames.count)")])
            }
            try PNGImage.write(RGBImage.contactSheet(frames), to: staged(sheet), text: metadata)
            try VideoWriter.write(frames, to: staged(out), options: VideoWriter.Options(fps: fps))
        }
        for path in paths.map({ $0.hasSuffix("/") ? String($0.dropLast()) : $0 }) {
            try Self.replace(path, with: staged(path))
        }
        return paths
    }

    /// Renames `source` to `destination`; an existing destination (a previous render) is moved
    /// aside first and removed after.
    static func replace(_ destination: String, with source: String) throws {
        var aside: String?
        if FileManager.default.fileExists(atPath: destination) {
            aside = source + ".previous"
            guard rename(destination, aside!) == 0 else {
                throw ExitStatus.Failure(status: .failure, message: "cannot replace '\(destination)': \(String(cString: strerror(errno)))")
            }
        }
        guard rename(source, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            if let aside { _ = rename(aside, destination) }
            throw ExitStatus.Failure(status: .failure, message: "cannot write '\(destination)': \(reason)")
        }
        if let aside { try? FileManager.default.removeItem(atPath: aside) }
    }
}

/// The latents files of `render --latents / --save-latents`: safetensors with one F32 tensor "latents".
enum RenderLatents {
    static let tensorName = "latents"

    static func read(_ path: String) throws -> Tensor {
        let file = try SafeTensorsFile(path: path)
        guard let entry = file.entries[tensorName] else {
            throw ExitStatus.Failure(status: .failure, message: "--latents '\(path)': no tensor named \"\(tensorName)\""
                                     + " (it holds: \(file.names.isEmpty ? "nothing" : file.names.joined(separator: ", ")))")
        }
        guard entry.shape.count == 5, entry.shape[0] == 1, entry.shape.allSatisfy({ $0 > 0 }) else {
            throw ExitStatus.Failure(status: .failure, message: "--latents '\(path)': tensor \"\(tensorName)\" has shape \(entry.shape),"
                                     + " expected [1, channels, frames, height, width]")
        }
        return try Tensor(shape: entry.shape, values: file.floats(tensorName))
    }

    static func write(_ latents: Tensor, to path: String, metadata: [String: String]) throws {
        try SafeTensors.write([.init(name: tensorName, shape: latents.shape, values: latents.values)], metadata: metadata, to: path)
    }
}
