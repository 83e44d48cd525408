/// The key formats LoRA files circulate in, and how one tensor name splits into component, module
/// and role. The module is a dotted path for PEFT and diffusers keys; for kohya keys it is the
/// underscore-joined name, which only the model's own paths can resolve (`KohyaNames`).
public enum LoRAKeyFormat: String, Sendable, CaseIterable {
    /// PEFT / diffusers ≥ 0.26: `<path>.lora_A.weight`, `<path>.lora_B.weight`, optionally with the
    /// adapter name before `.weight`.
    case peft
    /// diffusers' older formats: `<path>.lora.down.weight` / `.lora.up.weight`,
    /// `<path>.lora_linear_layer.down.weight`, and attention processors'
    /// `<attention>.processor.to_q_lora.down.weight`.
    case diffusers
    /// kohya-ss sd-scripts: `lora_unet_<path with underscores>.lora_down.weight`, `.lora_up.weight`
    /// and a scalar `.alpha`; `lora_te_` / `lora_te1_` / `lora_te2_` for text encoders.
    case kohya
}

/// One LoRA tensor name, split into format, component, module and role (`LoRATensorName.parse`).
public struct LoRAKey: Equatable, Sendable {
    public enum Role: Equatable, Sendable { case down, up, alpha }

    public let format: LoRAKeyFormat
    /// `unet`, `text_encoder`, …, or nil when the name carries no component prefix.
    public let component: String?
    public let module: String
    public let role: Role
    /// The name's module part as the file spells it: the component and module joined by `.` for
    /// PEFT and diffusers keys (`unet.down_blocks.0…attn1.to_q`), the whole underscore-joined name
    /// for kohya keys (`lora_unet_down_blocks_0…`).
    public let target: String

    static let componentPrefixes = ["unet", "text_encoder_2", "text_encoder", "transformer"]
    static let kohyaPrefixes: [(prefix: String, component: String)] = [
        ("lora_unet_", "unet"), ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"), ("lora_te_", "text_encoder"),
    ]

    /// nil when the name has none of the known forms.
    public static func parse(_ name: String) -> LoRAKey? {
        for (prefix, component) in kohyaPrefixes where name.hasPrefix(prefix) {
            for (suffix, role) in [(".lora_down.weight", Role.down), (".lora_up.weight", .up), (".alpha", .alpha)]
            where name.hasSuffix(suffix) && name.count > prefix.count + suffix.count {
                let module = String(name.dropFirst(prefix.count).dropLast(suffix.count))
                return LoRAKey(format: .kohya, component: component, module: module, role: role, target: prefix + module)
            }
            return nil
        }

        var rest = Substring(name)
        let wrapper = "base_model.model."
        if rest.hasPrefix(wrapper) { rest = rest.dropFirst(wrapper.count) }
        var component: String?
        if let prefix = componentPrefixes.first(where: { rest.hasPrefix($0 + ".") }) {
            component = prefix
            rest = rest.dropFirst(prefix.count + 1)
            if rest.hasPrefix(wrapper) { rest = rest.dropFirst(wrapper.count) }
        }
        var parts = rest.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts.contains(where: \.isEmpty) else { return nil }

        func key(_ format: LoRAKeyFormat, _ module: String, _ role: Role) -> LoRAKey {
            LoRAKey(format: format, component: component, module: module, role: role,
                    target: component.map { $0 + "." + module } ?? module)
        }
        if parts.last == "alpha" {
            return key(.peft, parts.dropLast().joined(separator: "."), .alpha)
        }
        guard parts.last == "weight" else { return nil }
        parts.removeLast()

        // PEFT: …lora_A[.adapter].weight
        for drop in [1, 2] where parts.count > drop {
            let marker = parts[parts.count - drop]
            if marker == "lora_A" || marker == "lora_B" {
                return key(.peft, parts.dropLast(drop).joined(separator: "."), marker == "lora_A" ? .down : .up)
            }
        }
        // diffusers: …(.lora|.lora_linear_layer|_lora).down|up.weight
        guard let last = parts.last, last == "down" || last == "up", parts.count >= 3 else { return nil }
        let role: Role = last == "down" ? .down : .up
        parts.removeLast()
        var module: [String]
        if parts.last == "lora" || parts.last == "lora_linear_layer" {
            module = Array(parts.dropLast())
        } else if let tail = parts.last, tail.hasSuffix("_lora"), tail.count > 5 {
            // Attention processors: `attn1.processor.to_q_lora` adapts `attn1.to_q` (`to_out_lora` → `to_out.0`).
            module = Array(parts.dropLast()) + [String(tail.dropLast(5))]
            if module.count >= 2, module[module.count - 2] == "processor" { module.remove(at: module.count - 2) }
            if module.last == "to_out" { module.append("0") }
        } else {
            return nil
        }
        guard !module.isEmpty else { return nil }
        return key(.diffusers, module.joined(separator: "."), role)
    }
}

/// kohya's module names are diffusers paths with every `.` replaced by `_`; the one translation of a
/// foreign format that principle 1 allows. Rather than a hand-written table, a name resolves to the
/// model path that gives it, so it works for any model whose paths are unambiguous under the mapping.
struct KohyaNames {
    private var pathsByName: [String: [String]] = [:]

    init(paths: [String]) {
        for path in paths {
            pathsByName[path.replacingOccurrences(of: ".", with: "_"), default: []].append(path)
        }
    }

    enum Resolution: Equatable {
        case path(String)
        case unknown
        case ambiguous([String])
    }

    func resolve(_ name: String) -> Resolution {
        guard let paths = pathsByName[name] else { return .unknown }
        return paths.count == 1 ? .path(paths[0]) : .ambiguous(paths)
    }
}

/// What a tensor name of a LoRA file says about where it goes, for callers that spread one file over
/// a pipeline's components (diffusers' `load_lora_weights` splits a file into `unet.` and
/// `text_encoder.` keys the same way).
public enum LoRATensorName {
    /// The component the name is prefixed with (`unet`, `text_encoder`, `text_encoder_2`, `transformer`;
    /// kohya's `lora_te_` is `text_encoder`), or nil when it carries none or is not a LoRA tensor name.
    public static func component(of name: String) -> String? {
        LoRAKey.parse(name)?.component
    }
}
