import Foundation
import Models
import Tensor

/// Denoising diffusion implicit models (Song et al. 2020), mirroring diffusers' `scheduling_ddim.py`
/// `DDIMScheduler`: `eta` scales the added noise (0 is deterministic), `set_alpha_to_one` chooses
/// the cumulative alpha after the last step, `clip_sample` clamps the predicted x_0.
public struct DDIMScheduler: Scheduler {
    public let config: SchedulerConfig
    public let noiseSchedule: NoiseSchedule
    public private(set) var timesteps: [Float]
    public private(set) var numInferenceSteps: Int?
    /// η of formula (16); diffusers' `step(eta=0.0)`.
    public var eta: Float
    /// ᾱ used for "the step after the last": 1, or ᾱ_0 when `set_alpha_to_one` is false.
    public let finalAlphaCumprod: Float
    public var initNoiseSigma: Float { 1 }

    public init(config: SchedulerConfig, eta: Float = 0) {
        self.config = config
        self.noiseSchedule = NoiseSchedule(config: config)
        self.timesteps = (0 ..< config.numTrainTimesteps).reversed().map(Float.init)
        self.eta = eta
        self.finalAlphaCumprod = config.setAlphaToOne ? 1 : noiseSchedule.alphasCumprod[0]
    }

    public var timestepSpacing: SchedulerConfig.TimestepSpacing { config.timestepSpacing ?? .leading }

    public mutating func setTimesteps(_ steps: Int) throws {
        timesteps = try DDPMScheduler.integerTimesteps(steps: steps, config: config, spacing: timestepSpacing).map(Float.init)
        numInferenceSteps = steps
    }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor { sample }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> SchedulerStepOutput {
        guard let steps = numInferenceSteps else {
            throw ModelError.badInput("DDIMScheduler.step: call setTimesteps before stepping")
        }
        let cumprod = noiseSchedule.alphasCumprod
        let t = Int(timestep)
        guard Float(t) == timestep, t >= 0, t < cumprod.count else {
            throw ModelError.badInput("DDIMScheduler.step: timestep \(timestep) is not a whole number in 0..<\(cumprod.count)")
        }
        let previous = t - config.numTrainTimesteps / steps
        let alphaProd = cumprod[t]
        let alphaProdPrev = previous >= 0 ? cumprod[previous] : finalAlphaCumprod

        let original = try predictedOriginal(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        let epsilon = try predictedNoise(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        if config.clipSample { ElementwiseMath.clamp(original, range: Float(config.clipSampleRange)) }

        // σ_t(η) of formula (16).
        let betaProd = 1 - alphaProd
        let betaProdPrev = 1 - alphaProdPrev
        let variance = (betaProdPrev / betaProd) * (1 - alphaProd / alphaProdPrev)
        let deviation = eta * variance.squareRoot()

        // Formula (12): x_{t-1} = sqrt(ᾱ_prev)·x_0 + sqrt(1 - ᾱ_prev - σ²)·ε (+ σ·z).
        let direction = (1 - alphaProdPrev - deviation * deviation).squareRoot()
        let prev = Tensor(uninitialized: sample.shape)
        let sqrtAlphaPrev = alphaProdPrev.squareRoot()
        let o = original.data, e = epsilon.data, p = prev.data
        for index in 0 ..< prev.count { p[index] = sqrtAlphaPrev * o[index] + direction * e[index] }
        if eta > 0 {
            let drawn = try ElementwiseMath.draw(noise, shape: modelOutput.shape, scheduler: "DDIMScheduler")
            let n = drawn.data
            for index in 0 ..< prev.count { p[index] = p[index] + deviation * n[index] }
        }
        return SchedulerStepOutput(prevSample: prev, predictedOriginal: original)
    }
}
