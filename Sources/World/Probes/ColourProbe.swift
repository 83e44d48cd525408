/// Reads an object's named colour from its pixels.
///
/// Textures paint parts of an object in a darker or lighter version of its colour (dots, stripes,
/// checks), so each named colour is matched in three versions. Every pixel votes for the colour
/// whose version lies nearest; the plain version votes with full weight and the texture versions
/// with less, so a light-red stripe counts towards red rather than pink.
public enum ColourProbe {
    struct Candidate {
        var colour: NamedColour
        var rgb: SIMD3<Float>
        var weight: Float
    }

    static let candidates: [Candidate] = NamedColour.allCases.flatMap { colour -> [Candidate] in
        let base = colour.rgb
        return [Candidate(colour: colour, rgb: base, weight: 1),
                Candidate(colour: colour, rgb: base * 0.35 + SIMD3(repeating: 0.02), weight: 0.35),
                Candidate(colour: colour, rgb: base * 0.4 + SIMD3(repeating: 0.6), weight: 0.35)]
    }

    /// The nearest candidate to one colour: its named colour and voting weight.
    static func vote(_ rgb: SIMD3<Float>) -> (colour: NamedColour, weight: Float) {
        var best = candidates[0], bestDistance = Float.infinity
        for candidate in candidates {
            let d = distanceSquared(rgb, candidate.rgb)
            if d < bestDistance { bestDistance = d; best = candidate }
        }
        return (best.colour, best.weight)
    }

    /// The winning colour of a set of pixels, with the share of the vote it won.
    static func read(_ frame: ProbeFrame, pixels: [Int]) -> (colour: NamedColour, share: Float) {
        var tally = [Float](repeating: 0, count: NamedColour.allCases.count)
        for index in pixels {
            let (colour, weight) = vote(frame.colour(at: index))
            tally[NamedColour.allCases.firstIndex(of: colour)!] += weight
        }
        let total = tally.reduce(0, +)
        let best = tally.indices.max { tally[$0] < tally[$1] }!
        return (NamedColour.allCases[best], total > 0 ? tally[best] / total : 0)
    }
}
