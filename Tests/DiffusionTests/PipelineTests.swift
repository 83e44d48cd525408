import Checkpoints
import Foundation
import Models
import Tensor
import XCTest
@testable import Diffusion

/// TextToVideoPipeline against diffusers' sampling loop on the tiny F16 pipeline folder written by
/// Tests/Fixtures/fixtures_pipeline.py (reference outputs in pipeline_reference.safetensors).
final class PipelineTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let folder = fixtures.appendingPathComponent("pipeline").path
    static let prompt = "a photo of a cat"

    func reference(_ name: String) throws -> Tensor {
        let file = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("pipeline_reference.safetensors").path)
        return try Tensor(shape: file.entry(name).shape, values: file.floats(name))
    }

    func testPromptEncodingMatchesTransformers() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        XCTAssertEqual(pipeline.tokenizer(Self.prompt).ids.map(Float.init), try reference("prompt_ids").values)
        XCTAssertEqual(pipeline.tokenizer("").ids.map(Float.init), try reference("negative_ids").values)
        assertClose(try pipeline.encodePrompt(Self.prompt), try reference("prompt_embeds"), tolerance: 1e-4, "prompt embeddings")
        assertClose(try pipeline.encodePrompt(""), try reference("negative_embeds"), tolerance: 1e-4, "empty-prompt embeddings")
    }

    func testDDIMWithGuidanceMatchesDiffusers() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        var reported: [(Int, Int)] = []
        let video = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .ddim,
                                          initialLatents: reference("initial_latents")) { reported.append(($0, $1)) }
        assertClose(video.latents, try reference("ddim_latents"), tolerance: 1e-3, "DDIM final latents")
        XCTAssertEqual(reported.map(\.0), [1, 2, 3])
        XCTAssertEqual(reported.map(\.1), [3, 3, 3])
        let frames = try reference("ddim_frames")
        XCTAssertEqual(video.frames.count, 3)
        for (index, frame) in video.frames.enumerated() {
            let expected = try frames.slice(rows: index ..< index + 1).reshaped([3, 16, 16])
            assertClose(frame, expected, tolerance: 1e-3, "decoded frame \(index)")
        }
    }

    func testEulerWithGuidanceMatchesDiffusers() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let video = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .eulerDiscrete,
                                          initialLatents: reference("initial_latents"))
        assertClose(video.latents, try reference("euler_latents"), tolerance: 1e-3, "Euler final latents")
    }

    func testGuidanceOneRunsOnlyTheConditionalPass() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let video = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 2, guidance: 1, scheduler: .ddim,
                                          initialLatents: reference("initial_latents"))
        assertClose(video.latents, try reference("noguidance_latents"), tolerance: 1e-3, "DDIM latents without guidance")
    }

    func testSameSeedSameBytesAndSeedsDiffer() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let first = try pipeline.generate(prompt: Self.prompt, frames: 2, steps: 2, seed: 7)
        let second = try pipeline.generate(prompt: Self.prompt, frames: 2, steps: 2, seed: 7)
        let other = try pipeline.generate(prompt: Self.prompt, frames: 2, steps: 2, seed: 8)
        XCTAssertEqual(first.latents.shape, [1, 4, 2, 8, 8])
        XCTAssertEqual(first.latents.values, second.latents.values)
        XCTAssertEqual(first.frames.map(\.values), second.frames.map(\.values))
        XCTAssertNotEqual(first.latents.values, other.latents.values)
        XCTAssertTrue(first.frames.allSatisfy { $0.shape == [3, 16, 16] && $0.values.allSatisfy { abs($0) <= 1 } })
    }

    func testWrongInitialLatentsShapeIsAnError() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        XCTAssertThrowsError(try pipeline.generate(prompt: "x", frames: 2, steps: 1, initialLatents: Tensor(zeros: [1, 4, 3, 8, 8]))) { error in
            XCTAssertTrue("\(error)".contains("[1, 4, 2, 8, 8]"), "\(error)")
        }
    }
}
