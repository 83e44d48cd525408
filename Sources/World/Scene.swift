/// One object of a scene, in canvas-relative units (the canvas spans [0, 1] on both axes).
public struct SceneObject: Codable, Hashable, Sendable {
    public var kind: ObjectKind
    public var colour: NamedColour
    public var size: ObjectSize
    public var texture: Texture
    /// Centre position at the first frame.
    public var position: SIMD2<Float>
    /// Rotation at the first frame, radians.
    public var rotation: Float
    public var motion: Motion
    public var speed: Speed

    public init(kind: ObjectKind, colour: NamedColour, size: ObjectSize, texture: Texture = .plain,
                position: SIMD2<Float> = [0.5, 0.5], rotation: Float = 0, motion: Motion = .still, speed: Speed = .slow) {
        self.kind = kind
        self.colour = colour
        self.size = size
        self.texture = texture
        self.position = position
        self.rotation = rotation
        self.motion = motion
        self.speed = speed
    }

    /// Centre, scale factor and rotation at `progress` ∈ [0, 1] through the clip.
    public func pose(at progress: Float) -> (centre: SIMD2<Float>, scale: Float, rotation: Float) {
        let travel = speed.travel
        var centre = position, scale: Float = 1, angle = rotation
        if let direction = motion.direction {
            centre += direction * travel * progress
        }
        switch motion {
        case .growing: scale = 0.7 + 0.6 * progress
        case .shrinking: scale = 1.3 - 0.6 * progress
        case .rotating: angle += (speed == .slow ? 1.2 : 2.4) * progress
        case .zigzag:
            // Rightwards with two up-down swings.
            centre.x += travel * progress
            let phase = progress * 4
            let tri = Swift.abs(phase - 2 * (phase / 2).rounded(.down) - 1) * 2 - 1
            centre.y += tri * 0.08
        case .orbit:
            let radius: Float = 0.14
            let theta = progress * 2 * Float.pi * (speed == .slow ? 0.6 : 1)
            centre += SIMD2(radius * cosApprox(theta) - radius, radius * sinApprox(theta))
        case .bounce:
            // Two hops off a floor below the start.
            let hop = progress * 2 - (progress * 2).rounded(.down)
            centre.y -= 0.22 * (1 - 4 * (hop - 0.5) * (hop - 0.5))
            centre.x += travel * 0.5 * progress
        default: break
        }
        return (centre, scale, angle)
    }
}

/// A background: plain colour, vertical gradient, or a grid of lines.
public struct Background: Codable, Hashable, Sendable {
    public var kind: BackgroundKind
    public var colour: NamedColour

    public init(kind: BackgroundKind, colour: NamedColour) {
        self.kind = kind
        self.colour = colour
    }
}

/// A complete description of an image (one frame) or a clip: everything a render needs.
public struct SceneSpec: Codable, Hashable, Sendable {
    public var background: Background
    public var objects: [SceneObject]
    public var style: Style?
    /// 1 for an image; 8 (or 16) for a clip.
    public var frames: Int

    public init(background: Background, objects: [SceneObject], style: Style? = nil, frames: Int = 1) {
        self.background = background
        self.objects = objects
        self.style = style
        self.frames = frames
    }

    /// Where frame `frame` lies through the clip, in [0, 1]: 0 for an image.
    public func progress(ofFrame frame: Int) -> Float {
        frames > 1 ? Float(frame) / Float(frames - 1) : 0
    }

    /// The camera pan of the scene, if any object pans (pans move everything, background included).
    public var pan: Motion? {
        objects.first { $0.motion == .panLeft || $0.motion == .panRight }?.motion
    }
}

// Small polynomial sine/cosine keep the world free of platform math differences, so the same
// seed renders the same bytes everywhere.
@inline(__always)
func sinApprox(_ x: Float) -> Float {
    // Reduce to [-π, π], then a 7th-order odd polynomial (Taylor-corrected); error < 1e-4.
    var t = x - 2 * Float.pi * (x / (2 * Float.pi)).rounded()
    if t > Float.pi / 2 { t = Float.pi - t } else if t < -Float.pi / 2 { t = -Float.pi - t }
    let t2 = t * t
    return t * (1 - t2 / 6 * (1 - t2 / 20 * (1 - t2 / 42 * (1 - t2 / 72))))
}

@inline(__always)
func cosApprox(_ x: Float) -> Float { sinApprox(x + Float.pi / 2) }
