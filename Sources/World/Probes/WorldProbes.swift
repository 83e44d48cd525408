/// The probes together: read a rendered sample's objects and score them against the scene that
/// was asked for.
///
/// Matching: in a one-object scene the object is the largest thing found; in a two-object scene
/// each object is the thing found in its colour (the world never gives two objects one colour).
/// Each attribute is scored per object where it applies: colour, shape and size always; position
/// (which object is on the left) for two-object scenes; motion for clips whose motion is one the
/// probes can name; direction and speed for clips that travel in a straight line.
public struct WorldProbes: Sendable {
    public let classifier: ShapeClassifier

    public init(classifier: ShapeClassifier) {
        self.classifier = classifier
    }

    /// What the probes read of one object of a sample.
    public struct ObjectReading: Codable, Sendable {
        public var found: Bool
        public var colour: NamedColour?
        public var shape: ObjectShape?
        public var size: ObjectSize?
        /// First-frame centroid, canvas units.
        public var position: SIMD2<Float>?
        public var trajectory: Trajectory?
        public var motion: MotionClass?
        public var speed: Speed?
    }

    public func read(_ frames: [ProbeFrame], spec: SceneSpec) -> [ObjectReading] {
        let segmentations = frames.map(FrameSegmentation.init)
        return spec.objects.map { object in
            read(segmentations, side: frames[0].side) { segmentation in
                spec.objects.count == 1 ? segmentation.objects.first : segmentation.object(coloured: object.colour)
            }
        }
    }

    /// The reading of the largest object of each frame: what `read` gives for a one-object scene,
    /// without a scene to compare with (a training clip's object, a render's main object).
    public func readMainObject(_ frames: [ProbeFrame]) -> ObjectReading {
        guard let side = frames.first?.side else { return ObjectReading(found: false) }
        return read(frames.map(FrameSegmentation.init), side: side) { $0.objects.first }
    }

    /// One object's reading: `locate` finds it in each frame's segmentation; colour and shape are read
    /// in the first frame (an object missing there counts as not found).
    func read(_ segmentations: [FrameSegmentation], side: Int, locate: (FrameSegmentation) -> DetectedObject?) -> ObjectReading {
        guard let first = locate(segmentations[0]) else { return ObjectReading(found: false) }
        let shape = classifier.classify(first, side: side)
        var reading = ObjectReading(found: true, colour: first.colour, shape: shape, position: first.centroid)
        reading.size = SizeProbe.size(forRadius: SizeProbe.radius(of: first, shape: shape, side: side))
        if segmentations.count > 1 {
            let located = segmentations.map(locate)
            let trajectory = Trajectory(centroids: located.map { $0?.centroid }, areas: located.map { $0?.area })
            reading.trajectory = trajectory
            reading.motion = trajectory.motion
            reading.speed = trajectory.speed
            // A clip's size is its median over the frames (growing and shrinking pass through
            // their nominal size midway), except in place, where turning widens the extent
            // and the first frame is read.
            if reading.motion != .inPlace {
                let radii = located.compactMap { $0 }.map { SizeProbe.radius(of: $0, shape: shape, side: side) }.sorted()
                reading.size = SizeProbe.size(forRadius: radii[radii.count / 2])
            }
        }
        return reading
    }

    /// Scores one sample into `scores`.
    public func score(_ frames: [ProbeFrame], spec: SceneSpec, into scores: inout ProbeScores) -> [ObjectReading] {
        let readings = read(frames, spec: spec)
        for (object, reading) in zip(spec.objects, readings) {
            scores.colour.add(reading.colour == object.colour)
            if case let .shape(shape) = object.kind { scores.shape.add(reading.shape == shape) }
            scores.size.add(reading.size == object.size)
            if spec.frames > 1, let expected = MotionClass(object.motion) {
                scores.motion.add(reading.motion == expected)
                if expected.isDirectional {
                    scores.motionDirection.add(reading.motion == expected)
                    scores.speed.add(reading.speed == object.speed)
                }
            }
        }
        if spec.objects.count == 2 {
            let truth = spec.objects[0].position.x < spec.objects[1].position.x
            if let a = readings[0].position, let b = readings[1].position {
                scores.position.add((a.x < b.x) == truth)
            } else {
                scores.position.add(false)
            }
        }
        return readings
    }
}

/// Correct out of total for one attribute.
public struct ProbeScore: Codable, Sendable, Equatable {
    public var correct = 0
    public var total = 0

    public init() {}

    public mutating func add(_ isCorrect: Bool) {
        total += 1
        if isCorrect { correct += 1 }
    }

    /// nil when nothing was scored.
    public var accuracy: Double? { total > 0 ? Double(correct) / Double(total) : nil }

    enum CodingKeys: String, CodingKey { case correct, total, accuracy }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        correct = try container.decode(Int.self, forKey: .correct)
        total = try container.decode(Int.self, forKey: .total)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(correct, forKey: .correct)
        try container.encode(total, forKey: .total)
        try container.encode(accuracy, forKey: .accuracy)
    }
}

/// Every attribute's score over a set of samples.
public struct ProbeScores: Codable, Sendable, Equatable {
    public var colour = ProbeScore()
    public var shape = ProbeScore()
    public var size = ProbeScore()
    public var position = ProbeScore()
    public var motion = ProbeScore()
    public var motionDirection = ProbeScore()
    public var speed = ProbeScore()

    public init() {}

    /// Name and score of each attribute, in report order.
    public var rows: [(String, ProbeScore)] {
        [("colour", colour), ("shape", shape), ("size", size), ("position", position),
         ("motion", motion), ("motion direction", motionDirection), ("speed", speed)]
    }

    enum CodingKeys: String, CodingKey {
        case colour, shape, size, position, motion, speed
        case motionDirection = "motion_direction"
    }
}
