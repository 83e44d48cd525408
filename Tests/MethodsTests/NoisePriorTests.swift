import Diffusion
import Methods
import Tensor
import XCTest

/// DDIM inversion (Diffusion) and MotionDirector's noise prior built on it.
final class NoisePriorTests: XCTestCase {
    /// Two inversion steps by hand: the schedule is [501, 1], walked as 1 then 501; the first step
    /// starts from the final cumulative alpha (set_alpha_to_one is false: ᾱ_0), the second from ᾱ_1.
    func testInversionFollowsTheDDIMUpdateBackwards() throws {
        let pipeline = try Support.pipeline()
        let latents = Support.tensor([1, 4, 2, 8, 8], seed: 7)
        let inverted = try pipeline.invert(latents: latents, steps: 2)

        let text = try pipeline.encodePrompt("")
        let cumprod = NoiseSchedule(config: pipeline.schedulerConfig).alphasCumprod
        var x = latents.values.map(Double.init)
        for (timestep, from, to) in [(1, Double(cumprod[0]), Double(cumprod[1])), (501, Double(cumprod[1]), Double(cumprod[501]))] {
            let sample = try Tensor(shape: latents.shape, values: x.map(Float.init))
            let epsilon = try pipeline.unet(sample: sample, timesteps: [Float(timestep)], encoderHiddenStates: text).values
            x = zip(x, epsilon).map { value, e in
                let original = (value - (1 - from).squareRoot() * Double(e)) / from.squareRoot()
                return to.squareRoot() * original + (1 - to).squareRoot() * Double(e)
            }
        }
        let scale = x.map(abs).max()!
        for (actual, expected) in zip(inverted.values, x) {
            XCTAssertEqual(Double(actual), expected, accuracy: 1e-4 * scale)
        }
        XCTAssertEqual(inverted.shape, latents.shape)
    }

    func testPriorMixesInversionAndTheSeedsNoise() throws {
        let pipeline = try Support.pipeline()
        let latents = Support.tensor([1, 4, 2, 8, 8], seed: 7)
        var generator = RandomGenerator(seed: 5)
        let noise = generator.normal(latents.shape)
        // p = 0 is exactly the noise a render with that seed starts from.
        XCTAssertEqual(try NoisePrior.startingLatents(pipeline: pipeline, latents: latents, strength: 0, steps: 2, seed: 5).values,
                       noise.values)
        let prior = try NoisePrior.startingLatents(pipeline: pipeline, latents: latents, strength: 0.25, steps: 2, seed: 5)
        let inverted = try pipeline.invert(latents: latents, steps: 2)
        for index in 0..<prior.count {
            XCTAssertEqual(prior[flat: index], 0.5 * inverted[flat: index] + Float(0.75).squareRoot() * noise[flat: index], accuracy: 1e-5)
        }
        XCTAssertThrowsError(try NoisePrior.mix(inverted: inverted, noise: noise, strength: 1.5))
    }

    func testImageLatentRepeatsOverFrames() throws {
        let image = Support.tensor([1, 4, 1, 8, 8], seed: 2)
        let clip = try NoisePrior.repeatedOverFrames(image, frames: 3)
        XCTAssertEqual(clip.shape, [1, 4, 3, 8, 8])
        XCTAssertEqual(try clip.slice(axis: 2, 2..<3).values, image.values)
        XCTAssertThrowsError(try NoisePrior.repeatedOverFrames(clip, frames: 2))
    }
}
