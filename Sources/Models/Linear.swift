import Tensor

/// A change added to a layer's output by an adapter (LoRA and its variants live in Adapters/).
/// Principle 3: adapters wrap layers; the layer's output is the base plus each active delta.
public protocol LayerDelta: AnyObject {
    /// The adapter's name (several can be active on one layer, each with its own scale).
    var adapterName: String { get }
    /// The delta for input `x` (already scaled), or nil when the adapter is disabled.
    func delta(_ x: Tensor) throws -> Tensor?
    /// True when the delta of a batch is the batch of each sample's deltas and computing it changes
    /// no state, so inference may run the samples of a batch apart (see `inferInGroups`).
    var isPerSample: Bool { get }
}

extension LayerDelta {
    /// Unknown deltas keep batches whole.
    public var isPerSample: Bool { false }
}

/// A layer whose output adapters change (`Linear`, `Conv2d`, `Conv3dTemporal`): base output plus
/// each active delta, in order.
public protocol LayerWithDeltas: Module {
    var deltas: [LayerDelta] { get set }
}

/// torch.nn.Linear: y = x Wᵀ + b, weight [out, in].
public final class Linear: Module, UnaryLayer, LayerWithDeltas {
    public let weight: Tensor
    public let bias: Tensor?
    public let inFeatures: Int
    public let outFeatures: Int
    /// Active adapters, applied in order.
    public var deltas: [LayerDelta] = []

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Tensor(zeros: [outFeatures, inFeatures])
        self.bias = bias ? Tensor(zeros: [outFeatures]) : nil
        super.init()
        parameter("weight", weight)
        if let b = self.bias { parameter("bias", b) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        var y = try Tensor.linear(x, weight: weight, bias: bias)
        for adapter in deltas {
            if let d = try adapter.delta(x) { y = try y + d }
        }
        return y
    }
}
