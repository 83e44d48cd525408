/// What a video file declares about its main video stream, as libavformat reports it
/// (`AVFormatContext.iformat`, `AVStream.codecpar`, `avg_frame_rate`, `nb_frames`, `duration`).
public struct VideoInfo: Sendable, Equatable {
    /// The path as given by the caller.
    public var path: String
    /// libavformat's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "gif".
    public var container: String
    /// The codec's short name, e.g. "h264", "vp9", "gif".
    public var codec: String
    public var width: Int
    public var height: Int
    /// Average frames per second (0 when the file gives no rate at all).
    public var fps: Double
    /// Seconds of the video stream (of the whole file when the stream lacks its own).
    public var duration: Double
    /// Number of frames: the container's count when it keeps one (`frameCountIsExact`), otherwise
    /// `duration * fps` rounded, or — when even the duration is unknown — a count of the packets.
    public var frameCount: Int
    public var frameCountIsExact: Bool

    public init(path: String, container: String, codec: String, width: Int, height: Int,
                fps: Double, duration: Double, frameCount: Int, frameCountIsExact: Bool) {
        self.path = path
        self.container = container
        self.codec = codec
        self.width = width
        self.height = height
        self.fps = fps
        self.duration = duration
        self.frameCount = frameCount
        self.frameCountIsExact = frameCountIsExact
    }
}
