import Foundation
import XCTest
import Models
import Tensor
@testable import Diffusion

final class SchedulerTests: XCTestCase {
    func config(_ schedule: SchedulerConfig.BetaSchedule = .linear, spacing: SchedulerConfig.TimestepSpacing? = nil,
                prediction: SchedulerConfig.PredictionType = .epsilon, offset: Int = 0) -> SchedulerConfig {
        var config = SchedulerConfig()
        config.betaSchedule = schedule
        config.timestepSpacing = spacing
        config.predictionType = prediction
        config.stepsOffset = offset
        return config
    }

    // MARK: Timesteps

    func testTimestepSpacings() throws {
        var leading = DDIMScheduler(config: config(spacing: .leading, offset: 1))
        try leading.setTimesteps(10)
        XCTAssertEqual(leading.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])

        var trailing = DDPMScheduler(config: config(spacing: .trailing))
        try trailing.setTimesteps(10)
        XCTAssertEqual(trailing.timesteps, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])

        // linspace(0, 999, 4) = 0, 333, 666, 999; for 7 steps 999/6 = 166.5 per step, rounded half to even.
        var linspace = DDIMScheduler(config: config(spacing: .linspace))
        try linspace.setTimesteps(7)
        XCTAssertEqual(linspace.timesteps, [999, 832, 666, 500, 333, 166, 0])

        var euler = EulerDiscreteScheduler(config: config())
        try euler.setTimesteps(7)
        XCTAssertEqual(euler.timesteps, [999, 832.5, 666, 499.5, 333, 166.5, 0])
        XCTAssertEqual(euler.sigmas.count, 8)
        XCTAssertEqual(euler.sigmas.last, 0)

        XCTAssertThrowsError(try leading.setTimesteps(0))
        XCTAssertThrowsError(try leading.setTimesteps(1001))
    }

    // MARK: Noise schedules

    func testAlphasCumprodFollowTheFormulas() {
        let count = 1000
        func linear(_ start: Double, _ end: Double, _ i: Int) -> Double { start + (end - start) * Double(i) / Double(count - 1) }
        func cumprod(_ beta: (Int) -> Double, upTo index: Int) -> Double {
            (0 ... index).reduce(1.0) { $0 * (1 - beta($1)) }
        }
        func alphaBar(_ t: Double) -> Double { pow(cos((t + 0.008) / 1.008 * .pi / 2), 2) }
        let expected: [(SchedulerConfig.BetaSchedule, (Int) -> Double)] = [
            (.linear, { linear(0.0001, 0.02, $0) }),
            (.scaledLinear, { pow(linear(0.0001.squareRoot(), 0.02.squareRoot(), $0), 2) }),
            (.squaredCosCapV2, { min(1 - alphaBar(Double($0 + 1) / 1000) / alphaBar(Double($0) / 1000), 0.999) }),
        ]
        for (schedule, beta) in expected {
            let noise = NoiseSchedule(config: config(schedule))
            for index in [0, 1, 50, 500, 999] {
                let want = cumprod(beta, upTo: index)
                XCTAssertEqual(Double(noise.alphasCumprod[index]), want, accuracy: 2e-6 + want * 1e-5, "\(schedule) ᾱ[\(index)]")
                XCTAssertEqual(Double(noise.betas[index]), beta(index), accuracy: 1e-7 + beta(index) * 1e-6, "\(schedule) β[\(index)]")
            }
        }
        var rescaled = config(.scaledLinear)
        rescaled.rescaleBetasZeroSnr = true
        XCTAssertEqual(NoiseSchedule(config: rescaled).alphasCumprod.last!, 0, accuracy: 1e-9)
    }

    // MARK: Steps by hand

    func testOneDDIMStepByHand() throws {
        var scheduler = DDIMScheduler(config: config(spacing: .leading))
        try scheduler.setTimesteps(10)
        let sample = try Tensor(shape: [2], values: [0.5, -1.25])
        let epsilon = try Tensor(shape: [2], values: [0.1, 0.3])
        let output = try scheduler.step(modelOutput: epsilon, timestep: 500, sample: sample, noise: nil)
        let a = Double(scheduler.noiseSchedule.alphasCumprod[500]), aPrev = Double(scheduler.noiseSchedule.alphasCumprod[400])
        for i in 0 ..< 2 {
            let x = Double(sample.values[i]), e = Double(epsilon.values[i])
            let x0 = min(max((x - (1 - a).squareRoot() * e) / a.squareRoot(), -1), 1)
            XCTAssertEqual(Double(output.predictedOriginal.values[i]), x0, accuracy: 1e-5)
            XCTAssertEqual(Double(output.prevSample.values[i]), aPrev.squareRoot() * x0 + (1 - aPrev).squareRoot() * e, accuracy: 1e-5)
        }
        // With eta > 0 the step needs noise.
        scheduler.eta = 1
        XCTAssertThrowsError(try scheduler.step(modelOutput: epsilon, timestep: 500, sample: sample, noise: nil))
    }

    func testOneEulerStepByHand() throws {
        var scheduler = EulerDiscreteScheduler(config: config(.scaledLinear))
        try scheduler.setTimesteps(4)
        let t = scheduler.timesteps[1]
        let sigma = scheduler.sigmas[1], next = scheduler.sigmas[2]
        let sample = try Tensor(shape: [3], values: [2, -1, 0.5])
        let epsilon = try Tensor(shape: [3], values: [0.2, -0.4, 1])
        let scaled = try scheduler.scaleModelInput(sample, timestep: t)
        let output = try scheduler.step(modelOutput: epsilon, timestep: t, sample: sample, noise: nil)
        for i in 0 ..< 3 {
            let x = sample.values[i], e = epsilon.values[i]
            XCTAssertEqual(scaled.values[i], x / (sigma * sigma + 1).squareRoot(), accuracy: 1e-6)
            XCTAssertEqual(output.predictedOriginal.values[i], x - sigma * e, accuracy: 1e-5)
            XCTAssertEqual(output.prevSample.values[i], x + e * (next - sigma), accuracy: 1e-5)
        }
        XCTAssertEqual(scheduler.initNoiseSigma, scheduler.sigmas[0])
        XCTAssertThrowsError(try scheduler.step(modelOutput: epsilon, timestep: 12.25, sample: sample, noise: nil))
    }

    // MARK: Training helpers

    func testAddNoiseAndVelocityRoundTrip() throws {
        let scheduler = DDPMScheduler(config: config(.scaledLinear, prediction: .vPrediction))
        let original = try Tensor(shape: [2, 3], values: [0.1, -0.5, 0.9, 1, 0, -1])
        let noise = try Tensor(shape: [2, 3], values: [1.5, 0.2, -0.7, -0.3, 0.8, 0.05])
        let timesteps = [10, 700]
        let noisy = try scheduler.addNoise(original: original, noise: noise, timesteps: timesteps)
        for item in 0 ..< 2 {
            let a = scheduler.noiseSchedule.alphasCumprod[timesteps[item]]
            for j in 0 ..< 3 {
                let i = item * 3 + j
                XCTAssertEqual(noisy.values[i], a.squareRoot() * original.values[i] + (1 - a).squareRoot() * noise.values[i], accuracy: 1e-6)
            }
        }
        // x0 = sqrt(ᾱ)·x_t - sqrt(1-ᾱ)·v recovers the clean sample for each item's own timestep.
        let velocity = try scheduler.velocity(sample: original, noise: noise, timesteps: timesteps)
        for item in 0 ..< 2 {
            let a = scheduler.noiseSchedule.alphasCumprod[timesteps[item]]
            let rows = [3]
            let xt = try Tensor(shape: rows, values: Array(noisy.values[item * 3 ..< item * 3 + 3]))
            let v = try Tensor(shape: rows, values: Array(velocity.values[item * 3 ..< item * 3 + 3]))
            let recovered = try scheduler.predictedOriginal(modelOutput: v, sample: xt, alphaProd: a)
            for j in 0 ..< 3 { XCTAssertEqual(recovered.values[j], original.values[item * 3 + j], accuracy: 1e-5) }
            let recoveredNoise = try scheduler.predictedNoise(modelOutput: v, sample: xt, alphaProd: a)
            for j in 0 ..< 3 { XCTAssertEqual(recoveredNoise.values[j], noise.values[item * 3 + j], accuracy: 1e-4) }
        }
        XCTAssertThrowsError(try scheduler.addNoise(original: original, noise: noise, timesteps: [1, 2, 3]))
        XCTAssertThrowsError(try scheduler.addNoise(original: original, noise: noise, timesteps: [1000]))
    }

    /// On a zero-terminal-SNR schedule the first trailing timestep has ᾱ = 0: v-prediction steps
    /// from it (x̂₀ = −v), epsilon prediction cannot and says why instead of returning NaN.
    func testZeroTerminalSNRStepsWithVelocityAndRefusesEpsilon() throws {
        var velocity = config(.scaledLinear, spacing: .trailing, prediction: .vPrediction)
        velocity.rescaleBetasZeroSnr = true
        var ddim = DDIMScheduler(config: velocity)
        try ddim.setTimesteps(5)
        XCTAssertEqual(ddim.timesteps.first, 999)
        let sample = Tensor(repeating: 0.3, shape: [1, 4]), output = Tensor(repeating: -0.5, shape: [1, 4])
        let step = try ddim.step(modelOutput: output, timestep: 999, sample: sample, noise: nil)
        XCTAssertEqual(step.predictedOriginal.values, [Float](repeating: 0.5, count: 4))
        XCTAssertTrue(step.prevSample.values.allSatisfy(\.isFinite))

        var epsilon = velocity
        epsilon.predictionType = .epsilon
        var refused = DDIMScheduler(config: epsilon)
        try refused.setTimesteps(5)
        XCTAssertThrowsError(try refused.step(modelOutput: output, timestep: 999, sample: sample, noise: nil)) { error in
            XCTAssertTrue("\(error)".contains("zero signal") && "\(error)".contains("v_prediction"), "\(error)")
        }
    }

    func testDDPMStepDrawsNoiseExceptAtTheLastTimestep() throws {
        var scheduler = DDPMScheduler(config: config())
        try scheduler.setTimesteps(5)
        let sample = try Tensor(shape: [2], values: [0.3, -0.2])
        let epsilon = try Tensor(shape: [2], values: [0.1, 0.1])
        XCTAssertThrowsError(try scheduler.step(modelOutput: epsilon, timestep: 800, sample: sample, noise: nil))
        let last = try scheduler.step(modelOutput: epsilon, timestep: 0, sample: sample, noise: nil)
        let a = scheduler.noiseSchedule.alphasCumprod[0]
        XCTAssertEqual(last.prevSample.values[0], (0.3 - (1 - a).squareRoot() * 0.1) / a.squareRoot(), accuracy: 1e-5)
    }

    // MARK: Config files

    func testConfigDefaultsAndErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("scheduler-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("scheduler_config.json").path

        try #"{"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "skip_prk_steps": true, "trained_betas": null}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try SchedulerConfig.load(path: path)
        XCTAssertEqual(loaded.betaSchedule, .scaledLinear)
        XCTAssertEqual(loaded.stepsOffset, 1)
        XCTAssertEqual(loaded.numTrainTimesteps, 1000)
        XCTAssertNil(loaded.timestepSpacing)
        XCTAssertEqual(try SchedulerKind.named(in: loaded, file: path), .ddim)
        XCTAssertEqual(DDIMScheduler(config: loaded).timestepSpacing, .leading)
        XCTAssertEqual(EulerDiscreteScheduler(config: loaded).timestepSpacing, .linspace)

        for (json, key) in [(#"{"beta_schedule": "sigmoid"}"#, "beta_schedule"),
                            (#"{"prediction_type": "flow"}"#, "prediction_type"),
                            (#"{"use_karras_sigmas": true}"#, "use_karras_sigmas"),
                            (#"{"num_train_timesteps": "many"}"#, "num_train_timesteps")] {
            try json.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try SchedulerConfig.load(path: path)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(path) && text.contains(key), text)
            }
        }
        XCTAssertThrowsError(try SchedulerKind.named(in: SchedulerConfig(), file: path))
    }
}
