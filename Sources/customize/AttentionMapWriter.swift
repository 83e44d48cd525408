import Evaluation
import Foundation
import Media
import Methods
import Tensor

/// `compose --save-attention DIR`: one PNG per concept token, its attention averaged over the steps
/// drawn over the rendered picture (frames side by side for a clip). Files are written under
/// temporary names first and renamed into place once all are written.
enum AttentionMapWriter {
    /// The folder can be created or written: its parent exists and it is not a file.
    static func checkFolder(_ folder: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw ExitStatus.Failure(status: .failure, message: "--save-attention '\(folder)' is a file, not a folder")
            }
            guard access(folder, W_OK) == 0 else {
                throw ExitStatus.Failure(status: .failure, message: "--save-attention '\(folder)': the folder is not writable")
            }
            return
        }
        try OutputFile.checkWritable(folder, option: "--save-attention")
    }

    /// `cat-03-cat.png`: the concept, the token's position and its text, with characters that do not
    /// belong in file names replaced by `_`.
    static func fileName(_ map: ConceptTokenAttention) -> String {
        func clean(_ text: String) -> String {
            let kept = text.unicodeScalars.map { scalar -> Character in
                CharacterSet.alphanumerics.contains(scalar) || scalar == "-" || scalar == "_" ? Character(scalar) : "_"
            }
            return String(kept)
        }
        return "\(clean(map.concept))-\(String(format: "%02d", map.position))-\(clean(map.token)).png"
    }

    /// Writes every map over `frames` (`[3, H, W]` each); returns the paths written.
    static func write(_ maps: [ConceptTokenAttention], frames: [Tensor], to folder: String,
                      metadata: [(String, String)]) throws -> [String] {
        if !FileManager.default.fileExists(atPath: folder) {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        }
        var staged: [(temporary: String, final: String)] = []
        defer { for entry in staged { try? FileManager.default.removeItem(atPath: entry.temporary) } }
        for map in maps {
            let images = try zip(map.frames, frames).map { values, frame -> RGBImage in
                let bytes = try AttentionHeatMap.overlay(map: values, grid: map.grid, frame: frame)
                return try RGBImage(width: frame.shape[2], height: frame.shape[1], pixels: bytes)
            }
            guard !images.isEmpty else { continue }
            let image = images.count == 1 ? images[0] : try RGBImage.contactSheet(images)
            let final = (folder as NSString).appendingPathComponent(fileName(map))
            let temporary = (folder as NSString).appendingPathComponent(".\(fileName(map)).\(getpid()).tmp")
            try PNGImage.write(image, to: temporary, text: metadata + [
                ("concept", map.concept), ("concept prompt", map.prompt), ("token", map.token),
                ("token position", String(map.position)), ("attention grid", map.grid.description),
            ])
            staged.append((temporary, final))
        }
        for entry in staged { try RenderOutput.replace(entry.final, with: entry.temporary) }
        let written = staged.map(\.final)
        staged = []
        return written
    }
}
