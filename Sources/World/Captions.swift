/// The caption grammar: "a small red striped circle moving left quickly on a blue background".
public enum Captions {
    public static func caption(_ spec: SceneSpec) -> String {
        let moving = spec.frames > 1
        var parts: [String] = []
        if spec.objects.count == 1 {
            parts.append(objectPhrase(spec.objects[0], moving: moving))
        } else {
            let ordered = spec.objects.sorted { $0.position.x < $1.position.x }
            parts.append(objectPhrase(ordered[0], moving: moving) + " on the left and "
                         + objectPhrase(ordered[1], moving: moving) + " on the right")
        }
        parts.append(backgroundPhrase(spec.background))
        if moving, let pan = spec.pan { parts.append(pan.phrase) }
        if let style = spec.style { parts.append("in \(style.rawValue) style") }
        return parts.joined(separator: " ")
    }

    static func objectPhrase(_ object: SceneObject, moving: Bool) -> String {
        var words = ["a", object.size.rawValue]
        if case .shape = object.kind {
            words.append(object.colour.rawValue)
            if object.texture != .plain { words.append(object.texture.rawValue) }
        }
        words.append(object.kind.word)
        if moving, object.motion != .panLeft, object.motion != .panRight {
            words.append(object.motion.phrase)
            if object.motion.direction != nil || object.motion.isReserved { words.append(object.speed.adverb) }
        }
        return words.joined(separator: " ")
    }

    /// "on a blue background", "on an orange gradient background".
    public static func backgroundPhrase(_ background: Background) -> String {
        let colour = background.colour.rawValue
        let article = "aeiou".contains(colour.first!) ? "an" : "a"
        switch background.kind {
        case .plain: return "on \(article) \(colour) background"
        case .gradient: return "on \(article) \(colour) gradient background"
        case .grid: return "on \(article) \(colour) grid background"
        }
    }
}
