import Diffusion
import Models
import Tensor

/// One MotionDirector training step on one clip (`MotionDirector_train.py`, `finetune_unet` and the
/// two backward passes after it), as METHODS.md states it:
///
/// 1. Noise the clip's latents at one uniformly drawn timestep t with noise ε.
/// 2. With probability `spatial_lora_off_probability` the spatial LoRAs are off for the step and the
///    spatial path is skipped (the reference's `mask_spatial_lora`).
/// 3. Spatial path: one uniformly drawn frame (the noisy frame, or with probability `random_hflip_img`
///    the flipped clean frame noised afresh at t) through the U-Net alone, with only the clip's
///    spatial LoRA on; loss MSE(ε̂, ε). Its gradient is taken at once (`backward`), as the reference
///    steps the spatial optimizer before the temporal backward.
/// 4. Temporal path: the whole noisy clip with the temporal LoRA on and the clip's spatial LoRA on
///    but frozen (no gradient reaches it from this loss); loss MSE(ε̂, ε) + MSE(φ(ε̂), φ(ε)) with φ the
///    appearance debiasing around a uniformly drawn anchor frame (`AppearanceDebiasedLoss`).
///
/// The returned tensor is the temporal loss plus the spatial loss's value as a constant: its
/// backward pass gives the temporal gradient only, and its value is the step's total loss, which the
/// log records. The trainer's one optimizer update then moves each adapter by its own path's
/// gradient (AdamW keeps separate moments and step counts per parameter, and skips parameters
/// without a gradient, so spatial and temporal states never mix).
struct MotionDirectorStep {
    let unet: any Denoiser
    let adapters: MotionDirectorAdapters
    let scheduler: DDPMScheduler
    let config: MotionDirectorConfig

    /// What one step did, for tests and logs.
    struct Outcome {
        var loss: Tensor
        var spatialLoss: Float?
        var temporalLoss: Float?
        var spatialAdapter: String
        var spatialLoRAsOff: Bool
    }

    func run(clip: MotionTrainingClip, spatialAdapter: String, textStates: Tensor, step: Int,
             random: inout RandomGenerator) throws -> Outcome {
        let latents = clip.latents
        let frames = latents.shape[2]
        let draws = random.uniformValues(count: 2)
        let spatialOff = config.trainTemporalLoRA && draws[0] < config.spatialLoRAOffProbability
        let flip = draws[1] < config.randomHorizontalFlip && clip.flippedLatents != nil
        let timestep = try random.integer(below: scheduler.config.numTrainTimesteps)
        let frame = try random.integer(below: frames)
        let anchor = try random.integer(below: frames)
        var noiseGenerator = random.derived(0)
        var dropout = random.derived(1)

        let noise = noiseGenerator.normal(latents.shape)
        let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: [timestep])
        let target = try Self.target(scheduler, latents: latents, noise: noise, timestep: timestep)

        var spatialValue: Float?
        if !spatialOff {
            try adapters.configureSpatialPath(spatialAdapter)
            let input: Tensor, frameTarget: Tensor
            if flip, let flipped = clip.flippedLatents {
                let clean = try flipped.slice(axis: 2, frame ..< frame + 1)
                let frameNoise = noiseGenerator.normal(clean.shape)
                input = try scheduler.addNoise(original: clean, noise: frameNoise, timesteps: [timestep])
                frameTarget = try Self.target(scheduler, latents: clean, noise: frameNoise, timestep: timestep)
            } else {
                input = try noisy.slice(axis: 2, frame ..< frame + 1)
                frameTarget = try target.slice(axis: 2, frame ..< frame + 1)
            }
            let prediction = try unet(sample: input, timesteps: [Float(timestep)], encoderHiddenStates: textStates,
                                      dropoutGenerator: &dropout)
            let spatialLoss = try Tensor.mseLoss(prediction, frameTarget)
            guard config.trainTemporalLoRA else {
                return Outcome(loss: spatialLoss, spatialLoss: spatialLoss.item, temporalLoss: nil,
                               spatialAdapter: spatialAdapter, spatialLoRAsOff: false)
            }
            let value = spatialLoss.item
            guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: step, value: value) }
            try spatialLoss.backward()
            spatialValue = value
        }

        try adapters.configureTemporalPath(spatial: spatialOff ? nil : spatialAdapter)
        let prediction = try unet(sample: noisy, timesteps: [Float(timestep)], encoderHiddenStates: textStates,
                                  dropoutGenerator: &dropout)
        let temporalLoss = try AppearanceDebiasedLoss.temporalLoss(prediction: prediction, target: target,
                                                                   beta: config.debiasBeta, anchor: anchor)
        let total = spatialValue.map { temporalLoss + $0 } ?? temporalLoss
        return Outcome(loss: total, spatialLoss: spatialValue, temporalLoss: temporalLoss.item,
                       spatialAdapter: spatialAdapter, spatialLoRAsOff: spatialOff)
    }

    /// The regression target for the scheduler's prediction type (ε, v or x_0).
    static func target(_ scheduler: DDPMScheduler, latents: Tensor, noise: Tensor, timestep: Int) throws -> Tensor {
        switch scheduler.config.predictionType {
        case .epsilon: return noise
        case .vPrediction: return try scheduler.velocity(sample: latents, noise: noise, timesteps: [timestep])
        case .sample: return latents
        }
    }
}
