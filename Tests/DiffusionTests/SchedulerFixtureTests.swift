import Foundation
import XCTest
import Tensor
@testable import Diffusion

/// Compares with diffusers' own schedulers, recorded by Tests/Fixtures/make_scheduler_fixture.py.
final class SchedulerFixtureTests: XCTestCase {
    struct Fixture: Decodable {
        let shape: [Int]
        let cases: [Case]
        let schedules: [Schedule]
        let training: Training
    }
    struct Case: Decodable {
        let name: String
        let steps: Int
        let eta: Float
        let timesteps: [Float]
        let init_noise_sigma: Float
        let sigmas: [Float]
        let steps_taken: [Step]
    }
    struct Step: Decodable {
        let timestep: Float
        let sample, model_input, model_output, noise, prev_sample, pred_original: [Float]
    }
    struct Schedule: Decodable {
        let beta_schedule: String
        let rescale_betas_zero_snr: Bool
        let indices: [Int]
        let betas, alphas_cumprod: [Float]
    }
    struct Training: Decodable {
        let timesteps: [Int]
        let shape: [Int]
        let original, noise, noisy, velocity: [Float]
    }

    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/schedulers/expected.json")

    func load() throws -> (Fixture, [[String: Any]]) {
        let data = try Data(contentsOf: Self.file)
        let fixture = try JSONDecoder().decode(Fixture.self, from: data)
        let raw = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["cases"] as? [[String: Any]])
        return (fixture, raw)
    }

    func assertClose(_ actual: [Float], _ expected: [Float], tolerance: Float = 1e-5, _ message: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
        let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(message): max abs error \(worst)", file: file, line: line)
    }

    func testStepsMatchDiffusers() throws {
        let (fixture, raw) = try load()
        XCTAssertEqual(fixture.cases.count, 9)
        for (recorded, rawCase) in zip(fixture.cases, raw) {
            let configData = try JSONSerialization.data(withJSONObject: try XCTUnwrap(rawCase["config"]))
            let config = try SchedulerConfig.decode(configData, file: recorded.name)
            var scheduler = try SchedulerKind.named(in: config, file: recorded.name).make(config: config)
            if var ddim = scheduler as? DDIMScheduler {
                ddim.eta = recorded.eta
                scheduler = ddim
            }
            try scheduler.setTimesteps(recorded.steps)
            XCTAssertEqual(scheduler.timesteps, recorded.timesteps, recorded.name)
            XCTAssertEqual(scheduler.initNoiseSigma, recorded.init_noise_sigma, accuracy: 1e-5 * recorded.init_noise_sigma, recorded.name)
            if let euler = scheduler as? EulerDiscreteScheduler {
                XCTAssertEqual(euler.sigmas.count, recorded.sigmas.count, recorded.name)
                for (mine, theirs) in zip(euler.sigmas, recorded.sigmas) {
                    XCTAssertEqual(mine, theirs, accuracy: 1e-6 * max(1, theirs), "\(recorded.name) sigmas")
                }
            }
            for step in recorded.steps_taken {
                let shape = fixture.shape
                let sample = try Tensor(shape: shape, values: step.sample)
                let output = try Tensor(shape: shape, values: step.model_output)
                let label = "\(recorded.name) t=\(step.timestep)"
                // Large sigmas make large values: compare relative to their size beyond 1.
                let inputScale = max(1, step.model_input.map(abs).max() ?? 1, step.sample.map(abs).max() ?? 1)
                assertClose(try scheduler.scaleModelInput(sample, timestep: step.timestep).values, step.model_input,
                            tolerance: 1e-6 * inputScale, "\(label) model input")
                let result = try scheduler.step(modelOutput: output, timestep: step.timestep, sample: sample) { drawnShape in
                    try Tensor(shape: drawnShape, values: step.noise)
                }
                let scale = max(1, step.prev_sample.map(abs).max() ?? 1, step.pred_original.map(abs).max() ?? 1)
                assertClose(result.prevSample.values, step.prev_sample, tolerance: 1e-5 * scale, "\(label) prev sample")
                assertClose(result.predictedOriginal.values, step.pred_original, tolerance: 1e-5 * scale, "\(label) predicted x0")
            }
        }
    }

    func testSchedulesMatchDiffusers() throws {
        let (fixture, _) = try load()
        for recorded in fixture.schedules {
            var config = SchedulerConfig()
            config.betaSchedule = try XCTUnwrap(SchedulerConfig.BetaSchedule(rawValue: recorded.beta_schedule))
            config.betaStart = 0.00085
            config.betaEnd = 0.012
            config.rescaleBetasZeroSnr = recorded.rescale_betas_zero_snr
            let schedule = NoiseSchedule(config: config)
            let label = "\(recorded.beta_schedule) rescale \(recorded.rescale_betas_zero_snr)"
            assertClose(recorded.indices.map { schedule.betas[$0] }, recorded.betas, tolerance: 1e-6, "\(label) betas")
            assertClose(recorded.indices.map { schedule.alphasCumprod[$0] }, recorded.alphas_cumprod, tolerance: 1e-6, "\(label) alphas_cumprod")
        }
    }

    func testTrainingTargetsMatchDiffusers() throws {
        let (fixture, _) = try load()
        let training = fixture.training
        var config = SchedulerConfig()
        config.betaSchedule = .scaledLinear
        config.betaStart = 0.00085
        config.betaEnd = 0.012
        let scheduler = DDPMScheduler(config: config)
        let original = try Tensor(shape: training.shape, values: training.original)
        let noise = try Tensor(shape: training.shape, values: training.noise)
        assertClose(try scheduler.addNoise(original: original, noise: noise, timesteps: training.timesteps).values, training.noisy, "add_noise")
        assertClose(try scheduler.velocity(sample: original, noise: noise, timesteps: training.timesteps).values, training.velocity, "get_velocity")
    }
}
