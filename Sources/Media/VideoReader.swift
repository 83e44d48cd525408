import CFFmpeg
import Foundation

/// Reads frames of a local video file with libavformat/libavcodec (any of mp4, mov, webm, mkv,
/// avi, gif, flv, ts, ogg) and converts them to RGB with libswscale — the decode half of what
/// diffusers' `export_to_video`/`load_video` helpers do through imageio/PyAV.
///
/// Files are treated as untrusted: only the `file` protocol and single-file demuxers are allowed,
/// URLs and pipes are refused, and `VideoReadLimits` bounds size, length and wall-clock time.
/// Every failure is a `MediaError` naming the path.
public final class VideoReader: Sendable {
    public let path: String
    public let limits: VideoReadLimits
    /// What the file declares, read when the reader is created.
    public let info: VideoInfo

    public init(path: String, limits: VideoReadLimits = VideoReadLimits()) throws {
        self.path = path
        self.limits = limits
        let session = try VideoDecodingSession(path: path, limits: limits)
        info = try Self.describe(session, limits: limits)
    }

    /// Decodes frames in presentation order and keeps a sample of them.
    ///
    /// - Parameters:
    ///   - count: most frames to return; nil for all up to the end. Fewer come back when the file ends first.
    ///   - fps: sample at this rate (the frame nearest each instant `start + k/fps`, repeated when the
    ///     file's rate is lower). Give `fps` or `stride`, not both; neither means every frame.
    ///   - stride: keep every `stride`-th frame.
    ///   - start: seconds from the start of the stream; the first frame kept is the one nearest it.
    ///   - size: output `(width, height)`; nil keeps the source size.
    ///   - mode: how the source is fitted to `size` when the aspect ratios differ.
    public func readFrames(count: Int? = nil, fps: Double? = nil, stride: Int? = nil, start: Double = 0,
                           size: (width: Int, height: Int)? = nil,
                           mode: VideoResizeMode = .centerCrop) throws -> [RGBImage] {
        let rule = try samplingRule(fps: fps, stride: stride)
        if let count, count < 0 { throw invalidRequest("count must not be negative, got \(count)") }
        guard start.isFinite, start >= 0 else { throw invalidRequest("start must be a time of 0 s or more, got \(start)") }
        if let size {
            guard size.width > 0, size.height > 0 else {
                throw invalidRequest("the output size must be positive, got \(size.width)x\(size.height)")
            }
            if size.width > limits.maxWidth || size.height > limits.maxHeight {
                throw MediaError.tooLarge(path: path, what: "requested output size \(size.width)x\(size.height)",
                                          limit: "\(limits.maxWidth)x\(limits.maxHeight) pixels")
            }
        }
        if count == 0 { return [] }

        let session = try VideoDecodingSession(path: path, limits: limits)
        let converter = RGBFrameConverter(path: path, target: size, mode: mode, limits: limits)
        var sampler = FrameSampler(rule: rule, start: start, count: count)
        let stream = session.stream.pointee
        let timeBase = FFmpeg.seconds(stream.time_base) ?? 0
        let origin = stream.start_time == FFmpeg.noTimestamp ? 0 : stream.start_time
        let nominalFrameDuration = info.fps > 0 ? 1 / info.fps : 0
        var previousTime: Double? = nil
        var decoded = 0
        var frames: [RGBImage] = []

        try session.decodeFrames { frame in
            decoded += 1
            if decoded > limits.maxFrameCount {
                throw MediaError.tooLarge(path: path, what: "frame count", limit: "\(limits.maxFrameCount) frames (maxFrameCount)")
            }
            let packetDuration = Double(frame.pointee.pkt_duration) * timeBase
            let duration = packetDuration > 0 ? packetDuration : nominalFrameDuration
            let time: Double
            let timestamp = frame.pointee.best_effort_timestamp
            if timestamp != FFmpeg.noTimestamp && timeBase > 0 {
                time = Double(timestamp - origin) * timeBase
            } else {
                time = (previousTime.map { $0 + duration }) ?? 0
            }
            previousTime = time
            if time > limits.maxDuration {
                throw MediaError.tooLarge(path: path, what: "duration", limit: "\(limits.maxDuration) s (maxDuration)")
            }
            let copies = sampler.copies(ofFrameAt: time, duration: duration)
            if copies > 0 {
                let image = try converter.convert(frame)
                frames.append(contentsOf: repeatElement(image, count: copies))
            }
            return !sampler.isDone
        }
        return frames
    }

    private func samplingRule(fps: Double?, stride: Int?) throws -> FrameSampler.Rule {
        switch (fps, stride) {
        case (nil, nil):
            return .everyNth(stride: 1)
        case (nil, let stride?):
            guard stride > 0 else { throw invalidRequest("stride must be 1 or more, got \(stride)") }
            return .everyNth(stride: stride)
        case (let fps?, nil):
            guard fps.isFinite, fps > 0 else { throw invalidRequest("fps must be positive, got \(fps)") }
            return .rate(fps: fps)
        case (.some, .some):
            throw invalidRequest("give fps or stride, not both")
        }
    }

    private func invalidRequest(_ reason: String) -> MediaError {
        .unsupported(path: path, reason: reason)
    }

    /// Builds `VideoInfo` from the stream and container headers and checks the declared sizes
    /// against the limits.
    private static func describe(_ session: VideoDecodingSession, limits: VideoReadLimits) throws -> VideoInfo {
        let path = session.path
        let stream = session.stream.pointee
        let parameters = stream.codecpar.pointee
        let width = Int(parameters.width), height = Int(parameters.height)
        guard width > 0, height > 0 else {
            throw MediaError.corrupt(path: path, reason: "its video stream declares no frame size")
        }
        if width > limits.maxWidth {
            throw MediaError.tooLarge(path: path, what: "width \(width)", limit: "\(limits.maxWidth) pixels (maxWidth)")
        }
        if height > limits.maxHeight {
            throw MediaError.tooLarge(path: path, what: "height \(height)", limit: "\(limits.maxHeight) pixels (maxHeight)")
        }
        let fps = FFmpeg.seconds(stream.avg_frame_rate) ?? FFmpeg.seconds(stream.r_frame_rate) ?? 0

        var duration = 0.0
        if stream.duration != FFmpeg.noTimestamp, stream.duration > 0, let base = FFmpeg.seconds(stream.time_base) {
            duration = Double(stream.duration) * base
        } else if session.format.pointee.duration != FFmpeg.noTimestamp, session.format.pointee.duration > 0 {
            duration = Double(session.format.pointee.duration) / Double(AV_TIME_BASE)
        }
        if duration > limits.maxDuration {
            throw MediaError.tooLarge(path: path, what: String(format: "duration %.1f s", duration),
                                      limit: "\(limits.maxDuration) s (maxDuration)")
        }

        var frameCount: Int
        var exact: Bool
        if stream.nb_frames > 0 {
            (frameCount, exact) = (Int(stream.nb_frames), true)
        } else if duration > 0, fps > 0 {
            (frameCount, exact) = (Int((duration * fps).rounded()), false)
        } else {
            (frameCount, exact) = (try session.countPackets(limit: limits.maxFrameCount), true)
        }
        if frameCount > limits.maxFrameCount {
            throw MediaError.tooLarge(path: path, what: "frame count \(frameCount)", limit: "\(limits.maxFrameCount) frames (maxFrameCount)")
        }
        return VideoInfo(path: path, container: session.containerName,
                         codec: String(cString: avcodec_get_name(parameters.codec_id)),
                         width: width, height: height, fps: fps, duration: duration,
                         frameCount: frameCount, frameCountIsExact: exact)
    }
}
