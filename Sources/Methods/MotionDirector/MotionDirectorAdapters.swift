import Adapters
import Models
import Tensor

/// MotionDirector's adapters on one U-Net: a temporal LoRA (`temporal`) on the temporal
/// transformers and one spatial LoRA per clip (`spatial-0`, `spatial-1`, …; a single `spatial-0`
/// when shared) on the spatial transformers' self-attention and feed-forward
/// (`ModulePattern.motionDirectorTemporal` / `.motionDirectorSpatial`), and the switching each
/// training path needs — the reference's `lora_i.scale = 0 / 1` over `extract_lora_child_module`.
public struct MotionDirectorAdapters {
    public static let temporalName = "temporal"
    public static func spatialName(_ index: Int) -> String { "spatial-\(index)" }

    public let set: AdapterSet
    /// The spatial adapters' names, one per clip or one shared.
    public let spatialNames: [String]
    public let hasTemporal: Bool

    /// Injects fresh LoRAs (B = 0, so the model is unchanged until trained): `spatialCount` spatial
    /// ones and, when `temporal`, the temporal one. Initial values depend only on `generator`, the
    /// adapter names and the layer paths.
    public init(unet: any Denoiser, spatialCount: Int, temporal: Bool, config: LoRAConfig, generator: RandomGenerator) throws {
        guard spatialCount >= 1 else {
            throw AdapterError.invalidConfiguration("MotionDirector needs at least one spatial LoRA, got \(spatialCount)")
        }
        set = AdapterSet(model: unet, component: "unet")
        spatialNames = (0..<spatialCount).map(Self.spatialName)
        hasTemporal = temporal
        if temporal {
            try set.inject(Self.temporalName, config: config, targets: ModulePattern.motionDirectorTemporal, generator: generator)
        }
        for name in spatialNames {
            try set.inject(name, config: config, targets: ModulePattern.motionDirectorSpatial, generator: generator)
        }
    }

    /// Every trained adapter: the temporal one first, then the spatial ones.
    public var trainedNames: [String] { (hasTemporal ? [Self.temporalName] : []) + spatialNames }

    /// The spatial path: only `spatial` on and trainable; the temporal LoRA and the other spatial
    /// LoRAs off.
    public func configureSpatialPath(_ spatial: String) throws {
        for name in spatialNames {
            try set.setEnabled(name == spatial, for: name)
            try set.setTrainable(name == spatial, for: name)
        }
        if hasTemporal { try set.setEnabled(false, for: Self.temporalName) }
    }

    /// The temporal path: the temporal LoRA on and trainable; `spatial` on but frozen (nil: every
    /// spatial LoRA off), so the temporal loss leaves it untouched; the other spatial LoRAs off.
    /// The spatial factors stay frozen until the next `configureSpatialPath`, so that a backward pass
    /// of the temporal loss gives them no gradient.
    public func configureTemporalPath(spatial: String?) throws {
        for name in spatialNames {
            try set.setEnabled(name == spatial, for: name)
            try set.setTrainable(false, for: name)
        }
        if hasTemporal {
            try set.setEnabled(true, for: Self.temporalName)
            try set.setTrainable(true, for: Self.temporalName)
        }
    }

    /// Inference: the temporal LoRA at strength 1 and every spatial LoRA at `spatialScale` (off at 0),
    /// dropout off — the reference's preview set-up (`lora_i.scale = spatial_scale`).
    public func configureInference(spatialScale: Float) throws {
        try set.setTraining(generator: nil)
        for name in spatialNames {
            try set.setEnabled(spatialScale != 0, for: name)
            try set.setMultiplier(spatialScale, for: name)
        }
        if hasTemporal {
            try set.setEnabled(true, for: Self.temporalName)
            try set.setMultiplier(1, for: Self.temporalName)
        }
    }

    /// Back to training strengths (1) after `configureInference`.
    public func restoreTrainingStrengths() throws {
        for name in trainedNames { try set.setMultiplier(1, for: name) }
    }
}
