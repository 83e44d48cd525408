import Diffusion
import Dispatch
import Tensor
import World

/// Pretraining batches drawn from the synthetic world's train split (the full world's, or the core
/// world's with `world` core): batch `index` of `count`
/// samples holds samples `index·count ..< (index+1)·count`, each a pure function of (seed, index),
/// so a resumed run sees the same stream.
struct WorldPretrainingData: PretrainingData {
    let seed: UInt64
    var world: PretrainConfig.World = .full
    /// The part of the core world the train split draws from (`motion_training.focus`); nil: all.
    var focus: CoreFocus?
    let renderer = Renderer()
    private var distribution: WorldSampler.Distribution {
        switch world {
        case .full: .full
        case .core: .core
        case .coreTiedStart: .coreTiedStart
        }
    }

    var imageSide: Int { renderer.side }
    var vocabularyWords: [String] { WorldVocabulary.words }

    /// The train-split samples of batch `index`: images for one frame, clips otherwise.
    func samples(index: Int, count: Int, frames: Int) -> [WorldSample] {
        var sampler = WorldSampler(seed: seed, clipFrames: frames, distribution: distribution)
        sampler.focus = focus
        return (0..<count).map { item in
            frames == 1 ? sampler.image(.train, index: index * count + item) : sampler.clip(.train, index: index * count + item)
        }
    }

    var providesObjectMasks: Bool { true }

    /// The core world's part that `focus` names, drawn from the same streams (sample `i` of the
    /// part is not sample `i` of the whole reinterpreted, but as deterministic).
    func focused(_ focus: PretrainConfig.MotionTraining.Focus) throws -> PretrainingData? {
        guard world != .full else {
            throw PretrainingFocusError(key: "", reason: "a focus names a part of the core world; \"world\" is \"full\" (use \"core\" or \"core-tied-start\")")
        }
        var part = self
        do {
            part.focus = try CoreFocus(shapes: focus.shapes, colours: focus.colours, backgrounds: focus.backgrounds,
                                       sizes: focus.sizes, motions: focus.motions)
        } catch let CoreFocus.Problem.notInCoreWorld(key, word, allowed) {
            throw PretrainingFocusError(key: key, reason: "\"\(word)\" is not in the core world (one of: \(allowed.joined(separator: ", ")))")
        } catch let CoreFocus.Problem.empty(key, reason) {
            throw PretrainingFocusError(key: key, reason: reason)
        }
        return part
    }

    /// Image and clip captions alternately (clips add the motion words), without rendering:
    /// caption `i` of batch `index` is train sample `index·count + i` of its kind.
    func captions(index: Int, count: Int) throws -> [String] {
        let sampler = WorldSampler(seed: seed, clipFrames: 8, distribution: distribution)
        return (0..<count).map { item in
            let sample = index * count + item
            return item % 2 == 0 ? sampler.image(.train, index: sample).caption : sampler.clip(.train, index: sample).caption
        }
    }

    func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String]) {
        let (pixels, captions, _) = render(index: index, count: count, frames: frames, masks: false)
        return (pixels, captions)
    }

    /// The batch with 1 where a frame differs from its background drawn alone
    /// (`Renderer.objectMask`): the objects with their anti-aliased edges.
    func maskedBatch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String], masks: Tensor?) {
        render(index: index, count: count, frames: frames, masks: true)
    }

    /// Batch `index` in [-1, 1], and its object masks when asked, from one render of each frame.
    private func render(index: Int, count: Int, frames: Int, masks: Bool) -> (pixels: Tensor, captions: [String], masks: Tensor?) {
        let samples = samples(index: index, count: count, frames: frames)
        let side = renderer.side, plane = side * side
        let pixels = Tensor(uninitialized: [count * frames, 3, side, side])
        let objectMasks = masks ? Tensor(zeros: [count * frames, 1, side, side]) : nil
        let destination = pixels.data, maskDestination = objectMasks?.data
        let renderer = self.renderer
        // Each frame fills its own slices, so clips (often one per batch) render on every core too,
        // and rendering in parallel cannot change the values.
        DispatchQueue.concurrentPerform(iterations: count * frames) { slot in
            let spec = samples[slot / frames].spec, progress = spec.progress(ofFrame: slot % frames)
            let bytes = renderer.render(spec, progress: progress)
            let base = destination + slot * 3 * plane
            for pixel in 0..<plane {
                for channel in 0..<3 { base[channel * plane + pixel] = Float(bytes[pixel * 3 + channel]) / 127.5 - 1 }
            }
            if let maskDestination {
                (maskDestination + slot * plane).update(from: renderer.objectMask(spec, progress: progress, drawn: bytes), count: plane)
            }
        }
        return (pixels, samples.map(\.caption), objectMasks)
    }
}
