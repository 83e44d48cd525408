import Diffusion
import Foundation
import Models
import Tensor

/// HiPA's one-step generation: the U-Net (with its adaptors) sees pure noise z_T at the last training
/// timestep T and its prediction is turned into x̂₀ in one move — for ε-prediction
/// x̂₀ = (z_T − √(1−ᾱ_T)·ε̂) / √ᾱ_T, for v-prediction √ᾱ_T·z_T − √(1−ᾱ_T)·v̂, for sample-prediction the
/// output itself. Only the conditional prompt is used (no classifier-free guidance: the adaptors learn
/// the guided teacher's result from it). A scheduler's one-step schedule cannot stand in: "leading"
/// spacing puts a single step at t = 1, not at T, and a one-step "trailing" DDIM run ends at ᾱ of
/// t = 0 (`set_alpha_to_one` false), not at x̂₀. On a zero-terminal-SNR schedule ᾱ_T = 0, which
/// only v- and sample-prediction can start from.
public enum OneStepSampler {
    /// The timestep of the one step: T = num_train_timesteps − 1.
    public static func timestep(_ config: SchedulerConfig) -> Int { config.numTrainTimesteps - 1 }

    /// x̂₀ from the U-Net's `output` at T for `noise` (keeps the gradient history of `output`).
    public static func originalSample(output: Tensor, noise: Tensor, config: SchedulerConfig) throws -> Tensor {
        let alphaBar = NoiseSchedule(config: config).alphasCumprod[timestep(config)]
        let signal = alphaBar.squareRoot(), noiseLevel = (1 - alphaBar).squareRoot()
        switch config.predictionType {
        case .epsilon:
            guard signal > 0 else {
                throw ModelError.badInput("one-step generation: an epsilon-predicting model cannot start from zero signal "
                                          + "(ᾱ_T = 0 with rescale_betas_zero_snr); use a v_prediction model")
            }
            return try (noise - output * noiseLevel) * (1 / signal)
        case .vPrediction: return try noise * signal - output * noiseLevel
        case .sample: return output
        }
    }

    /// Latents `[1, C, frames, h, w]` for `prompt` from the noise of `seed` (as `generate` draws it), in one step.
    public static func generate(pipeline: TextToVideoPipeline, prompt: String, frames: Int, seed: UInt64,
                                initialLatents: Tensor? = nil) throws -> GeneratedVideo {
        let shape = pipeline.latentShape(frames: frames)
        if let initialLatents, initialLatents.shape != shape {
            throw ModelError.badInput("initial latents must be \(shape) for \(frames) frames, got \(initialLatents.shape)")
        }
        return try Tensor.withoutGrad {
            var generator = RandomGenerator(seed: seed)
            let noise = initialLatents ?? generator.normal(shape)
            let encoded = try pipeline.encodePrompt(prompt)
            let textStates = try pipeline.conditionalTextTransform.map { try $0(encoded) } ?? encoded
            let output = try pipeline.unet(sample: noise, timesteps: [Float(timestep(pipeline.schedulerConfig))],
                                           encoderHiddenStates: textStates)
            let latents = try originalSample(output: output, noise: noise, config: pipeline.schedulerConfig)
            return GeneratedVideo(latents: latents, frames: try pipeline.decode(latents))
        }
    }
}
