import Foundation
import Models
import Tensor

/// Euler's method on the probability-flow ODE in sigma space (Karras et al. 2022, Algorithm 2),
/// mirroring diffusers' `scheduling_euler_discrete.py` `EulerDiscreteScheduler` with linear sigma
/// interpolation, discrete timesteps and optional churn (`s_churn`, default 0: deterministic).
public struct EulerDiscreteScheduler: Scheduler {
    public let config: SchedulerConfig
    public let noiseSchedule: NoiseSchedule
    public private(set) var timesteps: [Float]
    /// One sigma per timestep plus the final one (0, or σ_min with `final_sigmas_type` "sigma_min").
    public private(set) var sigmas: [Float]
    public var sChurn: Float = 0
    public var sTmin: Float = 0
    public var sTmax: Float = .infinity
    public var sNoise: Float = 1

    public init(config: SchedulerConfig) {
        self.config = config
        var schedule = NoiseSchedule(config: config)
        if config.rescaleBetasZeroSnr {
            // diffusers: close to 0 without being 0, so the first sigma is finite (fp16's smallest subnormal).
            var cumprod = schedule.alphasCumprod
            cumprod[cumprod.count - 1] = 0x1p-24
            schedule = NoiseSchedule(betas: schedule.betas, alphas: schedule.alphas, alphasCumprod: cumprod)
        }
        self.noiseSchedule = schedule
        let trainSigmas = Self.trainingSigmas(schedule)
        self.sigmas = trainSigmas.reversed() + [0]
        self.timesteps = TimestepSpacingMath.numpyLinspace(start: 0, stop: Double(config.numTrainTimesteps - 1), count: config.numTrainTimesteps)
            .reversed().map { Float($0) }
    }

    public var timestepSpacing: SchedulerConfig.TimestepSpacing { config.timestepSpacing ?? .linspace }

    /// sqrt((1 - ᾱ) / ᾱ) for every training timestep, in Float32.
    static func trainingSigmas(_ schedule: NoiseSchedule) -> [Float] {
        schedule.alphasCumprod.map { ((1 - $0) / $0).squareRoot() }
    }

    public var initNoiseSigma: Float {
        let largest = sigmas.max() ?? 1
        switch timestepSpacing {
        case .linspace, .trailing: return largest
        case .leading: return (largest * largest + 1).squareRoot()
        }
    }

    public mutating func setTimesteps(_ steps: Int) throws {
        let train = config.numTrainTimesteps
        guard steps >= 1, steps <= train else {
            throw ModelError.badInput("inference steps must be between 1 and num_train_timesteps (\(train)), found \(steps)")
        }
        // diffusers computes these as float32 before interpolating.
        let chosen: [Float]
        switch timestepSpacing {
        case .linspace:
            chosen = TimestepSpacingMath.linspace(steps: steps, trainSteps: train).map { Float($0) }
        case .leading:
            chosen = TimestepSpacingMath.leading(steps: steps, trainSteps: train, offset: 0).map { Float($0) + Float(config.stepsOffset) }
        case .trailing:
            chosen = TimestepSpacingMath.numpyArange(start: Double(train), stop: 0, step: -Double(train) / Double(steps))
                .map { Float($0.rounded(.toNearestOrEven)) - 1 }
        }
        let trainSigmas = Self.trainingSigmas(noiseSchedule).map(Double.init)
        var newSigmas = chosen.map { Float(TimestepSpacingMath.interpolate(trainSigmas, at: Double($0))) }
        switch config.finalSigmasType {
        case .zero: newSigmas.append(0)
        case .sigmaMin: newSigmas.append(Float(trainSigmas[0]))
        }
        timesteps = chosen
        sigmas = newSigmas
    }

    /// diffusers' `index_for_timestep`: the position of `timestep` in the schedule (the second match
    /// when it occurs twice, so a schedule entered midway does not skip a sigma).
    func stepIndex(for timestep: Float) throws -> Int {
        let matches = timesteps.indices.filter { timesteps[$0] == timestep }
        guard let first = matches.first else {
            throw ModelError.badInput("EulerDiscreteScheduler: timestep \(timestep) is not in the schedule")
        }
        return matches.count > 1 ? matches[1] : first
    }

    public func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor {
        let sigma = sigmas[try stepIndex(for: timestep)]
        let divisor = (sigma * sigma + 1).squareRoot()
        let out = Tensor(uninitialized: sample.shape)
        let x = sample.data, o = out.data
        for index in 0 ..< out.count { o[index] = x[index] / divisor }
        return out
    }

    public func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> SchedulerStepOutput {
        try ElementwiseMath.requireSameShape(modelOutput, sample, "EulerDiscreteScheduler.step")
        let index = try stepIndex(for: timestep)
        let sigma = sigmas[index]
        let gamma: Float = (sTmin <= sigma && sigma <= sTmax) ? min(sChurn / Float(sigmas.count - 1), Float(2).squareRoot() - 1) : 0
        let sigmaHat = sigma * (gamma + 1)

        var current = sample
        if gamma > 0 {
            let drawn = try ElementwiseMath.draw(noise, shape: modelOutput.shape, scheduler: "EulerDiscreteScheduler")
            let scale = (sigmaHat * sigmaHat - sigma * sigma).squareRoot()
            current = Tensor(uninitialized: sample.shape)
            let x = sample.data, n = drawn.data, c = current.data
            for i in 0 ..< sample.count { c[i] = x[i] + (n[i] * sNoise) * scale }
        }

        let original = Tensor(uninitialized: sample.shape)
        let m = modelOutput.data, x = current.data, o = original.data
        switch config.predictionType {
        case .sample:
            o.update(from: m, count: original.count)
        case .epsilon:
            for i in 0 ..< original.count { o[i] = x[i] - sigmaHat * m[i] }
        case .vPrediction:
            let outputScale = -sigma / (sigma * sigma + 1).squareRoot()
            let sampleDivisor = sigma * sigma + 1
            for i in 0 ..< original.count { o[i] = m[i] * outputScale + x[i] / sampleDivisor }
        }

        // The ODE derivative (x - x_0) / σ̂, one Euler step of dt = σ_next - σ̂.
        let dt = sigmas[index + 1] - sigmaHat
        let prev = Tensor(uninitialized: sample.shape)
        let p = prev.data
        for i in 0 ..< prev.count { p[i] = x[i] + ((x[i] - o[i]) / sigmaHat) * dt }
        return SchedulerStepOutput(prevSample: prev, predictedOriginal: original)
    }
}
