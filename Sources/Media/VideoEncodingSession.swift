import CFFmpeg
import Foundation

/// One output file being encoded: libavformat's output `AVFormatContext` (muxer chosen by name),
/// one video `AVStream`, its `AVCodecContext`, and a reusable `AVFrame` the caller fills. Output is
/// made reproducible with `AVFMT_FLAG_BITEXACT`/`AV_CODEC_FLAG_BITEXACT` and a single encoder thread.
final class VideoEncodingSession {
    /// The destination the user asked for; named in errors.
    let path: String
    let encoderName: String
    private let output: UnsafeMutablePointer<AVFormatContext>
    private let encoder: UnsafeMutablePointer<AVCodecContext>
    private let stream: UnsafeMutablePointer<AVStream>
    private let frame: UnsafeMutablePointer<AVFrame>
    private let packet: UnsafeMutablePointer<AVPacket>
    private var nextTimestamp: Int64 = 0
    private var fileOpen = false

    /// - Parameters:
    ///   - fileURL: where the muxer writes (a `file:` URL of the temporary file).
    ///   - muxer: libavformat output format name ("mp4", "gif").
    ///   - encoders: libavcodec encoder names to try in order ("libx264", then "mpeg4").
    ///   - configure: sets codec options for the chosen encoder name, adding private options to the dictionary.
    init(path: String, fileURL: String, muxer: String, encoders: [String], width: Int, height: Int,
         pixelFormat: AVPixelFormat, frameRate: AVRational, muxerOptions: [String: String],
         configure: (String, UnsafeMutablePointer<AVCodecContext>, inout OpaquePointer?) -> Void) throws {
        FFmpeg.silenceLogging()
        self.path = path
        guard let (name, codec) = encoders.lazy.compactMap({ name in avcodec_find_encoder_by_name(name).map { (name, $0) } }).first else {
            throw MediaError.unsupported(path: path, reason: "this FFmpeg has none of the encoders \(encoders.joined(separator: ", "))")
        }
        encoderName = name

        var allocatedOutput: UnsafeMutablePointer<AVFormatContext>? = nil
        let allocResult = avformat_alloc_output_context2(&allocatedOutput, nil, muxer, fileURL)
        guard allocResult >= 0, let output = allocatedOutput else {
            throw MediaError.unsupported(path: path, reason: "no \(muxer) muxer: \(FFmpeg.message(allocResult))")
        }
        self.output = output
        output.pointee.flags |= AVFMT_FLAG_BITEXACT

        guard let encoder = avcodec_alloc_context3(codec), let stream = avformat_new_stream(output, nil),
              let frame = av_frame_alloc(), let packet = av_packet_alloc() else {
            avformat_free_context(output)
            throw MediaError.writeFailed(path: path, reason: "out of memory")
        }
        self.encoder = encoder
        self.stream = stream
        self.frame = frame
        self.packet = packet
        // Every property is set: from here a throw runs deinit, which ends this.
        ZeroedAllocations.begin()

        encoder.pointee.width = Int32(width)
        encoder.pointee.height = Int32(height)
        encoder.pointee.pix_fmt = pixelFormat
        encoder.pointee.framerate = frameRate
        encoder.pointee.time_base = av_inv_q(frameRate)
        encoder.pointee.thread_count = 1
        encoder.pointee.flags |= AV_CODEC_FLAG_BITEXACT
        if output.pointee.oformat.pointee.flags & AVFMT_GLOBALHEADER != 0 {
            encoder.pointee.flags |= AV_CODEC_FLAG_GLOBAL_HEADER
        }
        var codecOptions: OpaquePointer? = nil
        configure(name, encoder, &codecOptions)
        let openResult = avcodec_open2(encoder, codec, &codecOptions)
        av_dict_free(&codecOptions)
        if openResult < 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot open the \(name) encoder for \(width)x\(height): \(FFmpeg.message(openResult))")
        }
        let parametersResult = avcodec_parameters_from_context(stream.pointee.codecpar, encoder)
        if parametersResult < 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot set stream parameters: \(FFmpeg.message(parametersResult))")
        }
        stream.pointee.time_base = encoder.pointee.time_base
        stream.pointee.avg_frame_rate = frameRate

        frame.pointee.format = pixelFormat.rawValue
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        let bufferResult = av_frame_get_buffer(frame, 0)
        if bufferResult < 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot allocate a frame: \(FFmpeg.message(bufferResult))")
        }

        let ioResult = avio_open(&output.pointee.pb, fileURL, AVIO_FLAG_WRITE)
        if ioResult < 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot create the temporary file: \(FFmpeg.message(ioResult))")
        }
        fileOpen = true
        var headerOptions: OpaquePointer? = nil
        for (key, value) in muxerOptions.sorted(by: { $0.key < $1.key }) { av_dict_set(&headerOptions, key, value, 0) }
        let headerResult = avformat_write_header(output, &headerOptions)
        av_dict_free(&headerOptions)
        if headerResult < 0 {
            throw MediaError.writeFailed(path: path, reason: "cannot write the \(muxer) header: \(FFmpeg.message(headerResult))")
        }
    }

    deinit {
        defer { ZeroedAllocations.end() }
        if fileOpen { avio_closep(&output.pointee.pb) }
        var encoderContext: UnsafeMutablePointer<AVCodecContext>? = encoder
        avcodec_free_context(&encoderContext)
        var frameToFree: UnsafeMutablePointer<AVFrame>? = frame
        av_frame_free(&frameToFree)
        var packetToFree: UnsafeMutablePointer<AVPacket>? = packet
        av_packet_free(&packetToFree)
        avformat_free_context(output)
    }

    /// Lets `fill` write the next picture into the session's frame, then encodes it.
    func encodeNext(_ fill: (UnsafeMutablePointer<AVFrame>) throws -> Void) throws {
        // The encoder may still hold a reference to the previous picture (gif keeps it for diffs).
        let writable = av_frame_make_writable(frame)
        if writable < 0 { throw MediaError.writeFailed(path: path, reason: "cannot reuse the frame buffer: \(FFmpeg.message(writable))") }
        try fill(frame)
        frame.pointee.pts = nextTimestamp
        nextTimestamp += 1
        try send(frame)
    }

    /// Drains the encoder (a NULL frame, then packets until `AVERROR_EOF`), writes the trailer and
    /// closes the file.
    func finish() throws {
        try send(nil)
        let trailerResult = av_write_trailer(output)
        if trailerResult < 0 { throw MediaError.writeFailed(path: path, reason: "cannot finish the file: \(FFmpeg.message(trailerResult))") }
        fileOpen = false
        let closeResult = avio_closep(&output.pointee.pb)
        if closeResult < 0 { throw MediaError.writeFailed(path: path, reason: "cannot close the file: \(FFmpeg.message(closeResult))") }
    }

    private func send(_ frame: UnsafeMutablePointer<AVFrame>?) throws {
        let sendResult = avcodec_send_frame(encoder, frame)
        if sendResult < 0 { throw MediaError.writeFailed(path: path, reason: "the \(encoderName) encoder refused a frame: \(FFmpeg.message(sendResult))") }
        while true {
            let receiveResult = avcodec_receive_packet(encoder, packet)
            if receiveResult == FFmpeg.tryAgain || receiveResult == FFmpeg.endOfFile { return }
            if receiveResult < 0 { throw MediaError.writeFailed(path: path, reason: "the \(encoderName) encoder failed: \(FFmpeg.message(receiveResult))") }
            packet.pointee.stream_index = stream.pointee.index
            av_packet_rescale_ts(packet, encoder.pointee.time_base, stream.pointee.time_base)
            let writeResult = av_interleaved_write_frame(output, packet)  // takes ownership of the packet's data
            if writeResult < 0 { throw MediaError.writeFailed(path: path, reason: "cannot write a packet: \(FFmpeg.message(writeResult))") }
        }
    }
}

/// While a video is being encoded, glibc hands out its allocations zero-filled (`M_PERTURB` 0xFF:
/// blocks from the heap's bins filled with 0xFF ^ 0xFF, freed ones with 0xFF; small blocks recycled
/// through its per-thread cache are not, and did not matter here). Something on the encoding path
/// (libavcodec with libx264, or swscale; not pinned down) reads heap memory it never wrote: the same
/// render gave different MP4 bytes from run to run, and `MALLOC_PERTURB_` 0, 85 and 170 gave three
/// different files. That memory was zero when glibc mapped fresh pages for large buffers and is
/// whatever the last user left once freed pages are kept for reuse (the CLI's
/// `MALLOC_TRIM_THRESHOLD_`). Counted, so overlapping sessions nest; the last one's end puts back
/// the environment's `MALLOC_PERTURB_` (0, glibc's default, when unset).
enum ZeroedAllocations {
    nonisolated(unsafe) private static var depth = 0
    private static let lock = NSLock()
    /// `M_PERTURB` in glibc's malloc.h, which Swift's Glibc module does not import.
    private static let perturbOption: Int32 = -6
    private static let environmentPerturb = Int32(ProcessInfo.processInfo.environment["MALLOC_PERTURB_"] ?? "") ?? 0

    static func begin() {
        lock.withLock {
            if depth == 0 { _ = glibcMallopt(perturbOption, 0xFF) }
            depth += 1
        }
    }

    static func end() {
        lock.withLock {
            depth -= 1
            if depth == 0 { _ = glibcMallopt(perturbOption, environmentPerturb) }
        }
    }
}

/// glibc's `int mallopt(int param, int value)` (malloc.h).
@_silgen_name("mallopt")
private func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32
