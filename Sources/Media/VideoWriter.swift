import CFFmpeg
import Foundation

/// Encodes RGB frames to an MP4 (H.264 via libx264, MPEG-4 part 2 if libx264 is missing) or an
/// animated GIF, chosen by the file extension — the encode half of diffusers'
/// `export_to_video`/`export_to_gif`.
///
/// Frames are added with `append(_:)` and the file appears only when `finish()` succeeds: it is
/// encoded to a hidden temporary file in the destination folder and then renamed over the
/// destination. The same frames and options give the same bytes (bit-exact flags, one encoder thread).
public final class VideoWriter {
    public enum Container: String, Sendable {
        case mp4, gif
    }

    /// What to do with frames whose width or height is odd, which H.264 in yuv420p cannot store.
    public enum OddSizePolicy: Sendable, Equatable {
        /// Repeat the last column and/or row once (the output is 1 pixel wider/taller).
        case padWithEdge
        /// Throw `MediaError.unsupported`.
        case fail
    }

    public struct Options: Sendable, Equatable {
        /// Frames per second of the output.
        public var fps: Double
        /// libx264 constant rate factor, 0 (lossless) … 51; lower is better. For the mpeg4 fallback
        /// it maps to a fixed quantiser `max(2, crf / 4)`.
        public var crf: Int
        /// libx264 preset ("ultrafast" … "veryslow").
        public var preset: String
        public var oddSize: OddSizePolicy

        public init(fps: Double = 8, crf: Int = 18, preset: String = "medium", oddSize: OddSizePolicy = .padWithEdge) {
            self.fps = fps
            self.crf = crf
            self.preset = preset
            self.oddSize = oddSize
        }
    }

    public let path: String
    public let container: Container
    public let options: Options
    /// The libavcodec encoder in use ("libx264", "mpeg4", "gif"); nil until the first frame is encoded.
    public private(set) var encoderName: String?
    public private(set) var frameCount = 0

    /// libavcodec encoders tried in order for MP4; tests narrow it to exercise the fallback.
    var mp4Encoders = ["libx264", "mpeg4"]

    private let temporaryPath: String
    private var session: VideoEncodingSession?
    private var frameSize: (width: Int, height: Int)?
    /// GIF frames wait until `finish()` so one palette can be fitted to the whole clip.
    private var pendingGIFFrames: [RGBImage] = []
    private var yuvConverter: OpaquePointer?
    private var state = State.open

    private enum State { case open, finished, failed }

    public init(path: String, options: Options = Options()) throws {
        FFmpeg.silenceLogging()
        try LocalMediaPath.refuseNonLocal(path)
        let absolute = LocalMediaPath.absolutePath(path)
        let url = URL(fileURLWithPath: absolute)
        switch url.pathExtension.lowercased() {
        case "mp4", "m4v": container = .mp4
        case "gif": container = .gif
        case let other:
            throw MediaError.unsupported(path: path, reason: "cannot write '.\(other)' videos; use .mp4 or .gif")
        }
        guard options.fps.isFinite, options.fps > 0, options.fps <= 1000 else {
            throw MediaError.unsupported(path: path, reason: "fps must be in (0, 1000], got \(options.fps)")
        }
        guard (0...51).contains(options.crf) else {
            throw MediaError.unsupported(path: path, reason: "crf must be in 0…51, got \(options.crf)")
        }
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MediaError.writeFailed(path: path, reason: "the folder '\(folder)' does not exist")
        }
        self.path = path
        self.options = options
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        temporaryPath = folder + "/." + url.lastPathComponent + ".tmp-" + suffix + "." + url.pathExtension
    }

    deinit {
        sws_freeContext(yuvConverter)
        if state != .finished {
            session = nil
            unlink(temporaryPath)
        }
    }

    /// Writes `frames` to `path` in one go.
    public static func write(_ frames: [RGBImage], to path: String, options: Options = Options()) throws {
        let writer = try VideoWriter(path: path, options: options)
        for frame in frames { try writer.append(frame) }
        try writer.finish()
    }

    public func append(_ frame: RGBImage) throws {
        try whileOpen {
            try check(frame)
            switch container {
            case .gif:
                pendingGIFFrames.append(frame)
            case .mp4:
                try encodeMP4(frame)
            }
            frameCount += 1
        }
    }

    /// Drains the encoder, writes the container trailer and moves the file into place.
    public func finish() throws {
        try whileOpen {
            guard frameCount > 0 else { throw MediaError.writeFailed(path: path, reason: "no frames to write") }
            if container == .gif { try encodeGIF(pendingGIFFrames) }
            try session!.finish()
            session = nil
            try flushToDisk(temporaryPath)
            if rename(temporaryPath, LocalMediaPath.absolutePath(path)) != 0 {
                throw MediaError.writeFailed(path: path, reason: "cannot move the finished file into place: \(String(cString: strerror(errno)))")
            }
        }
        state = .finished
        pendingGIFFrames = []
    }

    /// Runs `body` unless the writer is finished or broken; an error breaks it and removes the temporary file.
    private func whileOpen(_ body: () throws -> Void) throws {
        switch state {
        case .finished: throw MediaError.writeFailed(path: path, reason: "the writer has already finished")
        case .failed: throw MediaError.writeFailed(path: path, reason: "an earlier error stopped this writer")
        case .open: break
        }
        do {
            try body()
        } catch {
            state = .failed
            session = nil
            unlink(temporaryPath)
            throw error
        }
    }

    private func check(_ frame: RGBImage) throws {
        guard frame.width > 0, frame.height > 0, frame.pixels.count == frame.width * frame.height * 3 else {
            throw MediaError.writeFailed(path: path, reason: "frame \(frameCount) has \(frame.pixels.count) bytes for \(frame.width)x\(frame.height) RGB, expected \(max(0, frame.width * frame.height * 3))")
        }
        if let frameSize, frameSize != (frame.width, frame.height) {
            throw MediaError.writeFailed(path: path, reason: "frame \(frameCount) is \(frame.width)x\(frame.height), but the first frame was \(frameSize.width)x\(frameSize.height)")
        }
        if frame.width.isMultiple(of: 2) == false || frame.height.isMultiple(of: 2) == false, container == .mp4, options.oddSize == .fail {
            throw MediaError.unsupported(path: path, reason: "H.264 (yuv420p) needs even dimensions, got \(frame.width)x\(frame.height)")
        }
        frameSize = (frame.width, frame.height)
    }

    private var frameRate: AVRational { av_d2q(options.fps, 1 << 16) }

    private func encodeMP4(_ frame: RGBImage) throws {
        let image = try Self.paddedToEven(frame)
        if session == nil {
            let crf = options.crf, preset = options.preset
            session = try VideoEncodingSession(
                path: path, fileURL: "file:" + temporaryPath, muxer: "mp4", encoders: mp4Encoders,
                width: image.width, height: image.height, pixelFormat: AV_PIX_FMT_YUV420P, frameRate: frameRate,
                muxerOptions: ["movflags": "+faststart"]) { name, encoder, codecOptions in
                // Tag what swscale produces below: BT.601 matrix, limited range.
                encoder.pointee.colorspace = AVCOL_SPC_SMPTE170M
                encoder.pointee.color_range = AVCOL_RANGE_MPEG
                if name == "libx264" {
                    av_dict_set(&codecOptions, "crf", String(crf), 0)
                    av_dict_set(&codecOptions, "preset", preset, 0)
                } else {
                    encoder.pointee.flags |= AV_CODEC_FLAG_QSCALE
                    encoder.pointee.global_quality = FF_QP2LAMBDA * Int32(max(2, crf / 4))
                }
            }
            encoderName = session!.encoderName
            yuvConverter = sws_getContext(Int32(image.width), Int32(image.height), AV_PIX_FMT_RGB24,
                                          Int32(image.width), Int32(image.height), AV_PIX_FMT_YUV420P,
                                          SWS_BICUBIC | SWS_ACCURATE_RND, nil, nil, nil)
            guard let yuvConverter else { throw MediaError.writeFailed(path: path, reason: "cannot create an RGB to YUV converter") }
            var inverseTable: UnsafeMutablePointer<Int32>? = nil, table: UnsafeMutablePointer<Int32>? = nil
            var sourceRange: Int32 = 0, destinationRange: Int32 = 0, brightness: Int32 = 0, contrast: Int32 = 0, saturation: Int32 = 0
            if sws_getColorspaceDetails(yuvConverter, &inverseTable, &sourceRange, &table, &destinationRange,
                                        &brightness, &contrast, &saturation) >= 0 {
                let bt601 = sws_getCoefficients(SWS_CS_ITU601)
                sws_setColorspaceDetails(yuvConverter, inverseTable, sourceRange, bt601, 0, brightness, contrast, saturation)
            }
        }
        try session!.encodeNext { destination in
            let lines = destination.pointee.linesize, data = destination.pointee.data
            let planes: [UnsafeMutablePointer<UInt8>?] = [data.0, data.1, data.2, nil]
            let strides: [Int32] = [lines.0, lines.1, lines.2, 0]
            let rows = image.pixels.withUnsafeBufferPointer { pixels -> Int32 in
                let source: [UnsafePointer<UInt8>?] = [pixels.baseAddress, nil, nil, nil]
                let sourceStrides: [Int32] = [Int32(image.width * 3), 0, 0, 0]
                return sws_scale(yuvConverter, source, sourceStrides, 0, Int32(image.height), planes, strides)
            }
            if rows != Int32(image.height) {
                throw MediaError.writeFailed(path: path, reason: "converting frame \(frameCount) to YUV failed")
            }
        }
    }

    private func encodeGIF(_ frames: [RGBImage]) throws {
        let palette = GIFPalette(frames: frames)
        let first = frames[0]
        session = try VideoEncodingSession(
            path: path, fileURL: "file:" + temporaryPath, muxer: "gif", encoders: ["gif"],
            width: first.width, height: first.height, pixelFormat: AV_PIX_FMT_PAL8, frameRate: frameRate,
            muxerOptions: ["loop": "0"]) { _, _, _ in }
        encoderName = session!.encoderName
        for frame in frames {
            try session!.encodeNext { destination in
                guard let indices = destination.pointee.data.0, let entries = destination.pointee.data.1 else {
                    throw MediaError.writeFailed(path: path, reason: "the PAL8 frame has no buffers")
                }
                palette.indices(of: frame, into: indices, rowStride: Int(destination.pointee.linesize.0))
                entries.withMemoryRebound(to: UInt32.self, capacity: GIFPalette.maximumColors) { table in
                    for slot in 0..<GIFPalette.maximumColors {
                        table[slot] = slot < palette.colors.count ? palette.colors[slot] : 0xFF00_0000
                    }
                }
            }
        }
    }

    /// A copy of `frame` with the last column and/or row repeated so both dimensions are even.
    static func paddedToEven(_ frame: RGBImage) throws -> RGBImage {
        let width = frame.width + frame.width % 2, height = frame.height + frame.height % 2
        guard width != frame.width || height != frame.height else { return frame }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sourceRow = min(y, frame.height - 1)
            for x in 0..<width {
                let sourceColumn = min(x, frame.width - 1)
                let from = (sourceRow * frame.width + sourceColumn) * 3, to = (y * width + x) * 3
                pixels[to] = frame.pixels[from]
                pixels[to + 1] = frame.pixels[from + 1]
                pixels[to + 2] = frame.pixels[from + 2]
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    /// fsync, so that after the rename the destination never refers to unwritten data.
    private func flushToDisk(_ file: String) throws {
        let descriptor = open(file, O_RDONLY)
        guard descriptor >= 0 else { throw MediaError.writeFailed(path: path, reason: "the temporary file vanished") }
        defer { close(descriptor) }
        if fsync(descriptor) != 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot flush to disk: \(String(cString: strerror(errno)))")
        }
    }
}
