import Checkpoints
import Foundation
import XCTest

/// `customize render` on AnimateDiff folders (Tests/Fixtures/fixtures_animatediff_pipeline.py) with
/// LoRAs both ways: one a diffusers user made for UNetMotionModel (spatial and motion-module
/// attention), and one customize wrote that diffusers' `load_lora_weights` loaded
/// (fixtures_customize_lora.py). Final latents within 1e-4 of diffusers'.
final class AnimateDiffCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let model = fixtures + "/animatediff_pipeline"
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-animatediff-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let reference = try SafeTensorsFile(path: Self.fixtures + "/animatediff_pipeline_reference.safetensors")
        try SafeTensors.write([.init(name: "latents", shape: reference.entry("initial_latents").shape,
                                     values: reference.floats("initial_latents"))], to: path("initial.safetensors"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    /// Renders the reference request (3 frames, 3 DDIM steps, guidance 7.5) and returns the final latents.
    private func render(_ extra: [String], model: String = model, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        let run = try CLITests.run(["render", "a photo of a cat", "--model", model, "--latents", path("initial.safetensors"),
                                    "--steps", "3", "--guidance", "7.5", "--scheduler", "ddim", "--threads", "1",
                                    "--out", path("clip.gif"), "--save-latents", path("final.safetensors")] + extra)
        XCTAssertEqual(run.status, 0, run.stderr, file: file, line: line)
        return try SafeTensorsFile(path: path("final.safetensors")).floats("latents")
    }

    private func assertClose(_ actual: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, what, file: file, line: line)
        let scale = expected.map(abs).max() ?? 0
        let error = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(error, 1e-4 * scale, "\(what): max abs error \(error), max |expected| \(scale)", file: file, line: line)
    }

    func testRenderMatchesAnimateDiffPipeline() throws {
        let expected = try SafeTensorsFile(path: Self.fixtures + "/animatediff_pipeline_reference.safetensors").floats("ddim_latents")
        assertClose(try render([]), expected, "render")
        // An image folder plus a separate motion adapter folder renders the same clip.
        assertClose(try render(["--motion-adapter", Self.fixtures + "/animatediff_motion_adapter"], model: Self.fixtures + "/animatediff_image"),
                    expected, "image folder + --motion-adapter")
    }

    /// diffusers → customize: a PEFT LoRA on UNetMotionModel's spatial and motion-module attention.
    func testADiffusersLoRAGivesDiffusersLatents() throws {
        let expected = try SafeTensorsFile(path: Self.fixtures + "/animatediff_pipeline_reference.safetensors").floats("lora_ddim_latents")
        assertClose(try render(["--lora", Self.fixtures + "/lora/animatediff_lora.safetensors"]), expected, "diffusers LoRA")
    }

    /// customize → diffusers: a LoRA train-lora wrote, as diffusers' load_lora_weights ran it.
    func testALoRAWeWroteGivesWhatDiffusersGotFromIt() throws {
        let expected = try SafeTensorsFile(path: Self.fixtures + "/lora/customize_animatediff_lora_reference.safetensors").floats("lora_ddim_latents")
        assertClose(try render(["--lora", Self.fixtures + "/lora/customize_animatediff_lora.safetensors"]), expected, "customize LoRA")
    }

    /// MotionDirector on AnimateDiff's layout: the temporal LoRA goes on every motion module (METHODS.md),
    /// the spatial LoRAs on the image U-Net's self-attention; render --motion applies it.
    func testTrainMotionPutsTheTemporalLoRAOnTheMotionModules() throws {
        let clips = URL(fileURLWithPath: Self.fixtures).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("samples/clips").path
        let run = try CLITests.run(["train-motion", clips, "--model", Self.model, "--steps", "2", "--rank", "2",
                                    "--out", path("motion"), "--threads", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let temporal = try SafeTensorsFile(path: path("motion/temporal.safetensors")).names
        XCTAssertFalse(temporal.isEmpty)
        XCTAssertTrue(temporal.allSatisfy { $0.contains(".motion_modules.") }, "\(temporal.prefix(3))")
        // 7 motion modules × (attn1 q/k/v/out, attn2 q/k/v/out, ff in/out) × (A, B)
        XCTAssertEqual(temporal.count, 7 * 10 * 2)
        let plain = try render([])
        let moved = try render(["--motion", path("motion/temporal.safetensors")])
        XCTAssertNotEqual(plain, moved, "the temporal LoRA changes the clip")
    }

    func testBadInputIsRefusedBeforeAnyWork() throws {
        func refused(_ arguments: [String], _ needles: [String], line: UInt = #line) throws {
            let run = try CLITests.run(["render", "x", "--steps", "1", "--threads", "1"] + arguments)
            XCTAssertEqual(run.status, 1, run.stderr, line: line)
            for needle in needles { XCTAssertTrue(run.stderr.contains(needle), "\(needle) not in: \(run.stderr)", line: line) }
        }
        // More frames than the motion modules' positions cover.
        try refused(["--model", Self.model, "--frames", "9", "--out", path("long.mp4")], ["9 frames", "motion_max_seq_length"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("long.mp4")))
        // A picture model asked for a clip.
        try refused(["--model", Self.fixtures + "/animatediff_image", "--frames", "3", "--out", path("c.mp4")], ["pictures only", "--motion-adapter"])
        // A motion adapter for other channels.
        let other = Self.fixtures + "/animatediff/motion_adapter"
        try refused(["--model", Self.fixtures + "/animatediff_image", "--motion-adapter", other, "--frames", "3", "--out", path("d.mp4")],
                    [other + "/config.json", "block_out_channels"])
        // A UNet3D LoRA fits neither this layout's modules: every key it cannot place is named.
        try refused(["--model", Self.model, "--frames", "3", "--lora", Self.fixtures + "/lora/peft_lora.safetensors", "--out", path("e.mp4")],
                    ["peft_lora.safetensors", "temp_convs", "the LoRA is for that layout"])
    }
}
