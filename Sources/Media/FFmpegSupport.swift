import CFFmpeg
import Foundation

/// Function-like FFmpeg macros that Swift cannot import (`AVERROR`, `FFERRTAG`, `AV_NOPTS_VALUE`),
/// plus `av_strerror` wrapped into a Swift string.
enum FFmpeg {
    /// `AVERROR(e)` from libavutil/error.h: FFmpeg returns negated POSIX codes.
    static func averror(_ posixCode: Int32) -> Int32 { -posixCode }

    /// `FFERRTAG(a, b, c, d)` = `-MKTAG(a, b, c, d)`.
    private static func errorTag(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> Int32 {
        -Int32(bitPattern: UInt32(a) | UInt32(b) << 8 | UInt32(c) << 16 | UInt32(d) << 24)
    }

    /// `AVERROR_EOF`.
    static let endOfFile = errorTag(UInt8(ascii: "E"), UInt8(ascii: "O"), UInt8(ascii: "F"), UInt8(ascii: " "))
    /// `AVERROR(EAGAIN)`: the codec wants input before it can give output (or the reverse).
    static let tryAgain = averror(EAGAIN)
    /// `AVERROR_EXIT`: returned when our `AVIOInterruptCB` asked FFmpeg to stop.
    static let exitRequested = errorTag(UInt8(ascii: "E"), UInt8(ascii: "X"), UInt8(ascii: "I"), UInt8(ascii: "T"))
    /// `AVERROR_INVALIDDATA`.
    static let invalidData = errorTag(UInt8(ascii: "I"), UInt8(ascii: "N"), UInt8(ascii: "D"), UInt8(ascii: "A"))
    /// `AV_NOPTS_VALUE`: "no timestamp".
    static let noTimestamp = Int64.min

    /// The text `av_strerror` gives for an FFmpeg return code.
    static func message(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        if av_strerror(code, &buffer, buffer.count) < 0 { return "FFmpeg error \(code)" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// `q` as a Double; nil when the denominator or numerator is zero (FFmpeg's "unknown").
    static func seconds(_ q: AVRational) -> Double? {
        guard q.num != 0, q.den != 0 else { return nil }
        return Double(q.num) / Double(q.den)
    }

    /// FFmpeg prints warnings to stderr from any library call; a CLI that decodes user files
    /// should stay quiet and report problems through thrown `MediaError`s instead. Idempotent.
    static func silenceLogging() { _ = silencedOnce }
    private static let silencedOnce: Void = { av_log_set_level(AV_LOG_QUIET) }()
}

extension Media {
    /// Lets the CLI turn FFmpeg's own console messages back on (e.g. `--verbose`): an `AV_LOG_*` level
    /// such as `AV_LOG_WARNING` (24). Readers and writers silence FFmpeg by default.
    public static func setFFmpegLogLevel(_ level: Int32) {
        FFmpeg.silenceLogging()
        av_log_set_level(level)
    }
}
