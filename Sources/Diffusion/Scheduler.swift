import Foundation
import Models
import Tensor

/// Draws standard normal noise of a shape. Schedulers take the source as a parameter so the
/// caller's seeded generator decides every draw (and tests can pass fixed noise).
public typealias NoiseSource = (_ shape: [Int]) throws -> Tensor

/// The result of one denoising step, as diffusers' `*SchedulerOutput`.
public struct SchedulerStepOutput {
    /// x_{t-1}, the next sample.
    public var prevSample: Tensor
    /// The predicted clean sample x_0 at this step (previews, guidance).
    public var predictedOriginal: Tensor
}

/// A sampler over a `NoiseSchedule`, after diffusers' `SchedulerMixin` and apple/ml-stable-diffusion's
/// `Scheduler` protocol. Timesteps are Float because Euler's `linspace` spacing gives fractional
/// timesteps that the U-Net receives as they are; DDPM and DDIM timesteps are whole numbers.
public protocol Scheduler {
    var config: SchedulerConfig { get }
    var noiseSchedule: NoiseSchedule { get }
    /// The timesteps of the current inference schedule, first to last.
    var timesteps: [Float] { get }
    /// The standard deviation of the starting noise (1 for DDPM and DDIM, the largest sigma for Euler).
    var initNoiseSigma: Float { get }
    /// Chooses `steps` inference timesteps (diffusers' `set_timesteps`).
    mutating func setTimesteps(_ steps: Int) throws
    /// The model input for `sample` at `timestep` (Euler divides by sqrt(sigma² + 1)).
    func scaleModelInput(_ sample: Tensor, timestep: Float) throws -> Tensor
    /// One reverse step from `timestep`; `noise` is asked for a draw only when the step is
    /// stochastic (DDPM at t > 0, DDIM with eta > 0, Euler with churn) and must then be given.
    func step(modelOutput: Tensor, timestep: Float, sample: Tensor, noise: NoiseSource?) throws -> SchedulerStepOutput
}

extension Scheduler {
    /// The training-side forward process q(x_t | x_0) of diffusers' `add_noise` (DDPM form):
    /// sqrt(ᾱ_t)·x_0 + sqrt(1 - ᾱ_t)·ε, with one timestep per item of the first axis (or one for all).
    public func addNoise(original: Tensor, noise: Tensor, timesteps: [Int]) throws -> Tensor {
        try ElementwiseMath.perItem(original, noise, timesteps: timesteps, schedule: noiseSchedule, op: "addNoise") { alpha in
            (alpha.squareRoot(), (1 - alpha).squareRoot())
        }
    }

    /// The v-prediction target of diffusers' `get_velocity`: sqrt(ᾱ_t)·ε - sqrt(1 - ᾱ_t)·x_0.
    public func velocity(sample: Tensor, noise: Tensor, timesteps: [Int]) throws -> Tensor {
        try ElementwiseMath.perItem(noise, sample, timesteps: timesteps, schedule: noiseSchedule, op: "velocity") { alpha in
            (alpha.squareRoot(), -(1 - alpha).squareRoot())
        }
    }

    /// The clean sample x_0 implied by a model output at a timestep with cumulative alpha `alphaProd`,
    /// for the configured prediction type (step 3 of DDIM's and DDPM's `step`).
    public func predictedOriginal(modelOutput: Tensor, sample: Tensor, alphaProd: Float) throws -> Tensor {
        try ElementwiseMath.predictedOriginal(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd, predictionType: config.predictionType)
    }

    /// The noise ε implied by a model output (DDIM's `pred_epsilon`).
    public func predictedNoise(modelOutput: Tensor, sample: Tensor, alphaProd: Float) throws -> Tensor {
        try ElementwiseMath.predictedNoise(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd, predictionType: config.predictionType)
    }
}

/// Element-wise arithmetic of the schedulers over raw buffers, each in the operation order torch
/// uses so Float32 results agree with diffusers.
enum ElementwiseMath {
    static func requireSameShape(_ a: Tensor, _ b: Tensor, _ op: String) throws {
        guard a.shape == b.shape else {
            throw ModelError.badInput("\(op): shapes \(a.shape) and \(b.shape) differ")
        }
    }

    /// out = a·s + b·t (torch's `s * a + t * b`).
    static func linear(_ a: Tensor, _ s: Float, _ b: Tensor, _ t: Float, op: String) throws -> Tensor {
        try requireSameShape(a, b, op)
        let out = Tensor(uninitialized: a.shape)
        let x = a.data, y = b.data, o = out.data
        for index in 0 ..< a.count { o[index] = s * x[index] + t * y[index] }
        return out
    }

    static func perItem(_ a: Tensor, _ b: Tensor, timesteps: [Int], schedule: NoiseSchedule, op: String,
                        coefficients: (Float) -> (Float, Float)) throws -> Tensor {
        try requireSameShape(a, b, op)
        let items = a.shape.first ?? 1
        guard timesteps.count == items || timesteps.count == 1 else {
            throw ModelError.badInput("\(op): \(timesteps.count) timesteps for \(items) items of shape \(a.shape)")
        }
        let cumprod = schedule.alphasCumprod
        if let bad = timesteps.first(where: { $0 < 0 || $0 >= cumprod.count }) {
            throw ModelError.badInput("\(op): timestep \(bad) outside 0..<\(cumprod.count)")
        }
        let out = Tensor(uninitialized: a.shape)
        let perItem = items == 0 ? 0 : a.count / items
        let x = a.data, y = b.data, o = out.data
        for item in 0 ..< items {
            let (s, t) = coefficients(cumprod[timesteps.count == 1 ? timesteps[0] : timesteps[item]])
            for index in item * perItem ..< (item + 1) * perItem { o[index] = s * x[index] + t * y[index] }
        }
        return out
    }

    static func predictedOriginal(modelOutput: Tensor, sample: Tensor, alphaProd: Float,
                                  predictionType: SchedulerConfig.PredictionType) throws -> Tensor {
        try requireSameShape(modelOutput, sample, "predictedOriginal")
        let betaProd = 1 - alphaProd
        let out = Tensor(uninitialized: sample.shape)
        let m = modelOutput.data, x = sample.data, o = out.data
        switch predictionType {
        case .epsilon:
            guard alphaProd > 0 else {
                throw ModelError.badInput("an epsilon-predicting model cannot be sampled at a timestep of zero signal "
                                          + "(ᾱ = 0: rescale_betas_zero_snr with trailing or linspace spacing); "
                                          + "use v_prediction, as Lin et al. do, or timestep_spacing \"leading\"")
            }
            let sqrtBeta = betaProd.squareRoot(), sqrtAlpha = alphaProd.squareRoot()
            for index in 0 ..< out.count { o[index] = (x[index] - sqrtBeta * m[index]) / sqrtAlpha }
        case .sample:
            o.update(from: m, count: out.count)
        case .vPrediction:
            let sqrtBeta = betaProd.squareRoot(), sqrtAlpha = alphaProd.squareRoot()
            for index in 0 ..< out.count { o[index] = sqrtAlpha * x[index] - sqrtBeta * m[index] }
        }
        return out
    }

    static func predictedNoise(modelOutput: Tensor, sample: Tensor, alphaProd: Float,
                               predictionType: SchedulerConfig.PredictionType) throws -> Tensor {
        try requireSameShape(modelOutput, sample, "predictedNoise")
        let betaProd = 1 - alphaProd
        let sqrtBeta = betaProd.squareRoot(), sqrtAlpha = alphaProd.squareRoot()
        let out = Tensor(uninitialized: sample.shape)
        let m = modelOutput.data, x = sample.data, o = out.data
        switch predictionType {
        case .epsilon:
            o.update(from: m, count: out.count)
        case .sample:
            guard betaProd > 0 else {
                throw ModelError.badInput("a sample-predicting model's noise is undefined at a timestep of no noise (ᾱ = 1)")
            }
            for index in 0 ..< out.count { o[index] = (x[index] - sqrtAlpha * m[index]) / sqrtBeta }
        case .vPrediction:
            for index in 0 ..< out.count { o[index] = sqrtAlpha * m[index] + sqrtBeta * x[index] }
        }
        return out
    }

    /// Clamps in place to [-range, range].
    static func clamp(_ tensor: Tensor, range: Float) {
        let p = tensor.data
        for index in 0 ..< tensor.count { p[index] = min(max(p[index], -range), range) }
    }

    /// Draws noise of `shape`, or explains that the step needs a source.
    static func draw(_ noise: NoiseSource?, shape: [Int], scheduler: String) throws -> Tensor {
        guard let noise else {
            throw ModelError.badInput("\(scheduler).step: this step adds noise, but no noise source was given")
        }
        let drawn = try noise(shape)
        guard drawn.shape == shape else {
            throw ModelError.badInput("\(scheduler).step: the noise source returned shape \(drawn.shape), expected \(shape)")
        }
        return drawn
    }
}
