import Foundation
import Media
import Methods
import Tensor

/// Reading training folders for `train-motion`, `train-lora` and `animate`: clips and images with
/// caption files beside them (`clip.mp4` + `clip.txt`, the layout `customize world` writes), decoded
/// and sampled to the run's frame count and size, as frames in [-1, 1].
///
/// A clip or image that cannot be decoded is named and skipped while others remain; a folder left
/// with nothing usable is an error that lists every file and why it was left out.
public enum TrainingMedia {
    public static let clipExtensions: Set<String> = ["mp4", "m4v", "mov", "webm", "mkv", "avi", "gif", "flv", "ts", "ogg", "ogv", "mpg", "mpeg"]
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "webp", "bmp"]

    /// One usable item and the items left out, each with its reason.
    public struct Scan<Item> {
        public var items: [Item]
        public var skipped: [(name: String, reason: String)]
    }

    /// Files of `folder` with one of `extensions` (case-insensitive), in natural order.
    public static func files(in folder: String, extensions: Set<String>, kind: String) throws -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw EvaluationError("'\(folder)' is not a folder of \(kind)")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { name in
            !name.hasPrefix(".") && extensions.contains((name as NSString).pathExtension.lowercased())
        }
        guard !names.isEmpty else {
            throw EvaluationError("'\(folder)' holds no \(kind) (looked for "
                                  + extensions.sorted().map { "." + $0 }.joined(separator: ", ") + ")")
        }
        return names.sorted(by: NaturalOrder.less)
    }

    /// The caption beside `file` (`<stem>.txt`, whitespace trimmed), or nil when there is none.
    public static func caption(besides file: String) throws -> String? {
        let path = (file as NSString).deletingPathExtension + ".txt"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw EvaluationError("cannot read the caption '\(path)': \(error.localizedDescription)")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Reads every clip of `folder` sampled to `frames` frames of `width`×`height` pixels (centre crop).
    /// Captions come from `<stem>.txt`, else `fallbackCaption`; a clip with neither is an error.
    /// Without `fps` the frames are spread evenly over the whole clip; with it they are sampled at that
    /// rate from the start. A clip with fewer frames than asked is skipped: repeating frames would teach
    /// the motion adapter a pause that is not in the clip.
    public static func clips(in folder: String, frames: Int, width: Int, height: Int, fps: Double?,
                      fallbackCaption: String?) throws -> Scan<MotionClipSource> {
        let names = try files(in: folder, extensions: clipExtensions, kind: "clips")
        var captions: [String: String] = [:], uncaptioned: [String] = []
        for name in names {
            if let caption = try caption(besides: (folder as NSString).appendingPathComponent(name)) ?? fallbackCaption {
                captions[name] = caption
            } else {
                uncaptioned.append(name)
            }
        }
        guard uncaptioned.isEmpty else {
            throw EvaluationError("no caption for " + uncaptioned.map { "'\($0)'" }.joined(separator: ", ")
                                  + ": put a .txt file with the same name beside each clip, or pass --prompt")
        }
        var scan = Scan<MotionClipSource>(items: [], skipped: [])
        for name in names {
            let path = (folder as NSString).appendingPathComponent(name)
            do {
                let tensor = try clipFrames(path, frames: frames, width: width, height: height, fps: fps)
                scan.items.append(MotionClipSource(name: name, caption: captions[name]!, frames: tensor))
            } catch {
                scan.skipped.append((name, describe(error)))
            }
        }
        guard !scan.items.isEmpty else {
            throw EvaluationError("no usable clip in '\(folder)':\n"
                                  + scan.skipped.map { "  \($0.name): \($0.reason)" }.joined(separator: "\n"))
        }
        return scan
    }

    /// One clip's frames `[frames, 3, height, width]` in [-1, 1].
    public static func clipFrames(_ path: String, frames: Int, width: Int, height: Int, fps: Double?) throws -> Tensor {
        let reader = try VideoReader(path: path)
        let decoded: [RGBImage]
        if let fps {
            decoded = try reader.readFrames(count: frames, fps: fps, size: (width, height), mode: .centerCrop)
        } else {
            // A long clip is thinned while decoding (still at least 4 frames per frame kept), so memory
            // stays small; the even spread is then taken from what was kept.
            let stride = max(1, reader.info.frameCount / max(4 * frames, 1))
            decoded = try reader.readFrames(stride: stride, size: (width, height), mode: .centerCrop)
        }
        guard decoded.count >= frames else {
            let rate = fps.map { " at \(NumberText.format($0)) fps" } ?? ""
            throw EvaluationError("has \(decoded.count) frame\(decoded.count == 1 ? "" : "s")\(rate), "
                                  + "fewer than the \(frames) the run samples (frames are not repeated: that would teach a pause)")
        }
        let chosen = fps != nil ? Array(decoded.prefix(frames)) : evenlySpaced(decoded, count: frames)
        return try tensor(chosen)
    }

    /// `count` items spread evenly from the first to the last (the first when `count` is 1).
    public static func evenlySpaced<Item>(_ items: [Item], count: Int) -> [Item] {
        guard count > 1, items.count > 1 else { return Array(items.prefix(count)) }
        return (0..<count).map { index in
            items[Int((Double(index) * Double(items.count - 1) / Double(count - 1)).rounded())]
        }
    }

    /// An image file (PNG, or any still format FFmpeg decodes) resized to `width`×`height` (centre crop).
    public static func image(_ path: String, width: Int, height: Int) throws -> RGBImage {
        if (path as NSString).pathExtension.lowercased() == "png" {
            return try PNGImage.read(path: path).image.resized(width: width, height: height, mode: .centerCrop)
        }
        guard let first = try VideoReader(path: path).readFrames(count: 1, size: (width, height), mode: .centerCrop).first else {
            throw EvaluationError("'\(path)' holds no image")
        }
        return first
    }

    /// Images `[N, 3, H, W]` in [-1, 1].
    public static func tensor(_ images: [RGBImage]) throws -> Tensor {
        guard let first = images.first else { return Tensor(zeros: [0, 3, 1, 1]) }
        return try Tensor(shape: [images.count, 3, first.height, first.width], values: images.flatMap { $0.toCHWFloats() })
    }

    /// Writes one warning line per skipped item to standard error.
    public static func warnSkipped(_ skipped: [(name: String, reason: String)], command: String) {
        for (name, reason) in skipped {
            FileHandle.standardError.write("customize \(command): warning: skipped '\(name)': \(reason)\n")
        }
    }
}
