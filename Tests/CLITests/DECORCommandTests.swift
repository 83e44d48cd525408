import Checkpoints
import Foundation
import Media
import XCTest

/// `--decor-remove` on render and train-lora, end to end with the tiny pipeline.
final class DECORCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-decor-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    /// Renders "a red star" and returns its final latents.
    private func latents(_ name: String, _ extra: [String], status: Int32 = 0) throws -> [Float]? {
        let result = try CLITests.run(["render", "a red star", "--frames", "1", "--seed", "2", "--out", path(name + ".png"),
                                       "--save-latents", path(name + ".safetensors"), "--model", RenderTests.model,
                                       "--steps", "2", "--threads", "1"] + extra)
        XCTAssertEqual(result.status, status, result.stderr)
        guard status == 0 else { return nil }
        return try SafeTensorsFile(path: path(name + ".safetensors")).floats("latents")
    }

    func testRemovalChangesTheRenderAndZeroStrengthDoesNot() throws {
        let plain = try latents("plain", [])
        let removed = try latents("removed", ["--decor-remove", "red"])
        let zero = try latents("zero", ["--decor-remove", "red", "--decor-strength", "0"])
        let unknown = try latents("unknown", ["--decor-remove", "qzxv, ñandú"])
        XCTAssertNotEqual(plain, removed)
        XCTAssertEqual(plain, zero)
        XCTAssertNotEqual(plain, unknown)
        XCTAssertEqual(try PNGImage.readInfo(path: path("removed.png")).text["decor"], "red")
    }

    func testBadSettingsAreUsageErrors() throws {
        _ = try latents("a", ["--decor-strength", "0.5"], status: 64)
        _ = try latents("b", ["--decor-remove", "red", "--decor-strength", "2"], status: 64)
        _ = try latents("c", ["--decor-remove", " , "], status: 64)
    }
}
