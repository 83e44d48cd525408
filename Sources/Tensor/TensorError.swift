/// Errors raised by tensor operations. Each case names the operation and the shapes involved,
/// so a mismatch deep inside a model reads as a sentence a user can act on.
public enum TensorError: Error, CustomStringConvertible, Sendable {
    /// Two operands whose shapes do not fit together.
    case shapeMismatch(op: String, lhs: [Int], rhs: [Int])
    /// An argument outside what the operation accepts (an axis, a size, a stride...).
    case invalidArgument(op: String, reason: String)
    /// `backward()` called on a tensor that is not part of a gradient graph, or twice.
    case noGraph(reason: String)
    /// A loss or gradient that is NaN or infinite.
    case nonFinite(what: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, lhs, rhs):
            return "\(op): shapes \(lhs) and \(rhs) do not fit"
        case let .invalidArgument(op, reason):
            return "\(op): \(reason)"
        case let .noGraph(reason):
            return "backward: \(reason)"
        case let .nonFinite(what):
            return "\(what) is not finite (NaN or Inf)"
        }
    }
}

extension TensorError: CustomDebugStringConvertible {
    public var debugDescription: String { description }
}
