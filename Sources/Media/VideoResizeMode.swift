/// How a frame is fitted to a requested output size whose aspect ratio differs from the source's.
public enum VideoResizeMode: Sendable, Equatable {
    /// Cut the largest centred rectangle of the target aspect out of the source, then scale it:
    /// the output is filled, the source's edges are lost.
    case centerCrop
    /// Scale the whole source to fit inside the target, then pad the rest with black bars:
    /// nothing is lost, the bars carry no content.
    case letterbox
}
