import Checkpoints
import Foundation
import Media
import XCTest

/// `customize render --prompts FILE` and `--lora` end to end with the tiny pipeline folder.
final class RenderBatchTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-batch-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }
    private func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(name))) }
    private func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    @discardableResult
    private func render(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(["render"] + arguments + ["--model", RenderTests.model, "--steps", "2", "--threads", "1"])
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        return result
    }

    private func index(_ name: String) throws -> [[String: Any]] {
        try JSONSerialization.jsonObject(with: bytes(name)) as! [[String: Any]]
    }

    /// A PEFT-style LoRA for the tiny pipeline: U-Net cross-attention keys and one text-encoder
    /// projection, with factors large enough to change the picture.
    private func writeLoRA(_ name: String) throws {
        func factors(_ key: String, out: Int, in inFeatures: Int, rank: Int = 2, salt: Float) -> [SafeTensors.TensorToWrite] {
            [.init(name: key + ".lora_A.weight", shape: [rank, inFeatures],
                   values: (0 ..< rank * inFeatures).map { sin(Float($0) * 1.7 + salt) * 0.8 }),
             .init(name: key + ".lora_B.weight", shape: [out, rank],
                   values: (0 ..< out * rank).map { cos(Float($0) * 2.3 + salt) * 0.8 })]
        }
        let block = "unet.down_blocks.0.attentions.0.transformer_blocks.0"
        let tensors = factors(block + ".attn2.to_k", out: 8, in: 16, salt: 0.1)
            + factors(block + ".attn1.to_q", out: 8, in: 8, salt: 0.7)
            + factors("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_v", out: 16, in: 16, salt: 1.3)
            + factors("text_encoder.text_model.encoder.layers.1.self_attn.q_proj", out: 16, in: 16, salt: 2.9)
        try SafeTensors.write(tensors, to: path(name))
    }

    func testGoodLinesRenderBadLinesAreReportedAndAnIndexIsWritten() throws {
        try write("prompts.txt", """
            # a batch with two good lines and two bad ones

            a photo of a cat | frames=1 seed=3
            a photo of a dog | frames=3 | out=dog   # a comment after the options
            a photo of a cat | sed=4
            a photo of a bird | frames=1 out=../escape

            """)
        let result = try render(["--prompts", path("prompts.txt"), "--out", path("batch")], status: 2)
        XCTAssertTrue(result.stderr.contains("\(path("prompts.txt")):5: unknown key \"sed\""), result.stderr)
        XCTAssertTrue(result.stderr.contains("\(path("prompts.txt")):6: out=../escape"), result.stderr)
        XCTAssertTrue(result.stderr.contains("render line 1/2 (line 3 of prompts.txt)"), result.stderr)
        XCTAssertTrue(result.stderr.contains("render line 2/2 (line 4 of prompts.txt), batch ETA"), result.stderr)
        XCTAssertTrue(result.stderr.contains("2 of 4 lines failed: \(path("prompts.txt")):5,6"), result.stderr)
        XCTAssertTrue(result.stdout.contains("line 4: wrote \(path("batch/dog.mp4"))"), result.stdout)

        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("batch")).sorted(),
                       ["dog.mp4", "dog_frames", "dog_sheet.png", "index.json", "index.png", "line-003.png"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), ["batch", "prompts.txt"])
        XCTAssertEqual(try VideoReader(path: path("batch/dog.mp4")).readFrames().count, 3)
        let info = try PNGImage.readInfo(path: path("batch/line-003.png"))
        XCTAssertEqual(info.text["prompt"], "a photo of a cat")
        XCTAssertEqual(info.text["seed"], "3")

        let entries = try index("batch/index.json")
        XCTAssertEqual(entries.map { $0["line"] as? Int }, [3, 4, 5, 6])
        XCTAssertEqual(entries.map { $0["status"] as? String }, ["ok", "ok", "error", "error"])
        XCTAssertEqual(entries[1]["outputs"] as? [String], ["dog.mp4", "dog_frames/", "dog_sheet.png"])
        XCTAssertEqual(entries[0]["outputs"] as? [String], ["line-003.png"])
        let settings = try XCTUnwrap(entries[1]["settings"] as? [String: Any])
        XCTAssertEqual(settings["frames"] as? Int, 3)
        XCTAssertEqual(settings["steps"] as? Int, 2)
        XCTAssertEqual(settings["seed"] as? Int, 0)
        XCTAssertEqual(settings["scheduler"] as? String, "ddim")
        XCTAssertEqual(settings["model"] as? String, RenderTests.model)
        XCTAssertTrue((entries[2]["error"] as? String ?? "").contains("sed"))
        XCTAssertNil(entries[2]["settings"])
        XCTAssertEqual(entries[3]["prompt"] as? String, "a photo of a bird")

        // index.png: two 16x16 tiles side by side, 2 pixels apart: the image, then the clip's middle frame.
        let sheet = try PNGImage.read(path: path("batch/index.png")).image
        XCTAssertEqual(sheet.width, 2 * (16 + 2) + 2)
        XCTAssertEqual(sheet.height, 16 + 2 + 2)
        let image = try PNGImage.read(path: path("batch/line-003.png")).image
        let middle = try PNGImage.read(path: path("batch/dog_frames/frame_0002.png")).image
        for (x, y) in [(0, 0), (5, 9), (15, 15)] {
            XCTAssertTrue(sheet[x: 2 + x, y: 2 + y] == image[x: x, y: y])
            XCTAssertTrue(sheet[x: 20 + x, y: 2 + y] == middle[x: x, y: y])
        }
    }

    func testABatchLineGivesTheBytesOfASingleRender() throws {
        try write("p.txt", """
            a photo of a dog | frames=3 seed=5 guidance=7.5 negative="blurry, dark" scheduler=euler out=clip
            a photo of a cat | frames=1 | seed=9 | steps=3
            """)
        try render(["--prompts", path("p.txt"), "--out", path("batch")])
        try render(["a photo of a dog", "--frames", "3", "--seed", "5", "--guidance", "7.5", "--negative", "blurry, dark",
                    "--scheduler", "euler", "--out", path("single.mp4")])
        let clip = try CLITests.run(["render", "a photo of a cat", "--frames", "1", "--seed", "9", "--steps", "3",
                                     "--model", RenderTests.model, "--threads", "1", "--out", path("single.png")])
        XCTAssertEqual(clip.status, 0, clip.stderr)
        XCTAssertEqual(try bytes("batch/clip.mp4"), try bytes("single.mp4"))
        XCTAssertEqual(try bytes("batch/clip_sheet.png"), try bytes("single_sheet.png"))
        for frame in 1 ... 3 {
            let name = String(format: "frame_%04d.png", frame)
            XCTAssertEqual(try bytes("batch/clip_frames/" + name), try bytes("single_frames/" + name))
        }
        XCTAssertEqual(try bytes("batch/line-002.png"), try bytes("single.png"))
        XCTAssertEqual(try PNGImage.readInfo(path: path("single_sheet.png")).text["negative"], "blurry, dark")
    }

    func testLoRAsApplyToTheirLineOnlyAndMatchASingleRender() throws {
        try FileManager.default.createDirectory(atPath: path("my-loras"), withIntermediateDirectories: false)
        try writeLoRA("my-loras/style.safetensors")
        let lines = ["a photo of a cat | frames=1 seed=2 lora=style:1.5 out=styled",
                     "a photo of a dog | frames=1 seed=2 out=dog",
                     "a photo of a cat | frames=1 seed=2 out=plain"]
        try write("with.txt", lines.joined(separator: "\n"))
        try write("without.txt", lines.dropFirst().joined(separator: "\n"))
        try render(["--prompts", path("with.txt"), "--out", path("with"), "--lora-dir", path("my-loras")])
        try render(["--prompts", path("without.txt"), "--out", path("without"), "--lora-dir", path("my-loras")])

        // The LoRA changes its own line, and nothing after it.
        XCTAssertNotEqual(try bytes("with/styled.png"), try bytes("with/plain.png"))
        XCTAssertEqual(try bytes("with/dog.png"), try bytes("without/dog.png"))
        XCTAssertEqual(try bytes("with/plain.png"), try bytes("without/plain.png"))
        let styled = try PNGImage.readInfo(path: path("with/styled.png"))
        XCTAssertEqual(styled.text["adapters"], path("my-loras/style.safetensors") + ":1.5")
        XCTAssertEqual(try PNGImage.readInfo(path: path("with/dog.png")).text["adapters"], "none")
        let entries = try index("with/index.json")
        let loras = try XCTUnwrap((entries[0]["settings"] as? [String: Any])?["loras"] as? [[String: Any]])
        XCTAssertEqual(loras.first?["name"] as? String, "style")
        XCTAssertEqual(loras.first?["scale"] as? Double, 1.5)

        // --lora on a single render: by name through --lora-dir, the same bytes as the batch line.
        try render(["a photo of a cat", "--frames", "1", "--seed", "2", "--lora", "style:1.5", "--lora-dir", path("my-loras"),
                    "--out", path("single.png")])
        XCTAssertEqual(try bytes("single.png"), try bytes("with/styled.png"))

        // The command line's --lora is every line's default; lora=none takes it away for one line.
        try write("defaults.txt", "a photo of a cat | frames=1 seed=2 out=styled\na photo of a cat | frames=1 seed=2 lora=none out=plain\n")
        try render(["--prompts", path("defaults.txt"), "--out", path("defaults"), "--lora", path("my-loras/style.safetensors") + ":1.5"])
        XCTAssertEqual(try PNGImage.read(path: path("defaults/styled.png")).image, try PNGImage.read(path: path("with/styled.png")).image)
        XCTAssertEqual(try bytes("defaults/plain.png"), try bytes("with/plain.png"))

        // A missing file names the paths tried; in a batch it fails its line only.
        let missing = try render(["x", "--frames", "1", "--lora", "nosuch:0.5", "--lora-dir", path("my-loras"), "--out", path("x.png")], status: 1)
        XCTAssertTrue(missing.stderr.contains("'nosuch' or '\(path("my-loras/nosuch.safetensors"))'"), missing.stderr)
        try write("missing.txt", "a photo of a cat | frames=1 lora=nosuch\na photo of a dog | frames=1\n")
        let batch = try render(["--prompts", path("missing.txt"), "--out", path("missing")], status: 2)
        XCTAssertTrue(batch.stderr.contains("missing.txt:1: lora=nosuch: no LoRA file at"), batch.stderr)
        XCTAssertTrue(exists("missing/line-002.png"))
    }

    func testLineGrammarErrorsNameTheLineAndTheKey() throws {
        try write("bad.txt", """
            # bad lines, then two good ones that want the same output
            | seed=1
            a cat | frames=0
            a cat | seed=-1
            a cat | guidance=lots
            a cat | negative="unclosed
            a cat | negative=dark, blurry
            a cat | scheduler=plms
            a cat | out=.hidden
            a cat | out=a/b
            a cat | frames=1 out=clip.mp4
            a cat | seed=1 seed=2
            a cat | lora=style:strong
            a cat | frames=1 out=index
            a cat | frames=1 out=same
            a cat | frames=1 out=same
            """)
        let result = try render(["--prompts", path("bad.txt"), "--out", path("out")], status: 2)
        let file = path("bad.txt")
        let expected = [
            "\(file):2: no prompt before ' | '",
            "\(file):3: frames=0: expected a whole number of frames, at least 1",
            "\(file):4: seed=-1: expected a whole number",
            "\(file):5: guidance=lots: expected a number",
            "\(file):6: negative=\"unclosed: the closing double quote is missing",
            "\(file):7: expected key=value after ' | ', found \"blurry\" (a value with spaces goes in double quotes: negative=\"...\")",
            "\(file):8: scheduler=plms: expected ddim or euler",
            "\(file):9: out=.hidden: expected a file name inside the output folder (no leading '.')",
            "\(file):10: out=a/b: expected a file name inside the output folder (no '/' or '\\')",
            "\(file):11: out=clip.mp4: one frame is written as a .png",
            "\(file):12: seed= is given twice",
            "\(file):13: lora=style:strong: the scale \"strong\"",
            "\(file):14: out=index: the output index.png is already used by the index",
        ]
        for message in expected { XCTAssertTrue(result.stderr.contains(message), "missing \(message) in:\n\(result.stderr)") }
        // Two lines may not share an output: the later one fails.
        XCTAssertTrue(result.stderr.contains("\(file):16: out=same: the output same.png is already used by line 15"), result.stderr)
        XCTAssertFalse(result.stderr.contains("\(file):15:"), result.stderr)
        XCTAssertTrue(exists("out/same.png"))
        XCTAssertEqual(try index("out/index.json").map { $0["status"] as? String },
                       Array(repeating: "error", count: 13) + ["ok", "error"])
    }

    func testOutputsNeverReplaceInputs() throws {
        try FileManager.default.createDirectory(atPath: path("out"), withIntermediateDirectories: false)
        // The prompt file lives in the output folder under a name a line's output would take.
        try write("out/keep.png", "a photo of a cat | frames=1 out=keep\na photo of a dog | frames=1\n")
        let result = try render(["--prompts", path("out/keep.png"), "--out", path("out")], status: 2)
        XCTAssertTrue(result.stderr.contains("keep.png:1: out=keep: the output would overwrite the input '\(path("out/keep.png"))'"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: path("out/keep.png"), encoding: .utf8).prefix(16), "a photo of a cat")
        XCTAssertTrue(exists("out/line-002.png"))

        // An index that would replace the prompt file stops the batch before anything renders.
        try write("out/index.json", "a photo of a cat | frames=1\n")
        let index = try render(["--prompts", path("out/index.json"), "--out", path("out")], status: 1)
        XCTAssertTrue(index.stderr.contains("index.json would overwrite the input"), index.stderr)
        XCTAssertEqual(try String(contentsOfFile: path("out/index.json"), encoding: .utf8), "a photo of a cat | frames=1\n")
    }

    func testCommandLineChoicesAreUsageErrors() throws {
        try write("p.txt", "a photo of a cat\n")
        for (arguments, message) in [
            ([String](), "give a PROMPT or --prompts FILE"),
            (["x", "--prompts", path("p.txt")], "not both"),
            (["--prompts", path("p.txt"), "--latents", path("l.safetensors")], "--latents"),
            (["x", "--lora", "style:loud"], "--lora style:loud"),
        ] {
            let result = try render(arguments, status: 64)
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        try write("empty.txt", "# nothing but a comment\n\n")
        let empty = try render(["--prompts", path("empty.txt"), "--out", path("e")], status: 1)
        XCTAssertTrue(empty.stderr.contains("no prompt lines"), empty.stderr)
        XCTAssertFalse(exists("e"), "nothing is created for a file without prompts")
    }
}
