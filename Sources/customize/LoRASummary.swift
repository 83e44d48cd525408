import Checkpoints

/// What a LoRA adapter file holds, told from its tensor names and shapes alone, in the key formats
/// that circulate:
/// - PEFT / diffusers ≥ 0.26 (`save_lora_weights`): `<module>.lora_A.weight` ([rank, in]) and
///   `<module>.lora_B.weight` ([out, rank]), optionally with an adapter name before `.weight`;
/// - kohya-ss (sd-scripts): `lora_unet_<module_with_underscores>.lora_down.weight`, `.lora_up.weight`
///   and a scalar `.alpha` per module;
/// - diffusers' older attention-processor format: `<module>_lora.down.weight` / `.lora.down.weight`.
///
/// The rank is the down projection's first dimension. Alpha comes from kohya's `.alpha` tensors,
/// else from metadata (`lora_alpha`, `alpha`, `ss_network_alpha`, `network_alpha`), else from a
/// PEFT `adapter_config.json` beside the file.
struct LoRASummary {
    enum KeyFormat: String {
        case peft, kohya, diffusers
    }

    /// How many target module paths are listed; the count covers all of them.
    static let listedTargets = 5
    static let alphaMetadataKeys = ["lora_alpha", "alpha", "ss_network_alpha", "network_alpha"]

    var formats: [KeyFormat] = []
    var ranks: [Int] = []
    var alphas: [Double] = []
    var alphaSource: String?
    /// Adapted module paths, each once, in natural order (file order follows dtype alignment and
    /// says nothing about the model).
    var targets: [String] = []

    /// nil when no tensor name has a LoRA form.
    init?(file: SafeTensorsFile, adapterConfig: [String: JSONValue]?) throws {
        var seenTargets: Set<String> = []
        var downRanks: Set<Int> = [], upRanks: Set<Int> = []
        var tensorAlphas: Set<Double> = []
        for name in file.names {
            guard let key = Self.parse(name), let entry = file.entries[name] else { continue }
            if !formats.contains(key.format) { formats.append(key.format) }
            if seenTargets.insert(key.module).inserted { targets.append(key.module) }
            switch key.role {
            case .down:
                if let rank = entry.shape.first { downRanks.insert(rank) }
            case .up:
                if entry.shape.count >= 2 { upRanks.insert(entry.shape[1]) }
            case .alpha:
                if let value = try file.floats(name).first { tensorAlphas.insert(Double(value)) }
            }
        }
        guard !formats.isEmpty else { return nil }
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

    private enum Role { case down, up, alpha }

    private static func parse(_ name: String) -> (format: KeyFormat, module: String, role: Role)? {
        if name.hasPrefix("lora_") {
            for (suffix, role) in [(".lora_down.weight", Role.down), (".lora_up.weight", .up), (".alpha", .alpha)]
            where name.hasSuffix(suffix) {
                return (.kohya, String(name.dropLast(suffix.count)), role)
            }
        }
        for (suffix, role) in [("_lora.down.weight", Role.down), ("_lora.up.weight", .up),
                               (".lora.down.weight", .down), (".lora.up.weight", .up)] where name.hasSuffix(suffix) {
            return (.diffusers, String(name.dropLast(suffix.count)), role)
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.last == "weight", let index = parts.lastIndex(where: { $0 == "lora_A" || $0 == "lora_B" }), index > 0 {
            return (.peft, parts[..<index].joined(separator: "."), parts[index] == "lora_A" ? .down : .up)
        }
        return nil
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
