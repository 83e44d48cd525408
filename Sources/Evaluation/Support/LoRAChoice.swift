import Foundation

/// One `--lora NAME[:SCALE]` (or a prompt line's `lora=NAME:SCALE`) as the user wrote it: diffusers'
/// `load_lora_weights(NAME)` followed by `set_adapters(..., adapter_weights=SCALE)`.
public struct LoRARequest: Equatable {
    public var name: String
    public var scale: Float

    /// Parses `NAME` or `NAME:SCALE` (scale 1 when left out). The scale is what follows the last `:`,
    /// so a file name may itself hold colons as long as a scale ends the text.
    public init(parsing text: String) throws {
        var name = text, scale: Float = 1
        if let colon = text.lastIndex(of: ":") {
            let scaleText = String(text[text.index(after: colon)...])
            guard let value = Float(scaleText), value.isFinite else {
                throw LoRARequestError(text: text, reason: "the scale \"\(scaleText)\" after ':' is not a number (expected NAME or NAME:SCALE, e.g. style:0.8)")
            }
            name = String(text[..<colon])
            scale = value
        }
        guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw LoRARequestError(text: text, reason: "no file name before the scale (expected NAME or NAME:SCALE)")
        }
        self.name = name
        self.scale = scale
    }
}

public struct LoRARequestError: Error, CustomStringConvertible {
    public let text: String
    public let reason: String
    public var description: String { "\(text): \(reason)" }
}

/// A LoRA file to apply at a strength: what a render's adapters are, and what its metadata records.
public struct LoRAChoice: Equatable, Codable {
    /// As the user wrote it.
    public var name: String
    /// The file it resolved to.
    public var path: String
    public var scale: Float
    /// What the file is for: a plain `--lora`, MotionDirector's `--motion` (temporal) or
    /// `--spatial` (appearance) LoRA, or HiPA's one-step adaptors (`--onestep`, which also switch
    /// the render to one-step sampling). All are applied the same way; the role is what a render's
    /// metadata records and what a prompt line's `lora=` leaves in place.
    public var role: Role = .lora

    public init(name: String, path: String, scale: Float, role: Role = .lora) {
        self.name = name
        self.path = path
        self.scale = scale
        self.role = role
    }

    public enum Role: String, Codable {
        case lora, motion, spatial, onestep
    }

    /// `path:scale` for PNG metadata, e.g. `loras/style.safetensors:0.8`; `motion path:scale` and
    /// `spatial path:scale` for the MotionDirector roles.
    public var label: String { (role == .lora ? "" : role.rawValue + " ") + "\(path):\(scale)" }

    /// The `adapters` metadata of a render: the choices in the order applied, or `none`.
    public static func metadataLabel(_ choices: [LoRAChoice]) -> String {
        choices.isEmpty ? "none" : choices.map(\.label).joined(separator: ", ")
    }
}
