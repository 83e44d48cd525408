/// Safety limits applied when opening and decoding a video that may come from anywhere.
/// Every limit that is hit ends in a `MediaError` naming the file and the limit.
public struct VideoReadLimits: Sendable, Equatable {
    /// Largest frame width accepted, in pixels (declared by the container or met while decoding).
    public var maxWidth: Int
    /// Largest frame height accepted, in pixels.
    public var maxHeight: Int
    /// Most frames a file may declare and most frames one read may decode.
    public var maxFrameCount: Int
    /// Longest duration accepted, in seconds.
    public var maxDuration: Double
    /// Wall-clock seconds allowed for opening a file, and again for each read of its frames
    /// (FFmpeg's `AVIOInterruptCB` plus checks in our own loops).
    public var timeout: Double
    /// Bytes libavformat may read while probing the container (`probesize`).
    public var probeSize: Int
    /// Stream time libavformat may analyse to find stream parameters (`analyzeduration`), in seconds.
    public var analyzeDuration: Double

    public init(maxWidth: Int = 8192, maxHeight: Int = 8192, maxFrameCount: Int = 200_000,
                maxDuration: Double = 4 * 3600, timeout: Double = 30,
                probeSize: Int = 10_000_000, analyzeDuration: Double = 10) {
        self.maxWidth = maxWidth
        self.maxHeight = maxHeight
        self.maxFrameCount = maxFrameCount
        self.maxDuration = maxDuration
        self.timeout = timeout
        self.probeSize = probeSize
        self.analyzeDuration = analyzeDuration
    }
}
