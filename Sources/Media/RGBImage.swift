/// An 8-bit RGB picture, interleaved (`r, g, b, r, g, b, …`) and stored row-major from the top-left:
/// the layout of FFmpeg's `AV_PIX_FMT_RGB24` and of libpng's `PNG_COLOR_TYPE_RGB`.
public struct RGBImage: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// `width * height * 3` bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
