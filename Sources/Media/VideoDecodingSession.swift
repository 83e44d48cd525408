import CFFmpeg
import Foundation

/// One open input: libavformat's `AVFormatContext` over a local file plus the `AVCodecContext`
/// decoding its best video stream, under a wall-clock deadline. Frames come out of
/// `decodeFrames` in presentation order, decoder drained at the end of the file.
final class VideoDecodingSession {
    /// Demuxers (libavformat `AVInputFormat.name` parts) that read one self-contained file and never
    /// open further files or URLs. Left out on purpose: hls, dash, concat, image2 (patterns open
    /// numbered files), tee, playlists, and any network demuxer.
    static let allowedDemuxers = ["mov", "mp4", "m4a", "3gp", "3g2", "mj2",
                                  "matroska", "webm", "avi", "gif", "flv", "mpegts", "ogg"]

    let path: String
    let format: UnsafeMutablePointer<AVFormatContext>
    let decoder: UnsafeMutablePointer<AVCodecContext>
    let streamIndex: Int32
    let deadline: InterruptDeadline

    var stream: UnsafeMutablePointer<AVStream> { format.pointee.streams[Int(streamIndex)]! }

    init(path: String, limits: VideoReadLimits) throws {
        FFmpeg.silenceLogging()
        self.path = path
        let url = try LocalMediaPath.ffmpegURL(forReading: path)
        let size = (try? FileManager.default.attributesOfItem(atPath: LocalMediaPath.absolutePath(path)))?[.size] as? Int
        if size == 0 { throw MediaError.corrupt(path: path, reason: "the file is empty (0 bytes)") }

        deadline = InterruptDeadline(seconds: limits.timeout)
        guard var context = avformat_alloc_context() else {
            throw MediaError.unreadable(path: path, reason: "out of memory allocating a format context")
        }
        context.pointee.interrupt_callback = deadline.callback
        var options: OpaquePointer? = nil
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        av_dict_set(&options, "format_whitelist", Self.allowedDemuxers.joined(separator: ","), 0)
        av_dict_set(&options, "probesize", String(max(32, limits.probeSize)), 0)
        av_dict_set(&options, "analyzeduration", String(Int64(max(0, limits.analyzeDuration) * 1e6)), 0)
        // mov: never follow data references to other files.
        av_dict_set(&options, "enable_drefs", "0", 0)
        var optionalContext: UnsafeMutablePointer<AVFormatContext>? = context
        let openResult = avformat_open_input(&optionalContext, url, nil, &options)
        av_dict_free(&options)
        guard openResult >= 0, let opened = optionalContext else {
            // avformat_open_input has freed the context.
            throw Self.openError(path: path, code: openResult, deadline: deadline)
        }
        context = opened
        format = context

        do {
            (streamIndex, decoder) = try Self.openVideoDecoder(context, path: path, limits: limits, deadline: deadline)
        } catch {
            var closing: UnsafeMutablePointer<AVFormatContext>? = context
            avformat_close_input(&closing)
            throw error
        }
    }

    /// Reads the stream parameters, picks the best video stream (`av_find_best_stream`) and opens a
    /// decoder for it; frees whatever it allocated when it fails.
    private static func openVideoDecoder(_ context: UnsafeMutablePointer<AVFormatContext>, path: String,
                                         limits: VideoReadLimits, deadline: InterruptDeadline)
        throws -> (Int32, UnsafeMutablePointer<AVCodecContext>) {
        let infoResult = avformat_find_stream_info(context, nil)
        if infoResult < 0 {
            throw infoResult == FFmpeg.exitRequested || deadline.hasPassed
                ? timeoutError(path: path, deadline: deadline)
                : MediaError.corrupt(path: path, reason: "cannot read stream parameters: \(FFmpeg.message(infoResult))")
        }
        var codec: UnsafePointer<AVCodec>? = nil
        let best = av_find_best_stream(context, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0)
        let hasVideo = (0..<Int(context.pointee.nb_streams)).contains {
            context.pointee.streams[$0]!.pointee.codecpar.pointee.codec_type == AVMEDIA_TYPE_VIDEO
        }
        guard best >= 0, let codec else {
            throw MediaError.unsupported(path: path, reason: hasVideo ? "no decoder for its video codec" : "it has no video stream")
        }
        let stream = context.pointee.streams[Int(best)]!
        let parameters = stream.pointee.codecpar!
        guard let decoder = avcodec_alloc_context3(codec) else {
            throw MediaError.unreadable(path: path, reason: "out of memory allocating a decoder")
        }
        var failure: MediaError? = nil
        let copyResult = avcodec_parameters_to_context(decoder, parameters)
        if copyResult < 0 {
            failure = .corrupt(path: path, reason: "bad codec parameters: \(FFmpeg.message(copyResult))")
        } else {
            decoder.pointee.pkt_timebase = stream.pointee.time_base
            decoder.pointee.thread_count = 0  // one thread per core, as libavcodec decides
            // Refuse oversized pictures inside the decoder, before it allocates them.
            decoder.pointee.max_pixels = Int64(limits.maxWidth) * Int64(limits.maxHeight)
            let openResult = avcodec_open2(decoder, codec, nil)
            if openResult < 0 {
                let name = String(cString: avcodec_get_name(parameters.pointee.codec_id))
                failure = .unsupported(path: path, reason: "cannot open the \(name) decoder: \(FFmpeg.message(openResult))")
            }
        }
        if let failure {
            var freeing: UnsafeMutablePointer<AVCodecContext>? = decoder
            avcodec_free_context(&freeing)
            throw failure
        }
        return (best, decoder)
    }

    deinit {
        var decoderContext: UnsafeMutablePointer<AVCodecContext>? = decoder
        avcodec_free_context(&decoderContext)
        var formatContext: UnsafeMutablePointer<AVFormatContext>? = format
        avformat_close_input(&formatContext)
    }

    /// Name of the demuxer libavformat picked, e.g. "matroska,webm".
    var containerName: String { String(cString: format.pointee.iformat.pointee.name) }

    /// Demuxes and decodes the video stream, handing each decoded frame to `body` (which returns
    /// false to stop early). At end of file the decoder is drained — a NULL packet, then frames until
    /// `AVERROR_EOF` — so frames buffered for reordering or threading are not lost.
    func decodeFrames(_ body: (UnsafeMutablePointer<AVFrame>) throws -> Bool) throws {
        guard let packet = av_packet_alloc() else { throw MediaError.unreadable(path: path, reason: "out of memory") }
        guard let frame = av_frame_alloc() else {
            var p: UnsafeMutablePointer<AVPacket>? = packet
            av_packet_free(&p)
            throw MediaError.unreadable(path: path, reason: "out of memory")
        }
        defer {
            var p: UnsafeMutablePointer<AVPacket>? = packet
            av_packet_free(&p)
            var f: UnsafeMutablePointer<AVFrame>? = frame
            av_frame_free(&f)
        }
        var draining = false
        while true {
            if deadline.hasPassed { throw Self.timeoutError(path: path, deadline: deadline) }
            if !draining {
                let readResult = av_read_frame(format, packet)
                if readResult == FFmpeg.endOfFile {
                    draining = true
                    _ = avcodec_send_packet(decoder, nil)
                } else if readResult == FFmpeg.exitRequested {
                    throw Self.timeoutError(path: path, deadline: deadline)
                } else if readResult < 0 {
                    throw MediaError.corrupt(path: path, reason: "cannot read a packet: \(FFmpeg.message(readResult))")
                } else {
                    defer { av_packet_unref(packet) }
                    guard packet.pointee.stream_index == streamIndex else { continue }
                    let sendResult = avcodec_send_packet(decoder, packet)
                    if sendResult < 0 && sendResult != FFmpeg.tryAgain {
                        throw MediaError.corrupt(path: path, reason: "cannot decode the packet at \(describeTime(packet.pointee.pts)): \(FFmpeg.message(sendResult))")
                    }
                }
            }
            while true {
                let receiveResult = avcodec_receive_frame(decoder, frame)
                if receiveResult == FFmpeg.tryAgain { break }
                if receiveResult == FFmpeg.endOfFile { return }
                if receiveResult < 0 {
                    throw MediaError.corrupt(path: path, reason: "cannot decode a frame: \(FFmpeg.message(receiveResult))")
                }
                defer { av_frame_unref(frame) }
                if try !body(frame) { return }
            }
        }
    }

    /// Counts the video packets by demuxing only (no decoding); for containers that keep neither a
    /// frame count nor a duration. Stops with an error past `limit` packets.
    func countPackets(limit: Int) throws -> Int {
        guard let packet = av_packet_alloc() else { throw MediaError.unreadable(path: path, reason: "out of memory") }
        defer { var p: UnsafeMutablePointer<AVPacket>? = packet; av_packet_free(&p) }
        var count = 0
        while true {
            if deadline.hasPassed { throw Self.timeoutError(path: path, deadline: deadline) }
            let result = av_read_frame(format, packet)
            if result == FFmpeg.endOfFile { return count }
            if result == FFmpeg.exitRequested { throw Self.timeoutError(path: path, deadline: deadline) }
            if result < 0 { throw MediaError.corrupt(path: path, reason: "cannot read a packet: \(FFmpeg.message(result))") }
            if packet.pointee.stream_index == streamIndex { count += 1 }
            av_packet_unref(packet)
            if count > limit { throw MediaError.tooLarge(path: path, what: "frame count", limit: "\(limit) frames") }
        }
    }

    private func describeTime(_ pts: Int64) -> String {
        guard pts != FFmpeg.noTimestamp, let base = FFmpeg.seconds(stream.pointee.time_base) else { return "an unknown time" }
        return String(format: "%.3f s", Double(pts) * base)
    }

    static func timeoutError(path: String, deadline: InterruptDeadline) -> MediaError {
        .unreadable(path: path, reason: "gave up after \(deadline.seconds) s (limit `timeout`)")
    }

    /// Explains a failed `avformat_open_input`: a timeout, a refused container (by probing the
    /// file's head ourselves to name it), or FFmpeg's own message.
    private static func openError(path: String, code: Int32, deadline: InterruptDeadline) -> MediaError {
        if code == FFmpeg.exitRequested || deadline.hasPassed { return timeoutError(path: path, deadline: deadline) }
        if let detected = probeContainer(path: path), !isAllowed(demuxer: detected) {
            return .unsupported(path: path, reason: "container '\(detected)' is refused: it can refer to other files or URLs, or is not a plain video file (allowed: \(allowedDemuxers.joined(separator: ", ")))")
        }
        if code == FFmpeg.invalidData {
            return .corrupt(path: path, reason: "not a recognised video file (\(FFmpeg.message(code)))")
        }
        return .unreadable(path: path, reason: FFmpeg.message(code))
    }

    static func isAllowed(demuxer name: String) -> Bool {
        name.split(separator: ",").contains { allowedDemuxers.contains(String($0)) }
    }

    /// The demuxer libavformat would pick for the file's first bytes (`av_probe_input_format`).
    private static func probeContainer(path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: LocalMediaPath.absolutePath(path)) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 1 << 16), !head.isEmpty else { return nil }
        var buffer = [UInt8](head)
        buffer.append(contentsOf: repeatElement(0, count: Int(AVPROBE_PADDING_SIZE)))
        return buffer.withUnsafeMutableBufferPointer { bytes -> String? in
            path.withCString { name -> String? in
                var probe = AVProbeData(filename: name, buf: bytes.baseAddress, buf_size: Int32(head.count), mime_type: nil)
                guard let format = av_probe_input_format(&probe, 1) else { return nil }
                return String(cString: format.pointee.name)
            }
        }
    }
}
