import Foundation
import Media

/// The facts `inspect` reports for clips and images, as the Media library reads them.
enum InspectMedia {
    /// libavformat's view of the main video stream (`VideoReader.info`); no frame is decoded.
    static func video(_ path: String) throws -> [(String, Fact)] {
        let info = try VideoReader(path: path).info
        return [
            ("container", .text(info.container)),
            ("codec", .text(info.codec)),
            ("width", .integer(info.width)),
            ("height", .integer(info.height)),
            ("fps", .number(info.fps)),
            ("duration_seconds", .number(info.duration)),
            ("frames", .integer(info.frameCount)),
            // Some containers keep no frame count; then it is estimated from duration × fps.
            ("frame_count_exact", .flag(info.frameCountIsExact)),
        ]
    }

    /// The IHDR fields and every text chunk (`PNGImage.readInfo`); pixels are not decoded.
    static func png(_ path: String) throws -> [(String, Fact)] {
        let info = try PNGImage.readInfo(path: path)
        return [
            ("width", .integer(info.width)),
            ("height", .integer(info.height)),
            ("colour_type", .text(info.colorType.rawValue)),
            ("channels", .integer(info.channels)),
            ("bit_depth", .integer(info.bitDepth)),
            ("interlaced", .flag(info.interlaced)),
            ("transparency", .flag(info.hasTransparency)),
            ("text", .record(info.text.sorted { $0.key < $1.key }.map { ($0.key, .text($0.value)) })),
        ]
    }
}
