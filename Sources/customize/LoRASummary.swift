import Adapters
import Checkpoints

/// What a LoRA adapter file holds, told from its tensor names and shapes alone, in the key formats
/// the adapter loader reads (`LoRAKey`: PEFT, kohya, diffusers' older ones).
///
/// The rank is the down projection's first dimension. Alpha comes from kohya's `.alpha` tensors,
/// else from metadata (`lora_alpha`, `alpha`, `ss_network_alpha`, `network_alpha`), else from a
/// PEFT `adapter_config.json` beside the file.
struct LoRASummary {
    /// How many target module paths are listed; the count covers all of them.
    static let listedTargets = 5
    static let alphaMetadataKeys = ["lora_alpha", "alpha", "ss_network_alpha", "network_alpha"]

    var formats: [LoRAKeyFormat] = []
    var ranks: [Int] = []
    var alphas: [Double] = []
    var alphaSource: String?
    /// Adapted module paths, each once, in natural order (file order follows dtype alignment and
    /// says nothing about the model).
    var targets: [String] = []

    /// nil when no tensor name is a LoRA factor.
    init?(file: SafeTensorsFile, adapterConfig: [String: JSONValue]?) throws {
        var seenTargets: Set<String> = []
        var downRanks: Set<Int> = [], upRanks: Set<Int> = []
        var tensorAlphas: Set<Double> = []
        for name in file.names {
            guard let key = LoRAKey.parse(name), let entry = file.entries[name] else { continue }
            if !formats.contains(key.format) { formats.append(key.format) }
            if seenTargets.insert(key.target).inserted { targets.append(key.target) }
            switch key.role {
            case .down:
                if let rank = entry.shape.first { downRanks.insert(rank) }
            case .up:
                if entry.shape.count >= 2 { upRanks.insert(entry.shape[1]) }
            case .alpha:
                if let value = try file.floats(name).first { tensorAlphas.insert(Double(value)) }
            }
        }
        // A stray `.alpha` tensor in a model's weights does not make it an adapter: it takes factors.
        guard !downRanks.isEmpty || !upRanks.isEmpty else { return nil }
        targets.sort(by: NaturalOrder.less)
        ranks = (downRanks.isEmpty ? upRanks : downRanks).sorted()

        if !tensorAlphas.isEmpty {
            alphas = tensorAlphas.sorted()
            alphaSource = "alpha tensors"
        } else if let key = Self.alphaMetadataKeys.first(where: { file.metadata[$0].flatMap { Double($0) } != nil }) {
            alphas = [Double(file.metadata[key]!)!]
            alphaSource = "metadata \(key)"
        } else if let alpha = adapterConfig?["lora_alpha"]?.double {
            alphas = [alpha]
            alphaSource = "adapter_config.json lora_alpha"
        }
    }

    var fact: Fact {
        var pairs: [(String, Fact)] = [
            ("format", .text(formats.map(\.rawValue).joined(separator: "+"))),
            ("ranks", .list(ranks.map(Fact.integer))),
        ]
        if alphas.count == 1 {
            pairs.append(("alpha", .number(alphas[0])))
        } else if !alphas.isEmpty {
            pairs.append(("alpha", .list(alphas.map(Fact.number))))
        }
        pairs.append(("alpha_source", .text(alphaSource ?? "none stored")))
        pairs.append(("target_layers", .integer(targets.count)))
        pairs.append(("first_targets", .list(targets.prefix(Self.listedTargets).map(Fact.text))))
        return .record(pairs)
    }
}
