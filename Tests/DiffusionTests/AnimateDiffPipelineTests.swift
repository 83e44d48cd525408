import Checkpoints
import Foundation
import Models
import Tensor
import XCTest
@testable import Diffusion

/// TextToVideoPipeline on AnimateDiff folders against diffusers' `AnimateDiffPipeline` and
/// `StableDiffusionPipeline` (Tests/Fixtures/fixtures_animatediff_pipeline.py; references in
/// animatediff_pipeline_reference.safetensors): same initial latents, scheduler and guidance, final
/// latents within 1e-4 of their largest value.
final class AnimateDiffPipelineTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let folder = fixtures.appendingPathComponent("animatediff_pipeline").path
    static let imageFolder = fixtures.appendingPathComponent("animatediff_image").path
    static let adapterFolder = fixtures.appendingPathComponent("animatediff_motion_adapter").path
    static let prompt = "a photo of a cat"

    func reference(_ name: String) throws -> Tensor {
        let file = try SafeTensorsFile(path: Self.fixtures.appendingPathComponent("animatediff_pipeline_reference.safetensors").path)
        return try Tensor(shape: file.entry(name).shape, values: file.floats(name))
    }

    func testTheFolderLoadsAsAUNetMotionModel() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        XCTAssertTrue(pipeline.unet is UNetMotionModel)
        XCTAssertEqual(pipeline.unet.maxFrames, 8)
    }

    func testDDIMWithGuidanceMatchesAnimateDiffPipeline() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let video = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .ddim,
                                          initialLatents: reference("initial_latents"))
        assertClose(video.latents, try reference("ddim_latents"), "DDIM final latents")
        let frames = try reference("ddim_frames")
        for (index, frame) in video.frames.enumerated() {
            assertClose(frame, try frames.slice(rows: index ..< index + 1).reshaped([3, 16, 16]), tolerance: 1e-3, "frame \(index)")
        }
    }

    func testEulerAndNoGuidanceMatchAnimateDiffPipeline() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let euler = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .eulerDiscrete,
                                          initialLatents: reference("initial_latents"))
        assertClose(euler.latents, try reference("euler_latents"), "Euler final latents")
        let plain = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 2, guidance: 1, scheduler: .ddim,
                                          initialLatents: reference("initial_latents"))
        assertClose(plain.latents, try reference("noguidance_latents"), "no-guidance final latents")
    }

    /// One frame is a picture: the image U-Net alone, as StableDiffusionPipeline draws it.
    func testOneFrameIsStableDiffusionsPicture() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        let initial = try reference("initial_latents").slice(axis: 2, 0..<1)
        let picture = try pipeline.generate(prompt: Self.prompt, frames: 1, steps: 3, guidance: 7.5, scheduler: .ddim,
                                            initialLatents: initial)
        assertClose(try picture.latents.reshaped([1, 4, 8, 8]), try reference("picture_latents"), "picture latents")
        // The image folder alone draws the same picture.
        let image = try TextToVideoPipeline.load(folder: Self.imageFolder)
        XCTAssertTrue(image.unet is UNet2DConditionModel)
        let same = try image.generate(prompt: Self.prompt, frames: 1, steps: 3, guidance: 7.5, scheduler: .ddim, initialLatents: initial)
        assertClose(try same.latents.reshaped([1, 4, 8, 8]), try reference("picture_latents"), "image folder's picture")
    }

    /// An image folder plus a separate motion adapter folder, as AnimateDiff users combine them.
    func testImageFolderPlusMotionAdapterIsTheAnimateDiffPipeline() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.imageFolder, motionAdapter: Self.adapterFolder)
        XCTAssertTrue(pipeline.unet is UNetMotionModel)
        let video = try pipeline.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .ddim,
                                          initialLatents: reference("initial_latents"))
        assertClose(video.latents, try reference("ddim_latents"), "image + adapter DDIM latents")
    }

    func testFrameLimitsAreClearErrors() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.folder)
        XCTAssertThrowsError(try pipeline.generate(prompt: "x", frames: 9, steps: 1)) {
            XCTAssertTrue("\($0)".contains("at most 8 frames") && "\($0)".contains("motion_max_seq_length"), "\($0)")
        }
        let image = try TextToVideoPipeline.load(folder: Self.imageFolder)
        XCTAssertThrowsError(try image.generate(prompt: "x", frames: 3, steps: 1)) {
            XCTAssertTrue("\($0)".contains("pictures only") && "\($0)".contains("--motion-adapter"), "\($0)")
        }
    }

    /// Saved and loaded again: AnimateDiffPipeline's layout (unet/ as UNetMotionModel, motion_adapter/), same latents.
    func testSaveWritesAnAnimateDiffFolderThatLoadsBack() throws {
        let pipeline = try TextToVideoPipeline.load(folder: Self.imageFolder, motionAdapter: Self.adapterFolder)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("animatediff-save-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try pipeline.save(to: out, dtype: .f32)
        let index = try DiffusersFolder(path: out).index
        XCTAssertEqual(index.className, "AnimateDiffPipeline")
        XCTAssertEqual(index.components["unet"]?.className, "UNetMotionModel")
        XCTAssertEqual(index.components["motion_adapter"]?.className, "MotionAdapter")
        let adapter = try DiffusersFolder.loadMotionAdapter(folder: out + "/motion_adapter")
        XCTAssertEqual(adapter.config.motionMaxSeqLength, 8)
        let reloaded = try TextToVideoPipeline.load(folder: out)
        let video = try reloaded.generate(prompt: Self.prompt, frames: 3, steps: 3, guidance: 7.5, scheduler: .ddim,
                                          initialLatents: reference("initial_latents"))
        assertClose(video.latents, try reference("ddim_latents"), "reloaded DDIM latents")
    }

    func testMotionAdapterThatDoesNotFitIsNamedBeforeLoading() throws {
        // The 16/32-channel adapter of the model fixtures against this 8/16-channel image U-Net.
        let other = Self.fixtures.appendingPathComponent("animatediff/motion_adapter").path
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: Self.imageFolder, motionAdapter: other)) {
            XCTAssertTrue("\($0)".contains(other + "/config.json") && "\($0)".contains("block_out_channels"), "\($0)")
        }
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: Self.fixtures.appendingPathComponent("pipeline").path,
                                                          motionAdapter: Self.adapterFolder)) {
            XCTAssertTrue("\($0)".contains("UNet3DConditionModel"), "\($0)")
        }
    }
}
