import Foundation
import Models
import Tensor

/// Denoising diffusion probabilistic models (Ho et al. 2020), mirroring diffusers'
/// `scheduling_ddpm.py` `DDPMScheduler`: the training forward process (`addNoise`) and ancestral
/// sampling with the posterior variance types `fixed_small`, `fixed_small_log` and `fixed_large`.
public struct DDPMScheduler: Scheduler {
    public let config: SchedulerConfig
    public let noiseSchedule: NoiseSchedule
    public private(set) var timesteps: [Float]
    /// nil until `setTimesteps`: then a step goes to t - 1, as during training.
    public private(set) var numInferenceSteps: Int?
    public var initNoiseSigma: Float { 1 }

    public init(config: SchedulerConfig) {
        self.config = config
        self.noiseSchedule = NoiseSchedule(config: config)
        self.timesteps = (0 ..< config.numTrainTimesteps).reversed().map(Float.init)
    }

    public var timestepSpacing: SchedulerConfig.TimestepSpacing { config.timestepSpacing ?? .leading }

    public mutating func setTimesteps(_ steps: Int) throws {
        timesteps = try Self.integerTimesteps(steps: steps, config: config, spacing: timestepSpacing).map(Float.init)
        numInferenceSteps = steps
    }

    /// The integer timesteps DDPM and DDIM share.
    static func integerTimesteps(steps: Int, config: SchedulerConfig, spacing: SchedulerConfig.TimestepSpacing) throws -> [Int] {
        guard steps >= 1, steps <= config.numTrainTimesteps else {
            throw ModelError.badInput("inference steps must be between 1 and num_train_timesteps (\(config.numTrainTimesteps)), found \(steps)")
        }
        let values: [Double]
        switch spacing {
        case .leading:
            values = TimestepSpacingMath.leading(steps: steps, trainSteps: config.numTrainTimesteps, offset: config.stepsOffset)
        case .trailing:
            values = TimestepSpacingMath.trailing(steps: steps, trainSteps: config.numTrainTimesteps)
        case .linspace:
            values = TimestepSpacingMath.linspace(steps: steps, trainSteps: config.numTrainTimesteps).map { $0.rounded(.toNearestOrEven) }
        }
        return values.map { Int($0) }
    }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor { sample }

    /// diffusers' `previous_timestep`: the next entry of the schedule, -1 after the last.
    func previousTimestep(_ timestep: Int) throws -> Int {
        guard numInferenceSteps != nil else { return timestep - 1 }
        guard let index = timesteps.firstIndex(of: Float(timestep)) else {
            throw ModelError.badInput("DDPMScheduler.step: timestep \(timestep) is not in the schedule \(timesteps.map { Int($0) })")
        }
        return index == timesteps.count - 1 ? -1 : Int(timesteps[index + 1])
    }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> SchedulerStepOutput {
        let cumprod = noiseSchedule.alphasCumprod
        let t = Int(timestep)
        guard Float(t) == timestep, t >= 0, t < cumprod.count else {
            throw ModelError.badInput("DDPMScheduler.step: timestep \(timestep) is not a whole number in 0..<\(cumprod.count)")
        }
        let previous = try previousTimestep(t)
        let alphaProd = cumprod[t]
        let alphaProdPrev: Float = previous >= 0 ? cumprod[previous] : 1
        let betaProd = 1 - alphaProd
        let betaProdPrev = 1 - alphaProdPrev
        let currentAlpha = alphaProd / alphaProdPrev
        let currentBeta = 1 - currentAlpha

        let original = try predictedOriginal(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        if config.clipSample { ElementwiseMath.clamp(original, range: Float(config.clipSampleRange)) }

        // Formula (7) of the DDPM paper: the posterior mean.
        let originalCoefficient = (alphaProdPrev.squareRoot() * currentBeta) / betaProd
        let sampleCoefficient = currentAlpha.squareRoot() * betaProdPrev / betaProd
        let prev = try ElementwiseMath.linear(original, originalCoefficient, sample, sampleCoefficient, op: "DDPMScheduler.step")

        if t > 0 {
            let drawn = try ElementwiseMath.draw(noise, shape: modelOutput.shape, scheduler: "DDPMScheduler")
            let deviation = standardDeviation(alphaProd: alphaProd, alphaProdPrev: alphaProdPrev, currentBeta: currentBeta)
            let p = prev.data, n = drawn.data
            for index in 0 ..< prev.count { p[index] = p[index] + deviation * n[index] }
        }
        return SchedulerStepOutput(prevSample: prev, predictedOriginal: original)
    }

    /// The posterior standard deviation (`_get_variance`, then its square root or the log form).
    func standardDeviation(alphaProd: Float, alphaProdPrev: Float, currentBeta: Float) -> Float {
        let variance = max((1 - alphaProdPrev) / (1 - alphaProd) * currentBeta, 1e-20)
        switch config.varianceType {
        case .fixedSmall: return variance.squareRoot()
        case .fixedSmallLog: return Foundation.exp(0.5 * Foundation.log(variance))
        case .fixedLarge: return currentBeta.squareRoot()
        }
    }
}
