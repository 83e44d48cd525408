import Foundation
import Media
import Methods
import Tensor
import World

/// The training clips as `eval motion` sees them: sampled as the training samples them, read by the
/// probes (the main object's colour, shape and path), with what their captions say. From them come
/// the reference motion and the appearances a prompt must avoid.
struct MotionEvalClips {
    struct Clip {
        var source: MotionClipSource
        var caption: CaptionReading
        var reading: WorldProbes.ObjectReading
        /// The probed displacement sequence; nil where the probes lost the object.
        var displacements: [Float]?
    }

    var clips: [Clip]
    var skipped: [(name: String, reason: String)]
    /// The mean displacement sequence of the clips the probes could follow.
    var reference: [Float]

    /// Reads every clip of `folder` at `frames` frames of `side`×`side` pixels and probes it.
    static func read(_ folder: String, frames: Int, side: Int, fps: Double?, fallbackCaption: String?,
                     probes: WorldProbes) throws -> MotionEvalClips {
        let scan = try TrainingMedia.clips(in: folder, frames: frames, width: side, height: side, fps: fps, fallbackCaption: fallbackCaption)
        let clips = try scan.items.map { source -> Clip in
            let probeFrames = try probeFrames(source.frames)
            let reading = probes.readMainObject(probeFrames)
            return Clip(source: source, caption: CaptionReading(source.caption), reading: reading,
                        displacements: MotionFidelity.displacements(MotionFidelity.mainObjectTrajectory(probeFrames)))
        }
        let followed = clips.compactMap(\.displacements)
        guard let reference = MotionFidelity.reference(followed) else {
            throw EvaluationError("the probes found no object to follow in the clips of '\(folder)' "
                                  + "(" + clips.map { $0.source.name }.joined(separator: ", ") + "): there is no reference motion to compare with")
        }
        return MotionEvalClips(clips: clips, skipped: scan.skipped, reference: reference)
    }

    /// Frames `[F, 3, side, side]` in [-1, 1] as the probes' frames.
    static func probeFrames(_ frames: Tensor) throws -> [ProbeFrame] {
        let count = frames.shape[0], height = frames.shape[2], width = frames.shape[3]
        let values = frames.values, size = 3 * height * width
        return try (0..<count).map { index in
            let image = try RGBImage(chwFloats: Array(values[index * size ..< (index + 1) * size]), width: width, height: height)
            return try ProbeFrame(side: width, pixels: image.pixels)
        }
    }

    /// Each clip's own fidelity against the reference: the probes' sanity check (≈ 1 when they read
    /// the clips' motion well and the clips agree).
    var ownFidelities: [Float] {
        clips.map { clip in clip.displacements.flatMap { MotionFidelity.correlation($0, reference) } ?? 0 }
    }

    /// Colours of the clips' objects and backgrounds, from their captions and from the probes.
    var colours: Set<NamedColour> {
        Set(clips.flatMap { [$0.caption.colour, $0.caption.background, $0.reading.colour].compactMap { $0 } })
    }

    /// Shapes of the clips' objects, from their captions and from the probes.
    var shapes: Set<ObjectShape> {
        Set(clips.flatMap { [$0.caption.shape, $0.reading.shape].compactMap { $0 } })
    }

    /// The motion phrase most of the captions use (the first clip's among equals), if any names one.
    var motionPhrase: String? { Self.mostCommon(clips.compactMap(\.caption.motionPhrase)) }

    /// The size word most of the captions use, else medium.
    var size: ObjectSize { Self.mostCommon(clips.compactMap(\.caption.size)) ?? .medium }

    static func mostCommon<Value: Hashable>(_ values: [Value]) -> Value? {
        var counts: [Value: Int] = [:]
        for value in values { counts[value, default: 0] += 1 }
        return values.max { counts[$0]! < counts[$1]! || (counts[$0]! == counts[$1]! && values.firstIndex(of: $0)! > values.firstIndex(of: $1)!) }
    }
}
