import Checkpoints
import Foundation
import Media
import XCTest

/// `customize render` end to end with the tiny pipeline folder of Tests/Fixtures/fixtures_pipeline.py.
final class RenderTests: XCTestCase {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pipeline").path
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-render-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }

    @discardableResult
    private func render(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(["render"] + arguments + ["--model", Self.model, "--steps", "2", "--threads", "1"])
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        return result
    }

    private func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(name))) }

    func testOneFrameIsAPNGWithMetadataAndTheSameSeedGivesTheSameBytes() throws {
        try render(["a photo of a cat", "--frames", "1", "--seed", "3", "--guidance", "7.5", "--out", path("a.png")])
        try render(["a photo of a cat", "--frames", "1", "--seed", "3", "--guidance", "7.5", "--out", path("b.png")])
        try render(["a photo of a cat", "--frames", "1", "--seed", "4", "--guidance", "7.5", "--out", path("c.png")])
        XCTAssertEqual(try bytes("a.png"), try bytes("b.png"))
        XCTAssertNotEqual(try bytes("a.png"), try bytes("c.png"))
        let info = try PNGImage.readInfo(path: path("a.png"))
        XCTAssertEqual(info.width, 16)
        XCTAssertEqual(info.height, 16)
        XCTAssertEqual(info.text["prompt"], "a photo of a cat")
        XCTAssertEqual(info.text["negative"], "")
        XCTAssertEqual(info.text["seed"], "3")
        XCTAssertEqual(info.text["steps"], "2")
        XCTAssertEqual(info.text["guidance"], "7.5")
        XCTAssertEqual(info.text["scheduler"], "ddim")
        XCTAssertEqual(info.text["model"], Self.model)
        XCTAssertEqual(info.text["adapters"], "none")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["a.png", "b.png", "c.png"])
    }

    func testSeveralFramesGiveAVideoTheirPNGsAndASheet() throws {
        let result = try render(["a photo of a cat", "--frames", "3", "--scheduler", "euler", "--out", path("clip.mp4")])
        XCTAssertTrue(result.stdout.contains("clip.mp4"), result.stdout)
        let video = try VideoReader(path: path("clip.mp4"))
        XCTAssertEqual(video.info.width, 16)
        XCTAssertEqual(video.info.height, 16)
        XCTAssertEqual(try video.readFrames().count, 3)
        let frames = try FileManager.default.contentsOfDirectory(atPath: path("clip_frames")).sorted()
        XCTAssertEqual(frames, ["frame_0001.png", "frame_0002.png", "frame_0003.png"])
        let frameInfo = try PNGImage.readInfo(path: path("clip_frames/frame_0002.png"))
        XCTAssertEqual(frameInfo.text["frame"], "2/3")
        XCTAssertEqual(frameInfo.text["scheduler"], "euler")
        let sheet = try PNGImage.read(path: path("clip_sheet.png"))
        XCTAssertEqual(sheet.image.width, 48)
        XCTAssertEqual(sheet.image.height, 16)
        // The sheet's middle third is the second frame.
        let second = try PNGImage.read(path: path("clip_frames/frame_0002.png")).image
        XCTAssertEqual(sheet.image[x: 16 + 5, y: 7].r, second[x: 5, y: 7].r)
        XCTAssertEqual(sheet.image[x: 16 + 9, y: 3].b, second[x: 9, y: 3].b)
        XCTAssertEqual(sheet.info.text["prompt"], "a photo of a cat")
        // No staging folder is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["clip.mp4", "clip_frames", "clip_sheet.png"])

        // Rendering again to the same place replaces all three outputs.
        try render(["a photo of a cat", "--frames", "3", "--out", path("clip.mp4"), "--seed", "9"])
        XCTAssertEqual(try PNGImage.readInfo(path: path("clip_sheet.png")).text["seed"], "9")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("clip_frames")).count, 3)
    }

    func testLatentsRoundTrip() throws {
        try render(["a photo of a cat", "--frames", "3", "--out", path("first.gif"), "--save-latents", path("final.safetensors")])
        let saved = try SafeTensorsFile(path: path("final.safetensors"))
        XCTAssertEqual(saved.names, ["latents"])
        XCTAssertEqual(try saved.entry("latents").shape, [1, 4, 3, 8, 8])

        // Saved latents are accepted as a starting point (frames taken from the file), deterministically.
        try render(["a photo of a cat", "--latents", path("final.safetensors"), "--out", path("a.mp4"), "--save-latents", path("again.safetensors")])
        try render(["a photo of a cat", "--latents", path("final.safetensors"), "--out", path("b.mp4")])
        XCTAssertEqual(try bytes("a_sheet.png"), try bytes("b_sheet.png"))
        XCTAssertEqual(try PNGImage.readInfo(path: path("a_sheet.png")).text["latents"], path("final.safetensors"))
        XCTAssertNotEqual(try bytes("again.safetensors"), try bytes("final.safetensors"))

        // Starting from the file, not from the seed's noise, gives another video.
        XCTAssertNotEqual(try bytes("a_sheet.png"), try bytes("first_sheet.png"))

        let mismatch = try render(["x", "--latents", path("final.safetensors"), "--frames", "2", "--out", path("m.mp4")], status: 1)
        XCTAssertTrue(mismatch.stderr.contains("--frames 2"), mismatch.stderr)

        try SafeTensors.write([.init(name: "noise", shape: [1, 4, 3, 8, 8], values: Array(repeating: 0, count: 768))], to: path("other.safetensors"))
        let missing = try render(["x", "--latents", path("other.safetensors"), "--out", path("n.mp4")], status: 1)
        XCTAssertTrue(missing.stderr.contains(path("other.safetensors")), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("\"latents\""), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("noise"), missing.stderr)

        try SafeTensors.write([.init(name: "latents", shape: [1, 4, 3, 4, 4], values: Array(repeating: 0, count: 192))], to: path("small.safetensors"))
        let wrongSize = try render(["x", "--latents", path("small.safetensors"), "--out", path("s.mp4")], status: 1)
        XCTAssertTrue(wrongSize.stderr.contains("[1, 4, 3, 8, 8]"), wrongSize.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("s.mp4")))
    }

    func testTooLongPromptIsRenderedWithAWarning() throws {
        let long = Array(repeating: "a photo of a cat", count: 6).joined(separator: ", ")
        let result = try render([long, "--frames", "1", "--out", path("long.png")])
        XCTAssertTrue(result.stderr.contains("warning: the prompt is longer than the text encoder's 16 tokens"), result.stderr)
        XCTAssertEqual(try PNGImage.readInfo(path: path("long.png")).text["prompt"], long)
        let short = try render(["a photo of a cat", "--frames", "1", "--out", path("short.png")])
        XCTAssertFalse(short.stderr.contains("warning"), short.stderr)
    }

    func testBadModelFolderIsNamed() throws {
        let absent = path("no-model-here")
        let result = try CLITests.run(["render", "x", "--model", absent, "--frames", "1", "--out", path("x.png")])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains(absent), result.stderr)
        XCTAssertTrue(result.stderr.contains("model_index.json"), result.stderr)

        try FileManager.default.createDirectory(atPath: path("empty-model"), withIntermediateDirectories: false)
        let empty = try CLITests.run(["render", "x", "--model", path("empty-model"), "--frames", "1", "--out", path("x.png")])
        XCTAssertEqual(empty.status, 1)
        XCTAssertTrue(empty.stderr.contains(path("empty-model")), empty.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["empty-model"])
    }

    /// Without --model, a working directory with no samples/ finds the samples/base of the
    /// repository the executable was built in (here a copy: .build/release/customize beside samples/).
    func testTheDefaultModelIsFoundBesideTheExecutableFromAnyFolder() throws {
        let root = path("checkout"), elsewhere = path("elsewhere")
        let release = root + "/.build/release"
        for folder in [release, root + "/samples", elsewhere] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: CLITests.executable.path, toPath: release + "/customize")
        func render(_ out: String) throws -> CLITests.Run {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: release + "/customize")
            process.arguments = ["render", "a red circle", "--frames", "1", "--steps", "2", "--threads", "1", "--out", out]
            process.currentDirectoryURL = URL(fileURLWithPath: elsewhere)
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let stderr = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return CLITests.Run(status: process.terminationStatus, stdout: "", stderr: String(decoding: stderr, as: UTF8.self))
        }
        // No samples anywhere: the error names the relative default.
        let missing = try render("missing.png")
        XCTAssertEqual(missing.status, 1, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("samples/base"), missing.stderr)
        // The checkout's samples/base is found from the other folder.
        try FileManager.default.copyItem(atPath: Self.model, toPath: root + "/samples/base")
        let found = try render("found.png")
        XCTAssertEqual(found.status, 0, found.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: elsewhere + "/found.png"))
    }

    func testUnwritableOrMismatchedOutputIsAnErrorBeforeRendering() throws {
        let missingFolder = try render(["x", "--frames", "3", "--out", path("nowhere/clip.mp4")], status: 1)
        XCTAssertTrue(missingFolder.stderr.contains(path("nowhere")), missingFolder.stderr)
        XCTAssertFalse(missingFolder.stderr.contains("render:"), "rendering started: \(missingFolder.stderr)")

        try FileManager.default.createDirectory(atPath: path("taken.png"), withIntermediateDirectories: false)
        let isFolder = try render(["x", "--frames", "1", "--out", path("taken.png")], status: 1)
        XCTAssertTrue(isFolder.stderr.contains("is a folder"), isFolder.stderr)

        let wrongKind = try render(["x", "--frames", "3", "--out", path("clip.png")], status: 64)
        XCTAssertTrue(wrongKind.stderr.contains(".mp4"), wrongKind.stderr)
        let badLatentsTarget = try render(["x", "--frames", "1", "--out", path("ok.png"), "--save-latents", path("nowhere/l.safetensors")], status: 1)
        XCTAssertTrue(badLatentsTarget.stderr.contains("--save-latents"), badLatentsTarget.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["taken.png"])

        let badScheduler = try render(["x", "--scheduler", "plms"], status: 64)
        XCTAssertTrue(badScheduler.stderr.contains("ddim or euler"), badScheduler.stderr)
    }
}
