import Foundation

/// What can stop training, each naming the step, file, key or tensor involved.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// The loss came out NaN or infinite.
    case nonFiniteLoss(step: Int, value: Float)
    /// A gradient holds a NaN or infinity; `parameter` is its path.
    case nonFiniteGradient(step: Int, parameter: String)
    /// The loss closure returned something other than one number.
    case lossNotScalar(step: Int, shape: [Int])
    /// A config or options file holds a value out of range.
    case badOptions(file: String, key: String, reason: String)
    /// A checkpoint or run folder cannot be read or written.
    case checkpoint(path: String, reason: String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(step, value):
            return "training diverged at step \(step + 1): the loss is \(value); lower the learning rate or the gradient-norm clip and resume from the last checkpoint"
        case let .nonFiniteGradient(step, parameter):
            return "training diverged at step \(step + 1): the gradient of \(parameter) is not finite; lower the learning rate and resume from the last checkpoint"
        case let .lossNotScalar(step, shape):
            return "step \(step + 1): the loss must be one number, got a tensor of shape \(shape)"
        case let .badOptions(file, key, reason):
            return "\(file): \(key): \(reason)"
        case let .checkpoint(path, reason):
            return "\(path): \(reason)"
        }
    }
}
