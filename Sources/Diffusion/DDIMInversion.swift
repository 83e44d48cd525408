import Foundation
import Models
import Tensor

/// DDIM inversion: runs the deterministic DDIM update backwards, from a clean latent x_0 towards
/// the noise x_T that DDIM sampling would turn back into (almost) the same latent. This is
/// Tune-A-Video's `ddim_inversion` (`tuneavideo/util.py`: `ddim_loop` + `next_step`), which
/// MotionDirector's `inverse_video` calls with the empty prompt to build its noise prior.
///
/// For each timestep t of the inference schedule, last to first (lowest noise first), the U-Net
/// predicts ε at t from the latent, which sits at the previous level t − T/steps (ᾱ = the final
/// cumulative alpha below 0), and the latent moves up to level t:
///
///     x̂_0 = (x − sqrt(1 − ᾱ_prev)·ε) / sqrt(ᾱ_prev);   x ← sqrt(ᾱ_t)·x̂_0 + sqrt(1 − ᾱ_t)·ε
///
/// No guidance, as in the reference (one U-Net pass per step).
public enum DDIMInversion {
    /// The inverted latent `[1, C, F, h, w]` of `latents` (scaled as the U-Net sees them) under the
    /// text states `textStates` `[1, L, D]` (the empty prompt's for MotionDirector), after `steps`
    /// steps of `config`'s DDIM schedule.
    public static func invert(latents: Tensor, textStates: Tensor, unet: any Denoiser, config: SchedulerConfig,
                              steps: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        guard latents.rank == 5, latents.shape[0] == 1, latents.shape[1] == unet.inChannels else {
            throw ModelError.badInput("DDIM inversion: latents must be [1, \(unet.inChannels), frames, h, w], got \(latents.shape)")
        }
        var scheduler = DDIMScheduler(config: config)
        try scheduler.setTimesteps(steps)
        let cumprod = scheduler.noiseSchedule.alphasCumprod
        let stride = config.numTrainTimesteps / steps
        return try Tensor.withoutGrad {
            var latent = latents.copy()
            for (index, timestep) in scheduler.timesteps.reversed().enumerated() {
                let t = Int(timestep)
                let current = min(t - stride, config.numTrainTimesteps - 1)
                let alphaProd = current >= 0 ? cumprod[current] : scheduler.finalAlphaCumprod
                let alphaProdNext = cumprod[t]
                let output = try unet(sample: latent, timesteps: [timestep], encoderHiddenStates: textStates)
                let epsilon = try scheduler.predictedNoise(modelOutput: output, sample: latent, alphaProd: alphaProd)
                let original = try scheduler.predictedOriginal(modelOutput: output, sample: latent, alphaProd: alphaProd)
                latent = try ElementwiseMath.linear(original, alphaProdNext.squareRoot(), epsilon, (1 - alphaProdNext).squareRoot(),
                                                    op: "DDIM inversion")
                progress?(index + 1, steps)
            }
            return latent
        }
    }
}

extension TextToVideoPipeline {
    /// The DDIM inversion of `latents` under `prompt` (the empty prompt by default, as MotionDirector's
    /// noise prior), with the folder's scheduler config.
    public func invert(latents: Tensor, prompt: String = "", steps: Int, progress: ((Int, Int) -> Void)? = nil) throws -> Tensor {
        try DDIMInversion.invert(latents: latents, textStates: encodePrompt(prompt), unet: unet, config: schedulerConfig,
                                 steps: steps, progress: progress)
    }

    /// The scaled latents `[1, C, F, h, w]` of frames `[F, 3, H, W]` in [-1, 1]: the posterior mean
    /// (nil `generator`) or a posterior sample, times the VAE's scaling factor (diffusers'
    /// `vae.encode(x).latent_dist.sample() * scaling_factor`, MotionDirector's `tensor_to_vae_latent`).
    /// Frames are encoded one at a time, which keeps memory flat.
    public func encodeFrames(_ frames: Tensor, generator: RandomGenerator? = nil) throws -> Tensor {
        guard frames.rank == 4, frames.shape[1] == 3 else {
            throw ModelError.badInput("encode: frames must be [frames, 3, height, width], got \(frames.shape)")
        }
        return try Tensor.withoutGrad {
            var random = generator
            let perFrame = try (0 ..< frames.shape[0]).map { index -> Tensor in
                let posterior = try vae.encodeDistribution(frames.slice(rows: index ..< index + 1))
                guard var source = random else { return posterior.mean }
                let sample = try posterior.sample(noise: source.normal(posterior.mean.shape))
                random = source
                return sample
            }
            let stacked = try vae.scaleLatents(Tensor.concat(perFrame, axis: 0))
            let (count, channels, height, width) = (stacked.shape[0], stacked.shape[1], stacked.shape[2], stacked.shape[3])
            return try stacked.permuted([1, 0, 2, 3]).reshaped([1, channels, count, height, width])
        }
    }

    /// Pixels per latent pixel: 2^(VAE blocks − 1).
    public var vaeScaleFactor: Int { 1 << max(vae.config.blockOutChannels.count - 1, 0) }

    /// The pixel size a render has: the U-Net's sample size times `vaeScaleFactor`.
    public var pixelSize: (height: Int, width: Int) {
        (latentSize.height * vaeScaleFactor, latentSize.width * vaeScaleFactor)
    }
}
