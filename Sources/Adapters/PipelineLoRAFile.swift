import Checkpoints

/// One LoRA file spread over a pipeline's U-Net and text encoder, as diffusers'
/// `load_lora_weights` splits a file by its `unet.` and `text_encoder.` keys: unprefixed and `unet.`
/// tensors go to `unet`, `text_encoder.` tensors to `textEncoder`, and tensors for components the
/// pipeline lacks are listed, not loaded.
///
/// With `allowPartial` what does not fit is skipped, a whole component included (a file whose U-Net
/// part fits while none of its text-encoder keys does loads its U-Net part); the file fails only
/// when nothing fits (`nothingFits`). On failure nothing of the file stays attached.
public struct PipelineLoRAFile {
    public let unet: LoRALoadReport?
    public let textEncoder: LoRALoadReport?
    /// What did not fit and was skipped (`allowPartial` only).
    public let skipped: [LoRAFileProblem]
    /// Tensors for components other than the two, ignored.
    public let ignoredTensors: [String]

    public static func load(_ path: String, as name: String, multiplier: Float, allowPartial: Bool,
                            unet: AdapterSet, textEncoder: AdapterSet) throws -> PipelineLoRAFile {
        let names = try SafeTensorsFile(path: path).names
        let components = names.map(LoRATensorName.component(of:))
        let forUNet = components.contains { $0 == nil || $0 == unet.component }
        let forTextEncoder = components.contains { $0 == textEncoder.component }
        var skipped: [LoRAFileProblem] = []
        var unetReport: LoRALoadReport?, textReport: LoRALoadReport?
        do {
            // With neither, the U-Net's loader gives the error that says what the file holds.
            if forUNet || !forTextEncoder {
                unetReport = try unet.loadPart(path, as: name, multiplier: multiplier, allowPartial: allowPartial, skipped: &skipped)
            }
            if forTextEncoder {
                textReport = try textEncoder.loadPart(path, as: name, multiplier: multiplier, allowPartial: allowPartial, skipped: &skipped)
            }
            if unetReport == nil && textReport == nil { throw AdapterError.nothingFits(file: path, problems: skipped) }
        } catch {
            for set in [unet, textEncoder] where set.adapterNames.contains(name) { try? set.remove(name) }
            throw error
        }
        let ignored = zip(names, components).filter { _, component in
            component != nil && component != unet.component && component != textEncoder.component
        }.map(\.0)
        return PipelineLoRAFile(unet: unetReport, textEncoder: textReport, skipped: skipped, ignoredTensors: ignored)
    }
}
