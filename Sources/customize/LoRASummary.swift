import Adapters
import Checkpoints
import Evaluation
import Foundation

/// What a LoRA adapter file holds, told from its tensor names and shapes alone, in the key formats
/// the adapter loader reads (`LoRAKey`: PEFT, kohya, diffusers' older ones).
///
/// The rank is the down projection's first dimension. Alpha comes from kohya's `.alpha` tensors,
/// else from diffusers' `lora_adapter_metadata` (`lora_alpha` and `alpha_pattern`, as the adapter
/// loader reads it), else from metadata (`lora_alpha`, `alpha`, `ss_network_alpha`, `network_alpha`),
/// else from a PEFT `adapter_config.json` beside the file.
///
/// Targets are counted by kind (`TargetKind`), which says which U-Net layout the file is for:
/// AnimateDiff's when it adapts motion modules, UNet3D's when it adapts temporal layers, either
/// when it adapts spatial layers only (their paths are the same in both).
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
    /// Targets per kind.
    var kindCounts: [TargetKind: Int] = [:]

    /// nil when no tensor name is a LoRA factor.
    init?(file: SafeTensorsFile, adapterConfig: [String: JSONValue]?) throws {
        var seenTargets: Set<String> = []
        var downRanks: Set<Int> = [], upRanks: Set<Int> = []
        var tensorAlphas: Set<Double> = []
        for name in file.names {
            guard let key = LoRAKey.parse(name), let entry = file.entries[name] else { continue }
            if !formats.contains(key.format) { formats.append(key.format) }
            if seenTargets.insert(key.target).inserted {
                targets.append(key.target)
                kindCounts[TargetKind(key), default: 0] += 1
            }
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
        } else if let stated = Self.adapterMetadataAlphas(file.metadata) {
            alphas = stated
            alphaSource = Self.adapterMetadataKey
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
        pairs.append(("target_kinds", .record(TargetKind.allCases.compactMap { kind in
            kindCounts[kind].map { (kind.rawValue, .integer($0)) }
        })))
        pairs.append(("layout", .text(layout)))
        pairs.append(("first_targets", .list(targets.prefix(Self.listedTargets).map(Fact.text))))
        return .record(pairs)
    }

    /// Which U-Net the file is for, from the kinds it adapts.
    var layout: String {
        let motion = kindCounts[.motion] != nil, temporal = kindCounts[.temporal] != nil
        switch (motion, temporal) {
        case (true, false): return "AnimateDiff (UNetMotionModel: adapts motion modules)"
        case (false, true): return "UNet3D (UNet3DConditionModel: adapts temporal layers)"
        case (true, true): return "neither layout whole (adapts both AnimateDiff's motion modules and UNet3D's temporal layers)"
        case (false, false):
            if kindCounts[.spatial] != nil {
                return "either (spatial layers only, whose paths AnimateDiff, UNet3D and image U-Nets share)"
            }
            return kindCounts[.textEncoder] != nil && kindCounts[.other] == nil ? "no U-Net (text encoder only)" : "no U-Net"
        }
    }

    static let adapterMetadataKey = "lora_adapter_metadata"

    /// diffusers' `lora_adapter_metadata` (PEFT `LoraConfig` fields per component, as the adapter
    /// loader reads them): every `lora_alpha` and `alpha_pattern` value stated, or nil when none is.
    static func adapterMetadataAlphas(_ metadata: [String: String]) -> [Double]? {
        guard let text = metadata[adapterMetadataKey],
              case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return nil }
        var alphas: Set<Double> = []
        for (name, value) in fields {
            if name == "lora_alpha" || name.hasSuffix(".lora_alpha"), let alpha = value.double { alphas.insert(alpha) }
            if name == "alpha_pattern" || name.hasSuffix(".alpha_pattern"), case .object(let patterns) = value {
                alphas.formUnion(patterns.values.compactMap(\.double))
            }
        }
        return alphas.isEmpty ? nil : alphas.sorted()
    }
}

/// What part of which model a LoRA target adapts, told from its module path (dotted, or kohya's
/// underscore-joined name): AnimateDiff's motion modules (`motion_modules.`), UNet3D's temporal
/// layers (`temp_attentions.`, `temp_convs.`, `transformer_in.`), a text encoder's layers, or
/// else the image U-Net's spatial layers (`attentions.`, `resnets.`, `conv_in`…) that every U-Net
/// here shares.
enum TargetKind: String, CaseIterable {
    case spatial
    case motion
    case temporal
    case textEncoder = "text_encoder"
    /// Another component (a DiT's `transformer`).
    case other

    static let motionParts = ["motion_modules"]
    static let temporalParts = ["temp_attentions", "temp_convs", "transformer_in"]

    init(_ key: LoRAKey) {
        switch key.component {
        case "text_encoder"?, "text_encoder_2"?: self = .textEncoder
        case nil, "unet"?:
            // Underscores on both sides match whole path parts in dotted and kohya names alike.
            let name = "_" + key.module.replacingOccurrences(of: ".", with: "_") + "_"
            func has(_ parts: [String]) -> Bool { parts.contains { name.contains("_" + $0 + "_") } }
            self = has(Self.motionParts) ? .motion : has(Self.temporalParts) ? .temporal : .spatial
        default: self = .other
        }
    }
}
