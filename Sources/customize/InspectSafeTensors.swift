import Checkpoints
import Foundation

/// The facts `inspect` reports for a safetensors file: what its header declares (tensor count,
/// dtypes, parameter total, `__metadata__`) and, for adapter files, a LoRA summary.
enum InspectSafeTensors {
    static func facts(_ path: String) throws -> [(String, Fact)] {
        let file = try SafeTensorsFile(path: path)
        var facts = summary(of: file)
        facts.append(("metadata", .record(file.metadata.sorted { $0.key < $1.key }.map { ($0.key, .text($0.value)) })))
        if let lora = try LoRASummary(file: file, adapterConfig: adapterConfig(beside: path)) {
            facts.append(("lora", lora.fact))
        }
        return facts
    }

    /// Tensor count, dtypes with counts, parameter total and byte size: what a weight file in a
    /// diffusers folder is described by too.
    static func summary(of file: SafeTensorsFile) -> [(String, Fact)] {
        var dtypeCounts: [SafeTensors.DType: Int] = [:]
        var parameters = 0
        for entry in file.entries.values {
            dtypeCounts[entry.dtype, default: 0] += 1
            parameters += entry.elementCount
        }
        let dtypes = dtypeCounts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
        let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
        return [
            ("tensors", .integer(file.names.count)),
            ("dtypes", .record(dtypes.map { ($0.key.rawValue, .integer($0.value)) })),
            ("parameters", .integer(parameters)),
            ("size_bytes", .integer(size)),
        ]
    }

    /// PEFT saves `adapter_config.json` (with `r` and `lora_alpha`) beside `adapter_model.safetensors`.
    private static func adapterConfig(beside path: String) -> [String: JSONValue]? {
        let config = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("adapter_config.json").path
        guard let data = FileManager.default.contents(atPath: config),
              case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: data) else { return nil }
        return object
    }
}
