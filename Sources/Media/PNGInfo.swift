/// The PNG colour types of the IHDR chunk (PNG spec §11.2.2, libpng's `PNG_COLOR_TYPE_*`).
public enum PNGColorType: String, Sendable, CaseIterable, CustomStringConvertible {
    case grey = "grey"
    case rgb = "rgb"
    case palette = "palette"
    case greyAlpha = "grey+alpha"
    case rgba = "rgba"

    /// The IHDR byte.
    public var code: UInt8 {
        switch self {
        case .grey: return 0
        case .rgb: return 2
        case .palette: return 3
        case .greyAlpha: return 4
        case .rgba: return 6
        }
    }

    public init?(code: UInt8) {
        guard let match = PNGColorType.allCases.first(where: { $0.code == code }) else { return nil }
        self = match
    }

    /// Samples per pixel as stored in the file (a palette index counts as one, like `png_get_channels`).
    public var channels: Int {
        switch self {
        case .grey, .palette: return 1
        case .greyAlpha: return 2
        case .rgb: return 3
        case .rgba: return 4
        }
    }

    /// Bit depths the PNG spec allows for this colour type.
    public var allowedBitDepths: [Int] {
        switch self {
        case .grey: return [1, 2, 4, 8, 16]
        case .palette: return [1, 2, 4, 8]
        case .rgb, .greyAlpha, .rgba: return [8, 16]
        }
    }

    public var description: String { rawValue }
}

/// What a PNG file says about itself, before any conversion to 8-bit RGB: the IHDR fields and
/// every text chunk (what libpng's `png_get_IHDR` and `png_get_text` report).
public struct PNGInfo: Equatable, Sendable {
    public var width: Int
    public var height: Int
    /// Bits per sample (per palette index for palette images).
    public var bitDepth: Int
    public var colorType: PNGColorType
    public var channels: Int
    /// Adam7 interlacing.
    public var interlaced: Bool
    /// Whether the file has an alpha channel or a tRNS chunk, i.e. whether reading composited.
    public var hasTransparency: Bool
    /// Keyword → text of every tEXt, zTXt and iTXt chunk, decompressed; when a keyword repeats,
    /// the later chunk wins.
    public var text: [String: String]

    public init(width: Int, height: Int, bitDepth: Int, colorType: PNGColorType, channels: Int,
                interlaced: Bool, hasTransparency: Bool, text: [String: String]) {
        self.width = width
        self.height = height
        self.bitDepth = bitDepth
        self.colorType = colorType
        self.channels = channels
        self.interlaced = interlaced
        self.hasTransparency = hasTransparency
        self.text = text
    }
}
