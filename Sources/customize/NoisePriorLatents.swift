import Diffusion
import Evaluation
import Foundation
import Methods
import Tensor

/// The starting latents of `render --noise-prior P --prior-clip CLIP` and `animate`: CLIP (a clip
/// sampled to the render's frames, or an image repeated over them) at the model's size, encoded
/// (posterior mean), DDIM-inverted under the empty prompt and mixed with the seed's noise
/// (`NoisePrior`).
enum NoisePriorLatents {
    static func make(pipeline: TextToVideoPipeline, clip: String, frames: Int, strength: Float, steps: Int,
                     seed: UInt64) throws -> Tensor {
        let latents = try clipLatents(pipeline: pipeline, path: clip, frames: frames)
        let progress = ProgressReporter("noise prior: DDIM inversion", total: steps, unit: "step")
        return try NoisePrior.startingLatents(pipeline: pipeline, latents: latents, strength: strength, steps: steps,
                                              seed: seed) { done, _ in progress.update(done) }
    }

    /// `[1, C, frames, h, w]` latents of a clip or an image at the pipeline's render size.
    static func clipLatents(pipeline: TextToVideoPipeline, path: String, frames: Int) throws -> Tensor {
        let size = pipeline.pixelSize
        if TrainingMedia.imageExtensions.contains((path as NSString).pathExtension.lowercased()) {
            let image = try TrainingMedia.image(path, width: size.width, height: size.height)
            let latent = try pipeline.encodeFrames(TrainingMedia.tensor([image]))
            return try NoisePrior.repeatedOverFrames(latent, frames: frames)
        }
        let pixels: Tensor
        do {
            pixels = try TrainingMedia.clipFrames(path, frames: frames, width: size.width, height: size.height, fps: nil)
        } catch let failure as EvaluationError {
            throw ExitStatus.Failure(status: .failure, message: "--prior-clip '\(path)' \(failure.message)")
        }
        return try pipeline.encodeFrames(pixels)
    }
}
