import Models
import Tensor

/// A low-rank adapter on one layer: PEFT's `LoraLayer` (peft/tuners/lora/layer.py) for `Linear`,
/// `Conv2d` and the temporal `Conv3d`. The layer's output becomes
///
///     base(x) + multiplier · scale · B(A(dropout(x))),   scale = alpha / rank (rsLoRA: alpha / √rank)
///
/// with A = `lora_A` (down) and B = `lora_B` (up) laid out as `LoRAGeometry` says. `multiplier` is the
/// user's per-adapter strength (the `FILE:scale` of the CLI, diffusers' `set_adapters` weight).
/// Dropout acts only while `dropoutGenerator` is set (training), drawing from it so that runs are
/// reproducible (principle 8).
public final class LoRA: LayerDelta {
    public let adapterName: String
    /// The adapted layer's module path (its diffusers key without `.weight`).
    public let modulePath: String
    public let geometry: LoRAGeometry
    public let rank: Int
    public let alpha: Float
    public let useRSLoRA: Bool
    /// `lora_A.weight`.
    public let down: Tensor
    /// `lora_B.weight`.
    public let up: Tensor
    /// The user's strength on top of alpha / rank.
    public var multiplier: Float = 1
    public var dropout: Float
    /// Non-nil while training: dropout is active and draws its masks from it.
    public var dropoutGenerator: RandomGenerator?
    /// A disabled adapter adds nothing (PEFT's `disable_adapters`).
    public var isEnabled = true
    /// Set while the delta is folded into the base weight; the layer then gets it from the weight.
    public internal(set) var isMerged = false

    /// A LoRA over given factors. Throws unless `down` and `up` have the shapes `geometry` requires
    /// for one rank.
    public init(adapterName: String, modulePath: String, geometry: LoRAGeometry, alpha: Float,
                useRSLoRA: Bool = false, dropout: Float = 0, down: Tensor, up: Tensor) throws {
        let rank = down.shape.first ?? 0
        guard rank >= 1, down.shape == geometry.downShape(rank: rank), up.shape == geometry.upShape(rank: rank) else {
            throw AdapterError.invalidConfiguration(
                "LoRA on \(modulePath) (\(geometry)): lora_A \(down.shape) and lora_B \(up.shape) do not fit; " +
                "expected \(geometry.downShape(rank: max(rank, 1))) and \(geometry.upShape(rank: max(rank, 1)))")
        }
        try LoRAConfig(rank: rank, alpha: alpha, useRSLoRA: useRSLoRA, dropout: dropout).validate()
        self.adapterName = adapterName
        self.modulePath = modulePath
        self.geometry = geometry
        self.rank = rank
        self.alpha = alpha
        self.useRSLoRA = useRSLoRA
        self.dropout = dropout
        self.down = down
        self.up = up
        down.name = "\(adapterName):\(modulePath).lora_A.weight"
        up.name = "\(adapterName):\(modulePath).lora_B.weight"
    }

    /// A new LoRA initialised as PEFT does: A by `config.initialisation`, B zero.
    public convenience init(adapterName: String, modulePath: String, geometry: LoRAGeometry,
                            config: LoRAConfig, generator: inout RandomGenerator) throws {
        try config.validate()
        let downShape = geometry.downShape(rank: config.rank)
        let down: Tensor
        switch config.initialisation {
        case .kaimingUniform:
            // kaiming_uniform_(a=√5): gain √(2/(1+5)), bound = gain·√(3/fan_in) = 1/√fan_in.
            let bound = 1 / Float(geometry.downFanIn).squareRoot()
            down = generator.uniform(downShape, low: -bound, high: bound)
        case .gaussian:
            down = generator.normal(downShape, std: 1 / Float(config.rank))
        }
        try self.init(adapterName: adapterName, modulePath: modulePath, geometry: geometry, alpha: config.alpha,
                      useRSLoRA: config.useRSLoRA, dropout: config.dropout,
                      down: down, up: Tensor(zeros: geometry.upShape(rank: config.rank)))
    }

    /// alpha / rank, or alpha / √rank with rsLoRA.
    public var scale: Float { LoRAConfig.scale(rank: rank, alpha: alpha, useRSLoRA: useRSLoRA) }

    /// What multiplies B·A in the output: scale · multiplier.
    public var effectiveScale: Float { scale * multiplier }

    /// The factors with their PEFT names (`lora_A.weight`, `lora_B.weight`).
    public var namedParameters: [(name: String, tensor: Tensor)] {
        [("lora_A.weight", down), ("lora_B.weight", up)]
    }

    /// Marks both factors trainable or frozen.
    public var isTrainable: Bool {
        get { down.requiresGrad && up.requiresGrad }
        set { down.requiresGrad = newValue; up.requiresGrad = newValue }
    }

    /// Per sample unless dropout is drawing masks (training), which advances the generator.
    public var isPerSample: Bool { dropout == 0 || dropoutGenerator == nil }

    /// scale · multiplier · B(A(dropout(x))) for the adapted layer's input `x`, or nil when the
    /// adapter is disabled, merged, or at zero strength.
    public func delta(_ x: Tensor) throws -> Tensor? {
        guard isEnabled, !isMerged else { return nil }
        let strength = effectiveScale
        guard strength != 0 else { return nil }
        var input = x
        if dropout > 0, var generator = dropoutGenerator {
            input = try x.dropout(p: dropout, generator: &generator, training: true)
            dropoutGenerator = generator
        }
        let lowRank: Tensor, output: Tensor
        switch geometry {
        case .linear:
            lowRank = try Tensor.linear(input, weight: down)
            output = try Tensor.linear(lowRank, weight: up)
        case let .conv2d(_, _, _, stride, padding):
            lowRank = try Tensor.conv2d(input, weight: down, stride: stride, padding: padding)
            output = try Tensor.conv2d(lowRank, weight: up)
        case let .conv3dTemporal(_, _, kernelFrames):
            lowRank = try Tensor.conv3dTemporal(input, weight: down, padding: (kernelFrames - 1) / 2)
            output = try Tensor.conv3dTemporal(lowRank, weight: up, padding: 0)
        }
        return strength == 1 ? output : output * strength
    }

    /// scale · multiplier · B·A in the layer's weight layout (PEFT's `get_delta_weight`): what merging
    /// adds to the base weight. No gradient history.
    public func deltaWeight() throws -> Tensor {
        try Tensor.withoutGrad {
            let weightShape = [geometry.outputs] + Array(down.shape.dropFirst())
            let flatDown = try down.detached().reshaped([rank, down.count / rank])
            let flatUp = try up.detached().reshaped([geometry.outputs, rank])
            let product = try Tensor.matmul(flatUp, flatDown)
            let strength = effectiveScale
            if strength != 1 {
                let p = product.data
                for i in 0..<product.count { p[i] *= strength }
            }
            return try product.reshaped(weightShape)
        }
    }
}
