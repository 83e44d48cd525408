/// Rasterises scenes into 8-bit RGB frames with 3×3 supersampling (smooth edges, exact repeatability).
public struct Renderer: Sendable {
    public var side: Int
    /// Samples per pixel along each axis.
    public var supersampling: Int

    public init(side: Int = 64, supersampling: Int = 3) {
        self.side = side
        self.supersampling = supersampling
    }

    /// All frames of `spec`, each `side × side × 3` bytes, row-major RGB.
    public func render(_ spec: SceneSpec) -> [[UInt8]] {
        (0..<spec.frames).map { frame in
            render(spec, progress: spec.progress(ofFrame: frame))
        }
    }

    /// One frame at `progress` ∈ [0, 1] through the clip.
    public func render(_ spec: SceneSpec, progress: Float) -> [UInt8] {
        render(spec, progress: progress, drawingObjects: true)
    }

    /// One frame, with or without its objects: without them the background still pans as it does
    /// under them (the pan follows the first object's speed).
    func render(_ spec: SceneSpec, progress: Float, drawingObjects: Bool) -> [UInt8] {
        let poses = drawingObjects ? spec.objects.map { $0.pose(at: progress) } : []
        let panOffset: Float = spec.pan.flatMap { $0.direction }.map { $0.x * (spec.objects.first?.speed.travel ?? 0) * progress } ?? 0
        let n = supersampling
        let inverseSamples = 1 / Float(n * n)
        var pixels = [UInt8](repeating: 0, count: side * side * 3)
        for py in 0..<side {
            for px in 0..<side {
                var sum = SIMD3<Float>(repeating: 0)
                for sy in 0..<n {
                    for sx in 0..<n {
                        let point = SIMD2<Float>((Float(px) + (Float(sx) + 0.5) / Float(n)) / Float(side),
                                                 (Float(py) + (Float(sy) + 0.5) / Float(n)) / Float(side))
                        sum += shade(point, spec: spec, poses: poses, panOffset: panOffset)
                    }
                }
                let index = (py * side + px) * 3
                let bytes = Self.bytes(sum * inverseSamples)
                (pixels[index], pixels[index + 1], pixels[index + 2]) = (bytes.0, bytes.1, bytes.2)
            }
        }
        if spec.style == .pixel { pixelate(&pixels, block: Swift.max(side / Self.pixelBlocksPerSide, 1)) }
        return pixels
    }

    /// Which pixels of frame `progress` show an object: 1 where the frame differs from its
    /// background drawn alone (panned as in the frame), 0 elsewhere; `side × side`, row-major.
    public func objectMask(_ spec: SceneSpec, progress: Float = 0) -> [Float] {
        objectMask(spec, progress: progress, drawn: render(spec, progress: progress))
    }

    /// `objectMask(_:progress:)` of a frame already rendered: `drawn` is `render(spec, progress:)`.
    public func objectMask(_ spec: SceneSpec, progress: Float, drawn: [UInt8]) -> [Float] {
        var mask = [Float](repeating: 0, count: side * side)
        if let background = uniformBackgroundPixel(spec) {
            // A plain, unstyled, unpanned background draws the same bytes everywhere: compare with
            // them instead of drawing the frame again without its objects.
            for pixel in 0..<(side * side) where drawn[pixel * 3] != background.0 || drawn[pixel * 3 + 1] != background.1
                || drawn[pixel * 3 + 2] != background.2 {
                mask[pixel] = 1
            }
            return mask
        }
        let empty = render(spec, progress: progress, drawingObjects: false)
        for pixel in 0..<(side * side) where (0..<3).contains(where: { drawn[pixel * 3 + $0] != empty[pixel * 3 + $0] }) {
            mask[pixel] = 1
        }
        return mask
    }

    /// The bytes every pixel of `spec`'s background has when drawn alone, when they are the same
    /// everywhere (a plain background, no style, no pan): the pixel loop of `render` for one pixel.
    func uniformBackgroundPixel(_ spec: SceneSpec) -> (UInt8, UInt8, UInt8)? {
        guard spec.background.kind == .plain, spec.style == nil, spec.pan == nil else { return nil }
        let colour = backgroundColour(SIMD2(0.5, 0.5), spec.background, style: nil)
        var sum = SIMD3<Float>(repeating: 0)
        for _ in 0..<(supersampling * supersampling) { sum += colour }
        return Self.bytes(sum * (1 / Float(supersampling * supersampling)))
    }

    /// A pixel's mean colour as 8-bit RGB, clamped to [0, 1].
    @inline(__always)
    static func bytes(_ colour: SIMD3<Float>) -> (UInt8, UInt8, UInt8) {
        func byte(_ value: Float) -> UInt8 { UInt8((Swift.min(Swift.max(value, 0), 1) * 255).rounded()) }
        return (byte(colour.x), byte(colour.y), byte(colour.z))
    }

    /// The colour of the scene at one point of the canvas.
    func shade(_ point: SIMD2<Float>, spec: SceneSpec, poses: [(centre: SIMD2<Float>, scale: Float, rotation: Float)],
               panOffset: Float) -> SIMD3<Float> {
        var colour = backgroundColour(point - SIMD2(panOffset, 0), spec.background, style: spec.style)
        for (object, pose) in zip(spec.objects, poses) {
            let radius = object.size.radius * pose.scale
            var local = (point - pose.centre) / radius
            if pose.rotation != 0 {
                let c = cosApprox(-pose.rotation), s = sinApprox(-pose.rotation)
                local = SIMD2(c * local.x - s * local.y, s * local.x + c * local.y)
            }
            if let painted = objectColour(local, object: object, style: spec.style) { colour = painted }
        }
        return colour
    }

    func backgroundColour(_ point: SIMD2<Float>, _ background: Background, style: Style?) -> SIMD3<Float> {
        switch style {
        case .neon: return [0.04, 0.03, 0.12]
        case .sketch: return [0.95, 0.93, 0.86]
        default: break
        }
        let base = background.colour.rgb
        switch background.kind {
        case .plain:
            return base
        case .gradient:
            // Light at the top to the full colour at the bottom.
            let t = Swift.min(Swift.max(point.y, 0), 1)
            return base * (0.55 + 0.45 * t) + SIMD3(repeating: 0.45 * (1 - t))
        case .grid:
            let cell: Float = 1.0 / 6
            let fx = point.x / cell - (point.x / cell).rounded(.down)
            let fy = point.y / cell - (point.y / cell).rounded(.down)
            let onLine = fx < 0.12 || fy < 0.12
            return onLine ? base * 0.5 + SIMD3(repeating: 0.5) : base
        }
    }

    /// The object's colour at local coordinates (radius 1), or nil outside the object.
    func objectColour(_ p: SIMD2<Float>, object: SceneObject, style: Style?) -> SIMD3<Float>? {
        let base = object.colour.rgb
        switch object.kind {
        case let .shape(shape):
            guard Shapes.contains(shape, p) else { return nil }
            switch style {
            case .neon:
                // A bright outline, dark inside.
                return Shapes.contains(shape, p / 0.72) ? base * 0.18 : base * 0.5 + SIMD3(repeating: 0.5)
            case .sketch:
                let hatch = (p.x + p.y) * 5
                let onHatch = hatch - hatch.rounded(.down) < 0.35
                let edge = !Shapes.contains(shape, p / 0.85)
                return (edge || onHatch) ? SIMD3(repeating: 0.18) : nil
            default:
                return textured(base, p, texture: object.texture, inside: { Shapes.contains(shape, $0) })
            }
        case let .concept(concept):
            guard let colour = Sprites.colour(concept, p) else { return nil }
            switch style {
            case .neon: return colour * 0.6 + SIMD3(0.1, 0.35, 0.4)
            case .sketch:
                let hatch = (p.x - p.y) * 5
                return hatch - hatch.rounded(.down) < 0.4 ? SIMD3(repeating: 0.2) : SIMD3(repeating: 0.9) - (SIMD3(repeating: 1) - colour) * 0.25
            default: return colour
            }
        }
    }

    func textured(_ base: SIMD3<Float>, _ p: SIMD2<Float>, texture: Texture,
                  inside: (SIMD2<Float>) -> Bool) -> SIMD3<Float>? {
        let dark = base * 0.35 + SIMD3(repeating: 0.02)
        let light = base * 0.4 + SIMD3(repeating: 0.6)
        switch texture {
        case .plain:
            return base
        case .striped:
            let s = (p.x + p.y) * 2.2
            return s - s.rounded(.down) < 0.5 ? base : light
        case .dotted:
            let cell: Float = 0.45
            let q = p / cell
            let f = q - q.rounded(.down) - SIMD2(repeating: 0.5)
            return (f * f).sum() < 0.09 ? dark : base
        case .checkered:
            let q = ((p + SIMD2(repeating: 2)) / 0.5).rounded(.down)
            return Int(q.x + q.y) % 2 == 0 ? base : light
        case .outlined:
            // Only a band along the edge is painted; the inside shows what lies behind.
            return inside(p / 0.7) ? nil : base
        }
    }

    /// Pixel-art blocks across the canvas: 16 (4×4-pixel blocks at 64 pixels) keeps a medium
    /// object three to four blocks wide, coarse but still a recognisable shape.
    public static let pixelBlocksPerSide = 16

    /// Mosaic: every block takes its mean colour.
    func pixelate(_ pixels: inout [UInt8], block: Int) {
        for by in stride(from: 0, to: side, by: block) {
            for bx in stride(from: 0, to: side, by: block) {
                var sum = SIMD3<Int>(repeating: 0), count = 0
                for y in by..<Swift.min(by + block, side) {
                    for x in bx..<Swift.min(bx + block, side) {
                        let i = (y * side + x) * 3
                        sum &+= SIMD3(Int(pixels[i]), Int(pixels[i + 1]), Int(pixels[i + 2]))
                        count += 1
                    }
                }
                for y in by..<Swift.min(by + block, side) {
                    for x in bx..<Swift.min(bx + block, side) {
                        let i = (y * side + x) * 3
                        for c in 0..<3 { pixels[i + c] = UInt8((sum[c] + count / 2) / count) }
                    }
                }
            }
        }
    }
}
