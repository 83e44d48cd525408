import Foundation

/// Turns a user-given path into the URL FFmpeg should open, refusing anything that is not a plain
/// local file. FFmpeg treats `scheme://…`, `pipe:…`, `concat:…` and the like as protocols, so we
/// refuse them up front and hand FFmpeg an explicit `file:` URL of the absolute path — a local
/// file whose name contains a colon is then never mistaken for a protocol.
enum LocalMediaPath {
    static func ffmpegURL(forReading path: String) throws -> String {
        try refuseNonLocal(path)
        let absolute = absolutePath(path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw MediaError.unreadable(path: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw MediaError.unreadable(path: path, reason: "is a directory, expected a video file")
        }
        guard FileManager.default.isReadableFile(atPath: absolute) else {
            throw MediaError.unreadable(path: path, reason: "permission denied")
        }
        return "file:" + absolute
    }

    static func refuseNonLocal(_ path: String) throws {
        if path.isEmpty { throw MediaError.unreadable(path: path, reason: "empty path") }
        if path.contains("://") {
            throw MediaError.unsupported(path: path, reason: "only local files are read, not URLs")
        }
        if path.hasPrefix("pipe:") || path == "-" || path.hasPrefix("-") {
            throw MediaError.unsupported(path: path, reason: "only local files are read, not pipes or option-like names")
        }
    }

    static func absolutePath(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}
