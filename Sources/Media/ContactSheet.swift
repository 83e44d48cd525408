extension RGBImage {
    /// Frames side by side in one row, left to right, on a black background (frames of different
    /// heights are top-aligned): a contact sheet to glance at a clip in one image.
    public static func contactSheet(_ frames: [RGBImage], spacing: Int = 0) throws -> RGBImage {
        guard !frames.isEmpty else {
            throw MediaError.invalidArgument(what: "contact sheet", reason: "needs at least one frame")
        }
        guard spacing >= 0 else {
            throw MediaError.invalidArgument(what: "contact sheet", reason: "spacing must not be negative, got \(spacing)")
        }
        let width = frames.reduce(0) { $0 + $1.width } + spacing * (frames.count - 1)
        let height = frames.map(\.height).max()!
        var sheet = try RGBImage(width: width, height: height)
        var left = 0
        for frame in frames {
            for row in 0 ..< frame.height {
                let source = row * frame.width * 3
                let destination = (row * width + left) * 3
                sheet.pixels.replaceSubrange(destination ..< destination + frame.width * 3,
                                             with: frame.pixels[source ..< source + frame.width * 3])
            }
            left += frame.width + spacing
        }
        return sheet
    }
}
