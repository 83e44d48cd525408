/// Inside tests for the plain shapes, in local coordinates where the shape fits the unit disc
/// (x right, y down).
enum Shapes {
    static func contains(_ shape: ObjectShape, _ p: SIMD2<Float>) -> Bool {
        let x = p.x, y = p.y
        switch shape {
        case .circle:
            return x * x + y * y <= 1
        case .square:
            return Swift.abs(x) <= 0.8 && Swift.abs(y) <= 0.8
        case .triangle:
            return insidePolygon(p, triangle)
        case .star:
            return insidePolygon(p, star)
        case .ring:
            let r2 = x * x + y * y
            return r2 <= 1 && r2 >= 0.36
        case .cross:
            return (Swift.abs(x) <= 0.3 && Swift.abs(y) <= 0.95) || (Swift.abs(y) <= 0.3 && Swift.abs(x) <= 0.95)
        case .diamond:
            return Swift.abs(x) + Swift.abs(y) * 0.8 <= 0.95
        case .heart:
            // (u² + v² − 1)³ − u² v³ ≤ 0 with v pointing up, scaled to the unit disc.
            let u = x * 1.2, v = -y * 1.2 + 0.15
            let a = u * u + v * v - 1
            return a * a * a - u * u * v * v * v <= 0
        case .hexagon:
            return insidePolygon(p, hexagon)
        case .crescent:
            let inOuter = x * x + y * y <= 0.95
            let dx = x - 0.45, dy = y + 0.1
            return inOuter && dx * dx + dy * dy > 0.55
        }
    }

    static let triangle: [SIMD2<Float>] = [[0, -0.95], [0.9, 0.7], [-0.9, 0.7]]
    static let hexagon: [SIMD2<Float>] = (0..<6).map { i in
        let a = Float(i) * Float.pi / 3
        return SIMD2(0.95 * cosApprox(a), 0.95 * sinApprox(a))
    }
    static let star: [SIMD2<Float>] = (0..<10).map { i in
        let a = -Float.pi / 2 + Float(i) * Float.pi / 5
        let r: Float = i % 2 == 0 ? 1 : 0.45
        return SIMD2(r * cosApprox(a), r * sinApprox(a))
    }

    /// Even-odd rule point-in-polygon.
    static func insidePolygon(_ p: SIMD2<Float>, _ vertices: [SIMD2<Float>]) -> Bool {
        var inside = false
        var j = vertices.count - 1
        for i in 0..<vertices.count {
            let a = vertices[i], b = vertices[j]
            if (a.y > p.y) != (b.y > p.y) {
                let crossX = a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x)
                if p.x < crossX { inside.toggle() }
            }
            j = i
        }
        return inside
    }
}

/// The reserved concepts: small figures built from primitives, each with its own fixed palette,
/// so a concept LoRA has one recognisable subject to learn.
enum Sprites {
    static func colour(_ concept: Concept, _ p: SIMD2<Float>) -> SIMD3<Float>? {
        switch concept {
        case .cat: return cat(p)
        case .dog: return dog(p)
        case .robot: return robot(p)
        }
    }

    static func disc(_ p: SIMD2<Float>, _ c: SIMD2<Float>, _ r: Float) -> Bool {
        let d = p - c
        return (d * d).sum() <= r * r
    }

    static func ellipse(_ p: SIMD2<Float>, _ c: SIMD2<Float>, _ r: SIMD2<Float>) -> Bool {
        let d = (p - c) / r
        return (d * d).sum() <= 1
    }

    /// Orange head with pointed ears, green eyes, pink nose, dark stripes on the forehead.
    static func cat(_ p: SIMD2<Float>) -> SIMD3<Float>? {
        let fur: SIMD3<Float> = [0.95, 0.55, 0.15]
        if disc(p, [-0.3, 0.0], 0.13) || disc(p, [0.3, 0.0], 0.13) {
            return disc(p, [-0.3, 0.0], 0.06) || disc(p, [0.3, 0.0], 0.06) ? [0.05, 0.05, 0.05] : [0.35, 0.8, 0.3]
        }
        if Shapes.insidePolygon(p, [[-0.1, 0.25], [0.1, 0.25], [0, 0.38]]) { return [0.95, 0.45, 0.6] }
        if disc(p, [0, 0.1], 0.72) {
            let stripe = p.y < -0.3 && Swift.abs(p.x) < 0.3 && Int(((p.x + 1) * 10).rounded(.down)) % 3 == 0
            return stripe ? [0.55, 0.28, 0.05] : fur
        }
        if Shapes.insidePolygon(p, [[-0.75, -0.2], [-0.55, -0.95], [-0.2, -0.5]])
            || Shapes.insidePolygon(p, [[0.75, -0.2], [0.55, -0.95], [0.2, -0.5]]) {
            return fur
        }
        return nil
    }

    /// Light-brown head with long dark floppy ears, a white muzzle and a black nose.
    static func dog(_ p: SIMD2<Float>) -> SIMD3<Float>? {
        if disc(p, [0, 0.2], 0.1) { return [0.05, 0.05, 0.05] }
        if disc(p, [-0.28, -0.15], 0.09) || disc(p, [0.28, -0.15], 0.09) { return [0.08, 0.05, 0.02] }
        if ellipse(p, [0, 0.32], [0.33, 0.25]) { return [0.96, 0.94, 0.9] }
        if ellipse(p, [-0.72, 0.15], [0.22, 0.55]) || ellipse(p, [0.72, 0.15], [0.22, 0.55]) { return [0.35, 0.2, 0.08] }
        if ellipse(p, [0, 0.0], [0.6, 0.68]) { return [0.78, 0.58, 0.35] }
        return nil
    }

    /// Grey square head with an antenna, glowing cyan eyes and a slot mouth.
    static func robot(_ p: SIMD2<Float>) -> SIMD3<Float>? {
        if disc(p, [0, -0.92], 0.08) { return [0.95, 0.2, 0.2] }
        if Swift.abs(p.x) < 0.04 && p.y > -0.9 && p.y < -0.62 { return [0.3, 0.3, 0.3] }
        guard Swift.abs(p.x) <= 0.7 && p.y >= -0.62 && p.y <= 0.7 else { return nil }
        if (Swift.abs(Swift.abs(p.x) - 0.3) < 0.13) && Swift.abs(p.y + 0.15) < 0.12 { return [0.2, 0.95, 1.0] }
        if Swift.abs(p.x) < 0.35 && Swift.abs(p.y - 0.35) < 0.06 { return [0.15, 0.15, 0.15] }
        return [0.62, 0.65, 0.7]
    }
}
