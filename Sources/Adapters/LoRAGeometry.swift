/// The layer a LoRA adapts, and therefore the shapes of its two factors, as PEFT lays them out
/// (peft/tuners/lora/layer.py):
/// - `Linear`: A `[r, in]`, B `[out, r]`; delta = B (A x).
/// - `Conv2d`: A is a convolution `[r, in, k, k]` with the layer's stride and padding, B a 1×1
///   convolution `[out, r, 1, 1]`.
/// - temporal `Conv3d` (kernel `(k, 1, 1)`): A `[r, in, k, 1, 1]` with the layer's frame padding,
///   B `[out, r, 1, 1, 1]`.
/// In every case B·A, with A flattened to `[r, in·kernel]`, is the weight delta in the layer's
/// weight layout, which is what merging folds in.
public enum LoRAGeometry: Equatable, Sendable, CustomStringConvertible {
    case linear(inFeatures: Int, outFeatures: Int)
    case conv2d(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int, padding: Int)
    case conv3dTemporal(inChannels: Int, outChannels: Int, kernelFrames: Int)

    public var inputs: Int {
        switch self {
        case let .linear(inFeatures, _): return inFeatures
        case let .conv2d(inChannels, _, _, _, _), let .conv3dTemporal(inChannels, _, _): return inChannels
        }
    }

    public var outputs: Int {
        switch self {
        case let .linear(_, outFeatures): return outFeatures
        case let .conv2d(_, outChannels, _, _, _), let .conv3dTemporal(_, outChannels, _): return outChannels
        }
    }

    /// `lora_A.weight`'s shape.
    public func downShape(rank: Int) -> [Int] {
        switch self {
        case let .linear(inFeatures, _): return [rank, inFeatures]
        case let .conv2d(inChannels, _, kernel, _, _): return [rank, inChannels, kernel, kernel]
        case let .conv3dTemporal(inChannels, _, kernel): return [rank, inChannels, kernel, 1, 1]
        }
    }

    /// `lora_B.weight`'s shape.
    public func upShape(rank: Int) -> [Int] {
        switch self {
        case let .linear(_, outFeatures): return [outFeatures, rank]
        case let .conv2d(_, outChannels, _, _, _): return [outChannels, rank, 1, 1]
        case let .conv3dTemporal(_, outChannels, _): return [outChannels, rank, 1, 1, 1]
        }
    }

    /// Inputs per output of A: kaiming-uniform's fan-in (torch's `_calculate_fan_in_and_fan_out`).
    public var downFanIn: Int {
        switch self {
        case let .linear(inFeatures, _): return inFeatures
        case let .conv2d(inChannels, _, kernel, _, _): return inChannels * kernel * kernel
        case let .conv3dTemporal(inChannels, _, kernel): return inChannels * kernel
        }
    }

    public var description: String {
        switch self {
        case let .linear(inFeatures, outFeatures): return "Linear(\(inFeatures) → \(outFeatures))"
        case let .conv2d(inChannels, outChannels, kernel, stride, padding):
            return "Conv2d(\(inChannels) → \(outChannels), kernel \(kernel), stride \(stride), padding \(padding))"
        case let .conv3dTemporal(inChannels, outChannels, kernel):
            return "Conv3d(\(inChannels) → \(outChannels), kernel (\(kernel), 1, 1))"
        }
    }
}
