import Checkpoints
import Diffusion
import Foundation
import Tensor

/// A training clip as the caller hands it over: decoded, sampled to the run's frame count and size,
/// frames `[F, 3, H, W]` in [-1, 1] (an image is a clip of one frame).
public struct MotionClipSource {
    /// The file name, used in messages and to name the clip's spatial LoRA file.
    public var name: String
    public var caption: String
    public var frames: Tensor

    public init(name: String, caption: String, frames: Tensor) {
        self.name = name
        self.caption = caption
        self.frames = frames
    }
}

/// A clip with its latents cached (the reference's `cache_latents`): encoded by the VAE once, before
/// training, and, when the spatial path may flip, its horizontally flipped frames encoded too (the
/// reference flips pixels and encodes them at each flipped step; encoding both once gives the same
/// latents for a fixed posterior draw).
public struct MotionTrainingClip {
    public var name: String
    public var caption: String
    /// `[1, C, F, h, w]`, scaled as the U-Net sees them.
    public var latents: Tensor
    /// The flipped frames' latents, `[1, C, F, h, w]`; nil when the run never flips.
    public var flippedLatents: Tensor?

    public init(name: String, caption: String, latents: Tensor, flippedLatents: Tensor?) {
        self.name = name
        self.caption = caption
        self.latents = latents
        self.flippedLatents = flippedLatents
    }

    /// Encodes `sources` with the pipeline's VAE (a posterior sample, as the reference's
    /// `tensor_to_vae_latent`, drawn from `seed`), with flipped copies when `flips`.
    public static func encode(_ sources: [MotionClipSource], pipeline: TextToVideoPipeline, flips: Bool, seed: UInt64,
                              progress: ((Int, Int) -> Void)? = nil) throws -> [MotionTrainingClip] {
        let root = RandomGenerator(seed: seed).derived(0x1A7E_27)
        return try sources.enumerated().map { index, source in
            let generator = root.derived(UInt64(index))
            let latents = try pipeline.encodeFrames(source.frames, generator: generator.derived(0))
            let flipped = flips ? try pipeline.encodeFrames(flippedHorizontally(source.frames), generator: generator.derived(1)) : nil
            progress?(index + 1, sources.count)
            return MotionTrainingClip(name: source.name, caption: source.caption, latents: latents, flippedLatents: flipped)
        }
    }

    /// Images `[N, C, H, W]` mirrored left to right (torchvision's `hflip`).
    public static func flippedHorizontally(_ images: Tensor) throws -> Tensor {
        guard images.rank == 4 else {
            throw TensorError.invalidArgument(op: "flippedHorizontally", reason: "needs [images, channels, height, width], got \(images.shape)")
        }
        let width = images.shape[3], rows = images.count / max(width, 1)
        let result = Tensor(uninitialized: images.shape)
        let source = images.data, destination = result.data
        for row in 0..<rows {
            let base = row * width
            for x in 0..<width { destination[base + x] = source[base + width - 1 - x] }
        }
        return result
    }

    // MARK: The cache file

    /// Writes the clips' latents, names and captions to one safetensors file (atomically).
    public static func writeCache(_ clips: [MotionTrainingClip], to path: String) throws {
        var tensors: [SafeTensors.TensorToWrite] = []
        for (index, clip) in clips.enumerated() {
            tensors.append(.init(name: "clips.\(index).latents", shape: clip.latents.shape, values: clip.latents.values))
            if let flipped = clip.flippedLatents {
                tensors.append(.init(name: "clips.\(index).flipped_latents", shape: flipped.shape, values: flipped.values))
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let records = clips.map { CacheRecord(name: $0.name, caption: $0.caption) }
        let metadata = ["format": "pt", "clips": String(decoding: try encoder.encode(records), as: UTF8.self)]
        try SafeTensors.write(tensors, metadata: metadata, to: path)
    }

    /// Reads a file written by `writeCache`.
    public static func readCache(_ path: String) throws -> [MotionTrainingClip] {
        let file = try SafeTensorsFile(path: path)
        guard let text = file.metadata["clips"],
              let records = try? JSONDecoder().decode([CacheRecord].self, from: Data(text.utf8)) else {
            throw MethodError.badRun(folder: path, reason: "the latent cache has no readable clip list in its metadata")
        }
        func tensor(_ name: String) throws -> Tensor? {
            guard let entry = file.entries[name] else { return nil }
            let tensor = Tensor(uninitialized: entry.shape)
            try file.read(name, into: tensor.data, count: tensor.count)
            return tensor
        }
        return try records.enumerated().map { index, record in
            guard let latents = try tensor("clips.\(index).latents") else {
                throw MethodError.badRun(folder: path, reason: "the latent cache lacks clips.\(index).latents (\(record.name))")
            }
            return MotionTrainingClip(name: record.name, caption: record.caption, latents: latents,
                                      flippedLatents: try tensor("clips.\(index).flipped_latents"))
        }
    }

    struct CacheRecord: Codable {
        var name: String
        var caption: String
    }
}
