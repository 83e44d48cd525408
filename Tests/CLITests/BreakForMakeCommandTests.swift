import Checkpoints
import Foundation
import Media
import XCTest

/// `train-content`, `train-style`, `make` and rendering the made adapter, end to end with the tiny pipeline.
final class BreakForMakeCommandTests: XCTestCase {
    static let model = RenderTests.model
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-b4m-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    @discardableResult
    private func run(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(arguments + ["--model", Self.model, "--threads", "1"])
        XCTAssertEqual(result.status, status, "\(arguments.joined(separator: " "))\n\(result.stderr)", file: file, line: line)
        return result
    }

    private func images(_ name: String, colour: (UInt8, UInt8, UInt8)) throws -> String {
        let folder = path(name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for index in 0..<2 {
            try PNGImage.write(try RGBImage(width: 20, height: 20, fill: (colour.0, colour.1 &+ UInt8(40 * index), colour.2)),
                               to: folder + "/\(name)\(index).png")
        }
        return folder
    }

    func testBreakThenMakeThenRender() throws {
        let cat = try images("cat", colour: (250, 200, 20)), car = try images("car", colour: (20, 20, 250))
        let ink = try images("ink", colour: (10, 10, 10)), mosaic = try images("mosaic", colour: (200, 30, 200))
        let common = ["--rank", "2", "--steps", "2", "--checkpoint-every", "1", "--preview-every", "0"]
        try run(["train-content", cat, "--token", "<cat>", "--aux-styles", ink, mosaic, "--out", path("content.safetensors")] + common)
        try run(["train-style", ink, "--token", "<ink>", "--aux-contents", cat, car, "--out", path("style.safetensors")] + common)
        try run(["train-style", ink, "--token", "<ink>", "--aux-contents", car, "--out", path("other.safetensors"), "--seed", "5"] + common)
        let content = try SafeTensorsFile(path: path("content.safetensors"))
        XCTAssertEqual(content.metadata["method"], "break-for-make-content")
        XCTAssertTrue(content.names.contains { $0.contains("attn2.to_v.lora_B.weight") })

        let refused = try run(["make", "--content", path("content.safetensors"), "--style", path("other.safetensors"),
                               "--content-images", cat, "--style-images", ink, "--steps", "1", "--out", path("bad.safetensors")], status: 1)
        XCTAssertTrue(refused.stderr.contains("frozen half") && refused.stderr.contains("--seed"), refused.stderr)

        try run(["make", "--content", path("content.safetensors"), "--style", path("style.safetensors"), "--content-images", cat,
                 "--style-images", ink, "--steps", "2", "--checkpoint-every", "1", "--out", path("made.safetensors")])
        XCTAssertEqual(try SafeTensorsFile(path: path("made.safetensors")).metadata["method"], "break-for-make")
        let resumed = try run(["make", "--content", path("content.safetensors"), "--style", path("style.safetensors"),
                               "--content-images", cat, "--style-images", ink, "--steps", "3", "--resume", "--out", path("made.safetensors")])
        XCTAssertTrue(resumed.stderr.contains("resuming at step 2 of 3"), resumed.stderr)
        try run(["render", "a <cat> in <ink> style", "--frames", "1", "--steps", "1", "--lora", path("made.safetensors"), "--out", path("made.png")])
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("made.png")))

        let noAux = try run(["train-content", cat, "--token", "<cat>", "--out", path("x.safetensors")], status: 64)
        XCTAssertTrue(noAux.stderr.contains("--aux-styles"), noAux.stderr)

        // --gradient-accumulation-steps: recorded, at least 1, and a new run's setting only.
        try run(["train-content", cat, "--token", "<cat>", "--aux-styles", ink, "--out", path("acc.safetensors"),
                 "--gradient-accumulation-steps", "2"] + common)
        XCTAssertTrue(try XCTUnwrap(SafeTensorsFile(path: path("acc.safetensors")).metadata["training"])
            .contains("\"gradient_accumulation_steps\":2"))
        let zero = try run(["train-content", cat, "--token", "<cat>", "--aux-styles", ink, "--out", path("zero.safetensors"),
                            "--gradient-accumulation-steps", "0"], status: 64)
        XCTAssertTrue(zero.stderr.contains("--gradient-accumulation-steps must be at least 1"), zero.stderr)
        let changed = try run(["train-content", cat, "--token", "<cat>", "--aux-styles", ink, "--out", path("acc.safetensors"),
                               "--resume", "--gradient-accumulation-steps", "3"], status: 64)
        XCTAssertTrue(changed.stderr.contains("--resume continues with the run's own settings"), changed.stderr)
    }
}
