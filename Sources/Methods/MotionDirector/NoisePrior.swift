import Diffusion
import Tensor

/// MotionDirector's noise prior (`MotionDirector_inference.py`, `prepare_input_latents`): sampling
/// starts from `sqrt(p)·z_inv + sqrt(1 − p)·ε` instead of ε, with z_inv the DDIM inversion (empty
/// prompt) of a clip's latents, so the result keeps that clip's layout to a degree set by p
/// (0 for several clips, 0.1–0.5 for one; image animation inverts the image's latent repeated over
/// the frames).
public enum NoisePrior {
    /// sqrt(p)·inverted + sqrt(1 − p)·noise.
    public static func mix(inverted: Tensor, noise: Tensor, strength p: Float) throws -> Tensor {
        guard (0...1).contains(p) else {
            throw TensorError.invalidArgument(op: "NoisePrior.mix", reason: "the noise prior must lie in [0, 1], got \(p)")
        }
        guard inverted.shape == noise.shape else {
            throw TensorError.shapeMismatch(op: "NoisePrior.mix", lhs: inverted.shape, rhs: noise.shape)
        }
        return try Tensor.withoutGrad { try inverted * p.squareRoot() + noise * (1 - p).squareRoot() }
    }

    /// The starting latents for a render with `seed`: ε is the noise the pipeline itself would draw
    /// for that seed, so p = 0 gives exactly the render without a prior. `latents` `[1, C, F, h, w]`
    /// are inverted with `steps` DDIM steps of the pipeline's schedule under the empty prompt.
    public static func startingLatents(pipeline: TextToVideoPipeline, latents: Tensor, strength p: Float, steps: Int,
                                       seed: UInt64, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        var generator = RandomGenerator(seed: seed)
        let noise = generator.normal(latents.shape)
        if p == 0 { return noise }
        let inverted = try pipeline.invert(latents: latents, steps: steps, progress: progress)
        return try mix(inverted: inverted, noise: noise, strength: p)
    }

    /// `latent` `[1, C, 1, h, w]` (an image's) repeated over `frames` frames.
    public static func repeatedOverFrames(_ latent: Tensor, frames: Int) throws -> Tensor {
        guard latent.rank == 5, latent.shape[2] == 1, frames >= 1 else {
            throw TensorError.invalidArgument(op: "NoisePrior.repeatedOverFrames",
                reason: "needs one frame [1, C, 1, h, w] and at least one frame to fill, got \(latent.shape) and \(frames)")
        }
        return try Tensor.withoutGrad { try latent.repeated([1, 1, frames, 1, 1]) }
    }
}
