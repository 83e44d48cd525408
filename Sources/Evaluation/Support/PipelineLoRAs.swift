import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models

/// The LoRA files active on a pipeline: diffusers' `load_lora_weights` + `fuse_lora` before a render,
/// `unfuse_lora` + `unload_lora_weights` before the next one with other LoRAs.
///
/// Each file goes onto the U-Net, and onto the text encoder when it also holds `text_encoder` keys.
/// The adapters are merged (a render then costs what the base model costs); taking them out copies
/// the saved original weights back, bit for bit, so a render after LoRAs gives the same bytes as a
/// render with a freshly loaded pipeline. Files are merged in the order given, so the same list gives
/// the same weights however it was reached.
public final class PipelineLoRAs {
    public let unet: AdapterSet
    public let textEncoder: AdapterSet
    /// What is merged now.
    public private(set) var applied: [LoRAChoice] = []
    /// `--allow-partial`: load what fits of a file, warn about the rest, instead of failing.
    public let allowPartial: Bool

    public init(_ pipeline: TextToVideoPipeline, allowPartial: Bool = false) {
        unet = AdapterSet(model: pipeline.unet, component: "unet")
        textEncoder = AdapterSet(model: pipeline.textEncoder, component: "text_encoder")
        self.allowPartial = allowPartial
    }

    /// Makes `choices` the active LoRAs (nothing to do when they already are). Returns warnings
    /// (tensors for components this pipeline lacks). On failure the pipeline is left without LoRAs.
    @discardableResult
    public func apply(_ choices: [LoRAChoice]) throws -> [String] {
        guard choices != applied else { return [] }
        try removeAll()
        var warnings: [String] = []
        do {
            for (index, choice) in choices.enumerated() {
                warnings += try load(choice, as: "lora\(index + 1)")
            }
            try unet.merge()
            try textEncoder.merge()
        } catch {
            try removeAll()
            throw error
        }
        applied = choices
        return warnings
    }

    /// Loads `choice` onto a scratch adapter and takes it off again: checks that the file fits the
    /// model without rendering. The active LoRAs are kept.
    public func check(_ choice: LoRAChoice) throws {
        let name = "check\(unet.adapterNames.count + 1)"
        defer {
            if unet.adapterNames.contains(name) { try? unet.remove(name) }
            if textEncoder.adapterNames.contains(name) { try? textEncoder.remove(name) }
        }
        _ = try load(choice, as: name)
    }

    /// Takes every LoRA out: the original weights are restored first, then the adapters dropped.
    public func removeAll() throws {
        for set in [unet, textEncoder] {
            try set.unmerge()
            for name in set.adapterNames { try set.remove(name) }
        }
        applied = []
    }

    /// Loads `choice` onto the U-Net when the file holds tensors for it (unprefixed or `unet.`), and
    /// onto the text encoder when it holds `text_encoder` tensors. Returns a warning about tensors for
    /// components this pipeline lacks.
    private func load(_ choice: LoRAChoice, as name: String) throws -> [String] {
        let loaded = try PipelineLoRAFile.load(choice.path, as: name, multiplier: choice.scale, allowPartial: allowPartial,
                                               unet: unet, textEncoder: textEncoder)
        var warnings: [String] = []
        if let stored = loaded.unet?.metadata.baseModel, let model = unet.model as? any Denoiser,
           let expected = try? BaseModelIdentity(name: "", unet: model),
           stored.unetConfigSHA256 != expected.unetConfigSHA256 {
            warnings.append("LoRA '\(choice.path)' was trained on \(stored.name) (U-Net config \(stored.unetConfigSHA256.prefix(12))), "
                            + "not on this model (U-Net config \(expected.unetConfigSHA256.prefix(12))); its shapes fit, its effect may not")
        }
        if let first = loaded.skipped.first {
            warnings.append(Self.skippedWarning(path: choice.path, loaded.skipped.count, first: first))
        }
        let ignored = loaded.ignoredTensors
        guard !ignored.isEmpty else { return warnings }
        return warnings + ["LoRA '\(choice.path)': \(ignored.count) tensor\(ignored.count == 1 ? "" : "s") for components this pipeline lacks \(ignored.count == 1 ? "was" : "were") ignored (e.g. \(ignored[0]))"]
    }

    /// The warning for parts of a file skipped under `--allow-partial`.
    public static func skippedWarning(path: String, _ count: Int, first: LoRAFileProblem) -> String {
        "LoRA '\(path)': \(count) part\(count == 1 ? " that does" : "s that do") not fit the model skipped (--allow-partial), e.g. \(first)"
    }
}
