import Checkpoints
import Models
import Tensor
import XCTest

/// AutoencoderKL against diffusers on the tiny random-weight fixture.
final class AutoencoderKLParityTests: XCTestCase {
    func loadFixtureModel() throws -> AutoencoderKL {
        let configPath = ModelFixtures.path("vae", "config.json")
        let config = try AutoencoderKLConfig.load(path: configPath)
        let model = try AutoencoderKL(config: config, file: configPath)
        try model.loadWeights(from: SafeTensorsFile(path: ModelFixtures.path("vae", "diffusion_pytorch_model.safetensors")))
        return model
    }

    func testEncodeMatchesDiffusers() throws {
        let model = try loadFixtureModel()
        let io = try SafeTensorsFile(path: ModelFixtures.path("vae", "io.safetensors"))
        let (mean, logvar) = try model.encode(ModelFixtures.tensor(io, "images"))
        ModelFixtures.assertClose(mean, try ModelFixtures.tensor(io, "mean"), "posterior mean")
        ModelFixtures.assertClose(logvar, try ModelFixtures.tensor(io, "logvar"), "posterior logvar")
    }

    func testDecodeMatchesDiffusers() throws {
        let model = try loadFixtureModel()
        let io = try SafeTensorsFile(path: ModelFixtures.path("vae", "io.safetensors"))
        let decoded = try model.decode(ModelFixtures.tensor(io, "latents"))
        ModelFixtures.assertClose(decoded, try ModelFixtures.tensor(io, "decoded"), "decoded images")
    }

    func testConfigDefaultsAndScaling() throws {
        let config = try AutoencoderKLConfig.load(path: ModelFixtures.path("vae", "config.json"))
        XCTAssertEqual(config.blockOutChannels, [16, 32])
        XCTAssertEqual(config.scalingFactor, 0.18215)
        XCTAssertNil(config.shiftFactor)
        let model = try AutoencoderKL(config: config)
        let z = try Tensor(shape: [1, 4, 1, 1], values: [1, -2, 0.5, 0])
        let scaled = model.scaleLatents(z)
        XCTAssertEqual(scaled.values[1], -2 * 0.18215, accuracy: 1e-6)
        let back = model.unscaleLatents(scaled).values
        for (a, b) in zip(back, z.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testPosteriorSampleAndKL() throws {
        let mean = try Tensor(shape: [1, 1, 1, 2], values: [0.5, -1])
        let logvar = try Tensor(shape: [1, 1, 1, 2], values: [0, 40])  // 40 clamps to 20
        let posterior = DiagonalGaussianDistribution(mean: mean, logvar: logvar)
        XCTAssertEqual(posterior.logvar.values, [0, 20])
        let noise = try Tensor(shape: [1, 1, 1, 2], values: [2, 0])
        XCTAssertEqual(try posterior.sample(noise: noise).values, [2.5, -1])
        // ½ Σ (μ² + σ² − 1 − log σ²) = ½ ((0.25 + 1 − 1 − 0) + (1 + e²⁰ − 1 − 20))
        let expected = 0.5 * (0.25 + (1 + Float(exp(20.0)) - 1 - 20))
        XCTAssertEqual(try posterior.kl().values[0], expected, accuracy: expected * 1e-5)
    }
}
