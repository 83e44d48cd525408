import Checkpoints
import Tensor

/// Writing adapters as PEFT-style safetensors, the layout diffusers' `save_lora_weights` produces:
/// `<component>.<module path>.lora_A.weight` and `.lora_B.weight` (`unet.down_blocks.0…to_q.lora_A.weight`,
/// `text_encoder.…`), with the metadata `LoRAFileMetadata` describes. Several adapters of different
/// components (a U-Net and a text encoder adapter trained together) can share one file.
public enum LoRAFileWriter {
    /// Writes `adapters` (pairs of an adapter set and one of its adapter names) to `path` atomically,
    /// storing the factors as `dtype` (`.f32`, `.f16` or `.bf16`).
    public static func write(_ adapters: [(set: AdapterSet, adapter: String)], metadata: LoRAFileMetadata,
                             dtype: SafeTensors.DType = .f32, to path: String) throws {
        guard SafeTensors.writableDTypes.contains(dtype) else {
            throw AdapterError.invalidConfiguration("\(path): LoRA files are written as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        var tensors: [SafeTensors.TensorToWrite] = []
        var peftFields: [String: JSONValue] = [:]
        var allLoRAs: [LoRA] = []
        var targetPatterns: [String] = []
        var seenComponents: Set<String> = []
        for (set, name) in adapters {
            let entry = try set.entry(name)
            guard seenComponents.insert(set.component).inserted else {
                throw AdapterError.invalidConfiguration(
                    "\(path): two adapters for component \"\(set.component)\" in one file would share keys; write them to separate files")
            }
            for lora in entry.loras {
                for (suffix, tensor) in lora.namedParameters {
                    tensors.append(SafeTensors.TensorToWrite(
                        name: "\(set.component).\(lora.modulePath).\(suffix)", shape: tensor.shape,
                        borrowing: UnsafeBufferPointer(start: tensor.data, count: tensor.count), dtype: dtype))
                }
            }
            allLoRAs += entry.loras
            targetPatterns += entry.targets
            for (field, value) in peftConfig(entry) { peftFields["\(set.component).\(field)"] = value }
        }
        guard !allLoRAs.isEmpty else {
            throw AdapterError.invalidConfiguration("\(path): no adapter to write")
        }
        var values: [String: String] = [
            LoRAFileMetadata.Key.format: "pt",
            LoRAFileMetadata.Key.adapterMetadata: JSONValue.object(peftFields).encoded(),
            LoRAFileMetadata.Key.rank: String(mostCommon(allLoRAs.map(\.rank))),
            LoRAFileMetadata.Key.alpha: JSONValue.number(mostCommon(allLoRAs.map(\.alpha))).encoded(),
            LoRAFileMetadata.Key.targetModules: JSONValue.array(targetPatterns.map { .string($0) }).encoded(),
            LoRAFileMetadata.Key.training: JSONValue.object(metadata.training).encoded(),
        ]
        if let method = metadata.method { values[LoRAFileMetadata.Key.method] = method }
        if let baseModel = metadata.baseModel {
            values[LoRAFileMetadata.Key.baseModel] = JSONValue.object([
                "name": .string(baseModel.name), "unet_config_sha256": .string(baseModel.unetConfigSHA256),
            ]).encoded()
        }
        try SafeTensors.write(tensors, metadata: values, to: path)
    }

    /// PEFT `LoraConfig` fields for one adapter, as diffusers' `get_peft_kwargs` would infer them:
    /// the most common rank and alpha, the rest as `^path` patterns (PEFT anchors `^` keys at the
    /// start of the module path).
    static func peftConfig(_ entry: AdapterSet.Entry) -> [String: JSONValue] {
        let loras = entry.loras
        let rank = mostCommon(loras.map(\.rank))
        let alpha = mostCommon(loras.map(\.alpha))
        var rankPattern: [String: JSONValue] = [:], alphaPattern: [String: JSONValue] = [:]
        for lora in loras {
            if lora.rank != rank { rankPattern["^" + lora.modulePath] = .number(Double(lora.rank)) }
            if lora.alpha != alpha { alphaPattern["^" + lora.modulePath] = .number(lora.alpha) }
        }
        let initialisation: JSONValue = entry.config?.initialisation == .gaussian ? "gaussian" : true
        return [
            "r": .number(Double(rank)),
            "lora_alpha": .number(alpha),
            "rank_pattern": .object(rankPattern),
            "alpha_pattern": .object(alphaPattern),
            "target_modules": .array(loras.map { .string($0.modulePath) }),
            "use_rslora": .bool(loras.contains(where: \.useRSLoRA)),
            "lora_dropout": .number(loras.first?.dropout ?? 0),
            "init_lora_weights": initialisation,
        ]
    }

    /// The value occurring most often; ties go to the one seen first.
    static func mostCommon<Value: Hashable>(_ values: [Value]) -> Value {
        var counts: [Value: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        var best = values[0]
        for value in values where counts[value]! > counts[best]! { best = value }
        return best
    }
}

extension AdapterSet {
    /// Saves one adapter as a PEFT-style safetensors file (see `LoRAFileWriter`).
    public func save(_ adapter: String, to path: String, metadata: LoRAFileMetadata = LoRAFileMetadata(),
                     dtype: SafeTensors.DType = .f32) throws {
        try LoRAFileWriter.write([(self, adapter)], metadata: metadata, dtype: dtype, to: path)
    }
}
