/// How a new LoRA is shaped and initialised: PEFT's `LoraConfig` fields `r`, `lora_alpha`,
/// `use_rslora`, `lora_dropout` and `init_lora_weights`.
public struct LoRAConfig: Equatable, Sendable, Codable {
    /// How A (`lora_A`, the down projection) starts; B (`lora_B`) always starts at zero, so a new
    /// adapter leaves the model's output unchanged.
    public enum Initialisation: String, Equatable, Sendable, Codable {
        /// PEFT's default (`init_lora_weights=True`): kaiming-uniform with a = √5, the default of
        /// `nn.Linear`, i.e. A ~ U(−1/√fan_in, 1/√fan_in).
        case kaimingUniform = "kaiming_uniform"
        /// PEFT's `init_lora_weights="gaussian"`: A ~ N(0, σ² = 1/r²), i.e. standard deviation 1/r.
        case gaussian
    }

    public var rank: Int
    public var alpha: Float
    /// rsLoRA (PEFT `use_rslora`): scale = alpha / √rank instead of alpha / rank.
    public var useRSLoRA: Bool
    /// Probability of dropping elements of the LoRA's input while training (PEFT `lora_dropout`).
    public var dropout: Float
    public var initialisation: Initialisation

    public init(rank: Int, alpha: Float? = nil, useRSLoRA: Bool = false, dropout: Float = 0,
                initialisation: Initialisation = .kaimingUniform) {
        self.rank = rank
        self.alpha = alpha ?? Float(rank)
        self.useRSLoRA = useRSLoRA
        self.dropout = dropout
        self.initialisation = initialisation
    }

    /// The factor applied to B·A: alpha / rank, or alpha / √rank with rsLoRA.
    public var scale: Float { LoRAConfig.scale(rank: rank, alpha: alpha, useRSLoRA: useRSLoRA) }

    static func scale(rank: Int, alpha: Float, useRSLoRA: Bool) -> Float {
        useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank)
    }

    /// Throws unless rank ≥ 1, alpha is finite and dropout lies in [0, 1).
    public func validate() throws {
        guard rank >= 1 else { throw AdapterError.invalidConfiguration("LoRA rank \(rank) must be at least 1") }
        guard alpha.isFinite else { throw AdapterError.invalidConfiguration("LoRA alpha \(alpha) must be finite") }
        guard dropout >= 0, dropout < 1 else {
            throw AdapterError.invalidConfiguration("LoRA dropout \(dropout) must lie in [0, 1)")
        }
    }
}
