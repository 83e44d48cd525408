import Diffusion
import Dispatch
import Tensor
import World

/// Pretraining batches drawn from the synthetic world's train split: batch `index` of `count`
/// samples holds samples `index·count ..< (index+1)·count`, each a pure function of (seed, index),
/// so a resumed run sees the same stream.
struct WorldPretrainingData: PretrainingData {
    let seed: UInt64
    let renderer = Renderer()

    var imageSide: Int { renderer.side }
    var vocabularyWords: [String] { WorldVocabulary.words }

    /// The train-split samples of batch `index`: images for one frame, clips otherwise.
    func samples(index: Int, count: Int, frames: Int) -> [WorldSample] {
        let sampler = WorldSampler(seed: seed, clipFrames: frames)
        return (0..<count).map { item in
            frames == 1 ? sampler.image(.train, index: index * count + item) : sampler.clip(.train, index: index * count + item)
        }
    }

    func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String]) {
        let samples = samples(index: index, count: count, frames: frames)
        let side = renderer.side, plane = side * side
        let pixels = Tensor(uninitialized: [count * frames, 3, side, side])
        let destination = pixels.data
        let renderer = self.renderer
        // Each sample fills its own slice: rendering in parallel cannot change the values.
        DispatchQueue.concurrentPerform(iterations: count) { item in
            let rendered = renderer.render(samples[item].spec)
            for (frame, bytes) in rendered.prefix(frames).enumerated() {
                let base = destination + (item * frames + frame) * 3 * plane
                for pixel in 0..<plane {
                    for channel in 0..<3 { base[channel * plane + pixel] = Float(bytes[pixel * 3 + channel]) / 127.5 - 1 }
                }
            }
        }
        return (pixels, samples.map(\.caption))
    }

    /// 1 where a frame of the batch differs from its background drawn alone (`Renderer.objectMask`):
    /// the objects with their anti-aliased edges. The samples are `batch(index:count:frames:)`'s.
    func objectMasks(index: Int, count: Int, frames: Int) throws -> Tensor? {
        let specs = samples(index: index, count: count, frames: frames).map(\.spec)
        let plane = renderer.side * renderer.side
        let masks = Tensor(zeros: [count * frames, 1, renderer.side, renderer.side])
        let destination = masks.data
        let renderer = self.renderer
        DispatchQueue.concurrentPerform(iterations: count * frames) { slot in
            let spec = specs[slot / frames], frame = slot % frames
            let progress = spec.frames > 1 ? Float(frame) / Float(spec.frames - 1) : 0
            (destination + slot * plane).update(from: renderer.objectMask(spec, progress: progress), count: plane)
        }
        return masks
    }
}
