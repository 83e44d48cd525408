import Foundation
import Models
import Tensor

/// The losses of the two pretraining stages, as pure functions of the models, a batch and a
/// generator (so tests can train on a fixed batch and the loop can draw a fresh one per step).
public enum PretrainingObjectives {
    /// Stage 1, the autoencoder (LDM's `LPIPSWithDiscriminator` without the perceptual and
    /// adversarial terms): l1·mean|x − x̂| + l2·mean (x − x̂)² + kl · mean over the batch of the
    /// posterior's KL to N(0, I) (summed over latent entries), with x̂ decoded from a posterior sample.
    ///
    /// With `pixelWeights` (`[batch, 1, H, W]`, broadcast over channels) the L1 and L2 terms are
    /// weighted means, Σ w·|x − x̂| / Σ w (and likewise squared).
    public static func autoencoderLoss(_ vae: AutoencoderKL, pixels: Tensor, random: inout RandomGenerator,
                                       l1Weight: Float, l2Weight: Float, klWeight: Float,
                                       pixelWeights: Tensor? = nil) throws -> Tensor {
        let posterior = try vae.encodeDistribution(pixels)
        let latents = try posterior.sample(noise: random.normal(posterior.mean.shape))
        let reconstruction = try vae.decode(latents)
        var loss: Tensor
        if let pixelWeights {
            let difference = try reconstruction - pixels
            // Σ over channels of w equals channels · Σ w: the weighted mean over every value.
            let total = try pixelWeights.sum() * Float(pixels.shape[1])
            loss = try ((difference.abs() * pixelWeights).sum() / total) * l1Weight
            if l2Weight > 0 { loss = try loss + ((difference * difference * pixelWeights).sum() / total) * l2Weight }
        } else {
            loss = try Tensor.l1Loss(reconstruction, pixels) * l1Weight
            if l2Weight > 0 { loss = try loss + Tensor.mseLoss(reconstruction, pixels) * l2Weight }
        }
        if klWeight > 0 { loss = try loss + posterior.kl().mean() * klWeight }
        return loss
    }

    /// Scaled latents `[batch, C, frames, h, w]` of `pixels` `[batch·frames, 3, H, W]` (a clip's
    /// frames consecutive): a posterior sample times `scalingFactor`, without gradients (the
    /// autoencoder is frozen in stage 2, as in diffusers' text-to-image training).
    public static func latents(_ vae: AutoencoderKL, pixels: Tensor, frames: Int, scalingFactor: Float,
                               random: inout RandomGenerator) throws -> Tensor {
        try Tensor.withoutGrad {
            let posterior = try vae.encodeDistribution(pixels)
            let sample = try posterior.sample(noise: random.normal(posterior.mean.shape)) * scalingFactor
            let (items, channels, height, width) = (sample.shape[0], sample.shape[1], sample.shape[2], sample.shape[3])
            guard items % frames == 0 else {
                throw ModelError.badInput("latents: \(items) images are not a whole number of \(frames)-frame clips")
            }
            return try sample.reshaped([items / frames, frames, channels, height, width]).permuted([0, 2, 1, 3, 4])
        }
    }

    /// Stage 2, diffusers' `train_text_to_image.py` loss: noise the latents at uniformly drawn
    /// timesteps, predict with the U-Net conditioned on the text encoder's states of the captions
    /// (each replaced by "" with probability `captionDropout`, for classifier-free guidance), and take
    /// the mean squared error to the noise (epsilon prediction) or to the velocity (v-prediction).
    ///
    /// With `snrGamma` γ each sample's error is weighted as in diffusers' `--snr_gamma` (Min-SNR,
    /// Hang et al. 2023): `minSNRWeights`. With `elementWeights` (`[N, 1, F, h, w]`, see
    /// `objectCellWeights`) each sample's error is the mean weighted over its entries instead of the
    /// plain mean.
    public static func diffusionLoss(unet: any Denoiser, textEncoder: CLIPTextModel, tokenizer: CLIPTokenizer,
                                     scheduler: DDPMScheduler, latents: Tensor, captions: [String], captionDropout: Float,
                                     snrGamma: Float? = nil, elementWeights: Tensor? = nil,
                                     timestepCumulative: [Double]? = nil,
                                     random: inout RandomGenerator) throws -> Tensor {
        let batch = latents.shape[0]
        guard captions.count == batch else {
            throw ModelError.badInput("diffusion loss: \(captions.count) captions for a batch of \(batch)")
        }
        let drops = random.uniformValues(count: batch)
        let ids = zip(captions, drops).map { caption, draw in tokenizer(draw < captionDropout ? "" : caption).ids }
        let textStates = try textEncoder(ids)
        let noise = random.normal(latents.shape)
        // A biased draw (`TimestepBias`) when given; otherwise uniform, as before.
        let timesteps = try timestepCumulative.map { TimestepBias.draw(cumulative: $0, uniforms: random.uniformValues(count: batch)) }
            ?? random.integers(below: scheduler.config.numTrainTimesteps, count: batch)
        let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: timesteps)
        var dropout = random.derived(1)
        let prediction = try unet(sample: noisy, timesteps: timesteps.map(Float.init), encoderHiddenStates: textStates,
                                  dropoutGenerator: &dropout)
        let target: Tensor
        switch scheduler.config.predictionType {
        case .epsilon: target = noise
        case .vPrediction: target = try scheduler.velocity(sample: latents, noise: noise, timesteps: timesteps)
        case .sample: target = latents
        }
        if snrGamma == nil, elementWeights == nil { return try Tensor.mseLoss(prediction, target) }
        var perSample = try squaredError(prediction, target, elementWeights: elementWeights)
        if let snrGamma {
            let weights = minSNRWeights(timesteps: timesteps, alphasCumprod: scheduler.noiseSchedule.alphasCumprod,
                                        gamma: snrGamma, predictionType: scheduler.config.predictionType)
            perSample = try perSample * Tensor(shape: [batch], values: weights)
        }
        return try perSample.mean()
    }

    /// Each sample's mean squared error `[N]` between `prediction` and `target` (`[N, C, ...]`):
    /// the plain mean, or with `elementWeights` (`[N, 1, ...]`, shared by the channels)
    /// Σ w·d² / (C·Σ w).
    public static func squaredError(_ prediction: Tensor, _ target: Tensor, elementWeights: Tensor?) throws -> Tensor {
        guard prediction.rank >= 2 else {
            throw ModelError.badInput("squared error: expected predictions [N, C, ...], got \(prediction.shape)")
        }
        let batch = prediction.shape[0]
        let difference = try prediction - target
        let squared = try difference * difference
        guard let elementWeights else { return try squared.reshaped([batch, squared.count / batch]).mean(axes: [1]) }
        let expected = [batch, 1] + Array(prediction.shape.dropFirst(2))
        guard elementWeights.shape == expected else {
            throw ModelError.badInput("squared error: element weights \(elementWeights.shape), expected \(expected)")
        }
        let channels = Float(prediction.shape[1])
        let totals = try elementWeights.reshaped([batch, elementWeights.count / batch]).sum(axes: [1]).values
        guard totals.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw ModelError.badInput("squared error: each sample's element weights must sum to a positive finite number, got \(totals)")
        }
        let weighted = try squared * elementWeights
        return try weighted.reshaped([batch, weighted.count / batch]).sum(axes: [1])
            * Tensor(shape: [batch], values: totals.map { 1 / (channels * $0) })
    }

    /// `objectCellWeights` on the grid of `latents` (`[N, C, F, h, w]`), or nil when the stage
    /// weighs nothing (no weight or no masks): the diffusion loss's `elementWeights`.
    public static func objectCellWeights(masks: Tensor?, frames: Int, latents: Tensor, objectWeight: Float?) throws -> Tensor? {
        guard let masks, let objectWeight else { return nil }
        return try objectCellWeights(masks: masks, frames: frames, latentHeight: latents.shape[3], latentWidth: latents.shape[4],
                                     objectWeight: objectWeight)
    }

    /// Per latent cell, 1 + `objectWeight` × the share of its pixels on an object: `masks`
    /// `[N·F, 1, H, W]` (a batch's `PretrainingData.maskedBatch`) averaged over each cell of a
    /// `latentHeight × latentWidth` grid, as `[N, 1, F, latentHeight, latentWidth]` for `diffusionLoss`.
    public static func objectCellWeights(masks: Tensor, frames: Int, latentHeight: Int, latentWidth: Int,
                                         objectWeight: Float) throws -> Tensor {
        guard masks.rank == 4, masks.shape[1] == 1, frames > 0, masks.shape[0] % frames == 0, latentHeight > 0, latentWidth > 0,
              masks.shape[2] % latentHeight == 0, masks.shape[3] % latentWidth == 0 else {
            throw ModelError.badInput("object weights: masks \(masks.shape) do not tile \(frames)-frame samples into a \(latentHeight)×\(latentWidth) grid")
        }
        let (slots, height, width) = (masks.shape[0], masks.shape[2], masks.shape[3])
        let (cellHeight, cellWidth) = (height / latentHeight, width / latentWidth)
        let weights = Tensor(uninitialized: [slots / frames, 1, frames, latentHeight, latentWidth])
        let scale = objectWeight / Float(cellHeight * cellWidth)
        for slot in 0..<slots {
            let source = masks.data + slot * height * width
            let destination = weights.data + slot * latentHeight * latentWidth
            for row in 0..<latentHeight {
                for column in 0..<latentWidth {
                    var covered: Float = 0
                    for y in (row * cellHeight)..<((row + 1) * cellHeight) {
                        for x in (column * cellWidth)..<((column + 1) * cellWidth) { covered += source[y * width + x] }
                    }
                    destination[row * latentWidth + column] = 1 + scale * covered
                }
            }
        }
        return weights
    }

    /// Min-SNR loss weights per timestep, as diffusers' training scripts compute them with
    /// `snr = ᾱ/(1−ᾱ)`: ε-prediction min(snr, γ)/snr (1 where snr = 0, its limit), v-prediction
    /// min(snr+1, γ)/(snr+1) (1 at zero terminal SNR), sample prediction min(snr, γ) (the paper's
    /// x₀ form). They damp the low-noise timesteps, whose targets are mostly irreducible noise.
    public static func minSNRWeights(timesteps: [Int], alphasCumprod: [Float], gamma: Float,
                                     predictionType: SchedulerConfig.PredictionType) -> [Float] {
        timesteps.map { timestep in
            let alpha = alphasCumprod[timestep]
            let snr = alpha < 1 ? alpha / (1 - alpha) : .infinity
            switch predictionType {
            case .epsilon: return snr == 0 ? 1 : min(snr, gamma) / snr
            case .vPrediction: return min(snr + 1, gamma) / (snr + 1)
            case .sample: return min(snr, gamma)
            }
        }
    }

    /// 1 / the standard deviation of the posterior means of `pixels`: the `scaling_factor` that gives
    /// the U-Net unit-variance latents (how Stable Diffusion's 0.18215 was chosen).
    public static func scalingFactor(_ vae: AutoencoderKL, pixels: Tensor) throws -> Float {
        try Tensor.withoutGrad {
            let mean = try vae.encodeDistribution(pixels).mean
            let values = mean.values
            let average = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
            let variance = values.reduce(0.0) { $0 + (Double($1) - average) * (Double($1) - average) } / Double(values.count)
            return variance > 0 ? Float(1 / variance.squareRoot()) : 1
        }
    }
}
