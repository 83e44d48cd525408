import Models
import Tensor

/// A layer that can carry LoRA deltas: the Models layers with a `deltas` list (principle 3).
public enum AdaptableLayer {
    case linear(Linear)
    case conv2d(Conv2d)
    case conv3dTemporal(Conv3dTemporal)

    /// nil for modules that are not adaptable (norms, attention blocks, containers).
    public init?(_ module: Module) {
        switch module {
        case let layer as Linear: self = .linear(layer)
        case let layer as Conv2d: self = .conv2d(layer)
        case let layer as Conv3dTemporal: self = .conv3dTemporal(layer)
        default: return nil
        }
    }

    public var module: Module { layerWithDeltas }

    /// The base weight that merging changes in place.
    public var weight: Tensor {
        switch self {
        case let .linear(layer): return layer.weight
        case let .conv2d(layer): return layer.weight
        case let .conv3dTemporal(layer): return layer.weight
        }
    }

    public var geometry: LoRAGeometry {
        switch self {
        case let .linear(layer):
            return .linear(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures)
        case let .conv2d(layer):
            return .conv2d(inChannels: layer.inChannels, outChannels: layer.outChannels,
                           kernelSize: layer.kernelSize, stride: layer.stride, padding: layer.padding)
        case let .conv3dTemporal(layer):
            return .conv3dTemporal(inChannels: layer.inChannels, outChannels: layer.outChannels, kernelFrames: layer.kernelFrames)
        }
    }

    /// The layer's active deltas (the layer is a class: setting changes it in place).
    /// Every case's layer carries deltas.
    var layerWithDeltas: LayerWithDeltas {
        switch self {
        case let .linear(layer): return layer
        case let .conv2d(layer): return layer
        case let .conv3dTemporal(layer): return layer
        }
    }

    var deltas: [LayerDelta] {
        get { layerWithDeltas.deltas }
        nonmutating set { layerWithDeltas.deltas = newValue }
    }
}
