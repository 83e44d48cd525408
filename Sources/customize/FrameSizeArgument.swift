import ArgumentParser

/// A `WxH` frame size from the command line, e.g. `64x64`.
struct FrameSizeArgument: Equatable {
    let width: Int
    let height: Int

    /// Accepts `W x H` with an `x` or `X`; both sides whole numbers from 1 to 16384.
    static func parse(_ text: String, option: String = "--size") throws -> FrameSizeArgument {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]) else {
            throw ValidationError("\(option) expects WxH, e.g. 64x64, got '\(text)'")
        }
        guard (1...16384).contains(width), (1...16384).contains(height) else {
            throw ValidationError("\(option) expects a width and height from 1 to 16384, got '\(text)'")
        }
        return FrameSizeArgument(width: width, height: height)
    }
}
