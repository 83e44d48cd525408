import Foundation

/// What a path holds, decided from its content: a file's leading "magic" bytes (as `file(1)` and
/// libavformat's probes do), a folder's marker files. The extension is only a fallback, used when
/// the bytes match nothing, so that a damaged `.mp4` is still handed to the video reader and its
/// error is reported rather than "unknown format".
enum InspectedKind: Equatable {
    case video
    case png
    case safetensors
    /// A folder with `model_index.json`: a diffusers pipeline (`DiffusionPipeline.save_pretrained`).
    case diffusersModel
    /// A folder with `config.json` but no `model_index.json`: one diffusers component (`unet/`, `vae/`…).
    case diffusersComponent
    case folder
    /// Recognised, but not a format this project reads (JPEG, pickled PyTorch weights…); the text
    /// says what it is and what to do instead.
    case unsupported(String)
    case unknown

    var isInspectable: Bool {
        switch self {
        case .unsupported, .unknown: return false
        default: return true
        }
    }
}

enum InspectSniffer {
    static let videoExtensions: Set<String> = ["mp4", "m4v", "mov", "webm", "mkv", "avi", "gif", "flv", "ts", "ogv", "ogg"]

    /// Throws `InspectFailure` for paths that do not exist or cannot be opened, and for empty files.
    static func kind(of path: String) throws -> InspectedKind {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InspectFailure(path: path, reason: "no such file or folder")
        }
        if isDirectory.boolValue {
            if FileManager.default.fileExists(atPath: path + "/model_index.json") { return .diffusersModel }
            if FileManager.default.fileExists(atPath: path + "/config.json") { return .diffusersComponent }
            return .folder
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw InspectFailure(path: path, reason: FileManager.default.isReadableFile(atPath: path)
                                 ? "cannot be opened" : "permission denied")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 192)) ?? Data())
        guard !head.isEmpty else { throw InspectFailure(path: path, reason: "the file is empty (0 bytes)") }
        if let kind = kind(ofLeadingBytes: head) { return kind }
        let fileExtension = URL(fileURLWithPath: path).pathExtension.lowercased()
        switch fileExtension {
        case "png": return .png
        case "safetensors": return .safetensors
        case _ where videoExtensions.contains(fileExtension): return .video
        default: return .unknown
        }
    }

    /// Matches the signatures of the formats we read, and of a few we recognise only to say so.
    static func kind(ofLeadingBytes bytes: [UInt8]) -> InspectedKind? {
        func starts(with prefix: [UInt8], at offset: Int = 0) -> Bool {
            bytes.count >= offset + prefix.count && Array(bytes[offset..<(offset + prefix.count)]) == prefix
        }
        func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

        if starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(with: ascii("GIF87a")) || starts(with: ascii("GIF89a")) { return .video }
        // ISO base media (mp4, mov, m4v): a box size, then the box type of the first top-level box.
        if ["ftyp", "moov", "mdat", "free", "wide", "skip"].contains(where: { starts(with: ascii($0), at: 4) }) { return .video }
        if starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return .video } // EBML: Matroska, WebM
        if starts(with: ascii("RIFF")) && starts(with: ascii("AVI "), at: 8) { return .video }
        if starts(with: ascii("FLV")) || starts(with: ascii("OggS")) { return .video }
        if bytes.count >= 189 && bytes[0] == 0x47 && bytes[188] == 0x47 { return .video } // MPEG-TS sync bytes
        if starts(with: [0xFF, 0xD8, 0xFF]) { return .unsupported("a JPEG image; customize reads PNG images (convert it first)") }
        if starts(with: ascii("PK\u{03}\u{04}")) { return .unsupported("a zip archive (a PyTorch .pt/.bin checkpoint?); customize reads safetensors weights only") }
        if starts(with: [0x80]) && bytes.count > 1 && (2...5).contains(bytes[1]) {
            return .unsupported("a Python pickle (a PyTorch checkpoint?); customize reads safetensors weights only")
        }
        // safetensors: a little-endian UInt64 header length, then the JSON header's opening brace.
        if bytes.count >= 9 && bytes[8] == UInt8(ascii: "{") {
            let length = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            if length >= 2 && length <= 100_000_000 { return .safetensors }
        }
        return nil
    }
}

/// A path `inspect` could not describe, with the reason; the path is always named.
struct InspectFailure: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "'\(path)': \(reason)" }
}
