import Diffusion
import Models
import Tensor

/// One image's denoising loss as `train-lora` draws it: flip with probability `randomFlip`, a crop at
/// a random offset of up to `cropJitter` latent pixels, a uniform timestep, fresh noise, and the MSE
/// of the U-Net's prediction against the scheduler's target, with the image's caption.
struct ImageDenoisingLoss {
    let unet: any Denoiser
    let scheduler: DDPMScheduler
    let randomFlip: Float
    let cropJitter: Int

    func loss(image: MotionTrainingClip, textStates: Tensor, random: inout RandomGenerator) throws -> Tensor {
        let flip = random.uniformValues(count: 1)[0] < randomFlip
        let source = flip ? (image.flippedLatents ?? image.latents) : image.latents
        let jitter = cropJitter
        let top = try random.integer(below: 2 * jitter + 1), left = try random.integer(below: 2 * jitter + 1)
        let height = source.shape[3] - 2 * jitter, width = source.shape[4] - 2 * jitter
        let latents = try source.slice(axis: 3, top ..< top + height).slice(axis: 4, left ..< left + width)
        let timestep = try random.integer(below: scheduler.config.numTrainTimesteps)
        var noiseGenerator = random.derived(0), dropout = random.derived(1)
        let noise = noiseGenerator.normal(latents.shape)
        let noisy = try scheduler.addNoise(original: latents, noise: noise, timesteps: [timestep])
        let prediction = try unet(sample: noisy, timesteps: [Float(timestep)], encoderHiddenStates: textStates,
                                  dropoutGenerator: &dropout)
        return try Tensor.mseLoss(prediction, MotionDirectorStep.target(scheduler, latents: latents, noise: noise, timestep: timestep))
    }

    /// Which of `count` items step `step` uses: every item once per epoch, in an order shuffled per epoch.
    static func index(step: Int, count: Int, seed: UInt64, stream: UInt64) -> Int {
        var order = RandomGenerator(seed: seed).derived(stream).derived(UInt64(step / count))
        return order.shuffled(Array(0..<count))[step % count]
    }
}
