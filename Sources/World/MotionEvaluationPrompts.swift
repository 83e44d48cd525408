/// One prompt of the motion evaluation: an object whose colour and shape appear in none of the
/// training clips, doing the clips' motion, on a background of a colour the clips do not use either.
public struct MotionEvaluationPrompt: Codable, Equatable, Sendable {
    public var caption: String
    public var colour: NamedColour
    public var shape: ObjectShape
    public var background: NamedColour
}

public enum MotionEvaluationPromptError: Error, Equatable, CustomStringConvertible {
    /// Fewer than two colours (an object and a background) are left once the clips' are excluded.
    case noColoursLeft(used: [NamedColour])
    case noShapesLeft(used: [ObjectShape])
    case badCount(Int)

    public var description: String {
        switch self {
        case let .noColoursLeft(used):
            return "the clips use the colours \(used.map(\.rawValue).joined(separator: ", ")); fewer than two colours are left "
                + "for an object and a background unlike them"
        case let .noShapesLeft(used):
            return "the clips show every shape (\(used.map(\.rawValue).joined(separator: ", "))); none is left for a prompt unlike them"
        case let .badCount(count):
            return "the number of prompts must be at least 1, got \(count)"
        }
    }
}

extension MotionEvaluationPrompt {
    /// `count` prompts "a <size> <colour> <shape> <motion phrase> on a <background> background<suffix>"
    /// (an empty motion phrase is left out: a still image).
    /// Shapes and colours not in `avoidingShapes` / `avoidingColours` are taken in the world's order,
    /// cycling so that consecutive prompts differ in both; the background cycles through the same
    /// colours at a growing offset, so it never equals the object's colour and pairs vary.
    ///
    /// With `core`, the object's colour and shape come from the core world's lists and the
    /// background from its background colours (plain, never the object's colour), in their orders,
    /// so that a core-world base is asked only for words it was trained on.
    public static func make(count: Int, motionPhrase: String, size: ObjectSize, avoidingColours: Set<NamedColour>,
                            avoidingShapes: Set<ObjectShape>, suffix: String = "", core: Bool = false) throws -> [MotionEvaluationPrompt] {
        guard count >= 1 else { throw MotionEvaluationPromptError.badCount(count) }
        let allColours = core ? CoreWorld.colours : NamedColour.allCases, allShapes = core ? CoreWorld.shapes : ObjectShape.allCases
        let colours = allColours.filter { !avoidingColours.contains($0) }
        let shapes = allShapes.filter { !avoidingShapes.contains($0) }
        let backgrounds = core ? CoreWorld.backgroundColours.filter { !avoidingColours.contains($0) } : colours
        // The colours an object can take: those with a background left besides themselves.
        let objectColours = colours.filter { colour in backgrounds.contains { $0 != colour } }
        guard colours.count >= 2, !objectColours.isEmpty else {
            throw MotionEvaluationPromptError.noColoursLeft(used: allColours.filter(avoidingColours.contains))
        }
        guard !shapes.isEmpty else {
            throw MotionEvaluationPromptError.noShapesLeft(used: allShapes.filter(avoidingShapes.contains))
        }
        return (0..<count).map { index in
            let colour = objectColours[index % objectColours.count]
            let background: NamedColour
            if core {
                let choices = backgrounds.filter { $0 != colour }
                background = choices[(index / objectColours.count + index) % choices.count]
            } else {
                // Offsets 1 … colours.count − 1 in turn, one per pass over the colours.
                let offset = 1 + (index / colours.count) % (colours.count - 1)
                background = colours[(index + offset) % colours.count]
            }
            let shape = shapes[index % shapes.count]
            let caption = (["a", size.rawValue, colour.rawValue, shape.rawValue, motionPhrase].filter { !$0.isEmpty }
                + [Captions.backgroundPhrase(Background(kind: .plain, colour: background))]).joined(separator: " ") + suffix
            return MotionEvaluationPrompt(caption: caption, colour: colour, shape: shape, background: background)
        }
    }
}
