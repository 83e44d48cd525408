import Checkpoints
import Foundation
import Media
import XCTest

/// `customize inspect`, `frames` and `encode`, run as a user would run them, on files each test
/// writes with the libraries.
final class MediaCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-media-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    // MARK: - Helpers

    private func path(_ name: String) -> String { folder + "/" + name }

    private func makeFolder(_ name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: path(name), withIntermediateDirectories: true)
        return path(name)
    }

    private func run(_ arguments: [String]) throws -> CLITests.Run {
        try CLITests.run(arguments)
    }

    /// `inspect --json`'s array, after checking the command's exit status.
    private func inspectJSON(_ paths: [String], status: Int32 = 0, file: StaticString = #filePath,
                             line: UInt = #line) throws -> [[String: Any]] {
        let result = try run(["inspect", "--json"] + paths)
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try XCTUnwrap(parsed as? [[String: Any]], result.stdout, file: file, line: line)
    }

    /// A frame whose colour encodes `index`, with a bright mark that moves, so frames differ.
    private func frame(_ index: Int, width: Int, height: Int) throws -> RGBImage {
        var image = try RGBImage(width: width, height: height, fill: (UInt8(20 * index % 256), 90, UInt8(255 - 20 * index % 256)))
        image[x: index % width, y: height / 2] = (255, 255, 255)
        return image
    }

    /// PNG frames frame_1.png … frame_N.png (unpadded, so only natural order sorts them right).
    private func writeFrames(_ count: Int, width: Int, height: Int, into name: String) throws -> String {
        let frames = try makeFolder(name)
        for index in 1...count {
            try PNGImage.write(try frame(index, width: width, height: height), to: frames + "/frame_\(index).png")
        }
        return frames
    }

    private func distance(_ a: (r: UInt8, g: UInt8, b: UInt8), _ b: (UInt8, UInt8, UInt8)) -> Int {
        abs(Int(a.r) - Int(b.0)) + abs(Int(a.g) - Int(b.1)) + abs(Int(a.b) - Int(b.2))
    }

    func testEachMediaCommandIsListedAndShowsAnExample() throws {
        let root = try run(["--help"])
        for command in ["inspect", "frames", "encode"] {
            XCTAssertTrue(root.stdout.contains("customize \(command) "), root.stdout)
            let help = try run([command, "--help"])
            XCTAssertEqual(help.status, 0)
            XCTAssertTrue(help.stdout.contains("Examples:") && help.stdout.contains("customize \(command) "), help.stdout)
        }
    }

    // MARK: - inspect

    func testInspectPNGReportsHeaderAndAllTextMetadata() throws {
        // Named without a .png extension: the kind comes from the content.
        let image = path("picture.dat")
        try PNGImage.write(try RGBImage(width: 6, height: 4, fill: (200, 10, 10)), to: image,
                           text: [("Title", "red square"), ("Comment", "grüne Wiese"), ("Software", "customize tests")])
        let report = try inspectJSON([image])
        XCTAssertEqual(report.count, 1)
        let item = report[0]
        XCTAssertEqual(item["path"] as? String, image)
        XCTAssertEqual(item["kind"] as? String, "png")
        XCTAssertEqual(item["width"] as? Int, 6)
        XCTAssertEqual(item["height"] as? Int, 4)
        XCTAssertEqual(item["colour_type"] as? String, "rgb")
        XCTAssertEqual(item["channels"] as? Int, 3)
        XCTAssertEqual(item["bit_depth"] as? Int, 8)
        XCTAssertEqual(item["text"] as? [String: String],
                       ["Title": "red square", "Comment": "grüne Wiese", "Software": "customize tests"])

        let text = try run(["inspect", image])
        XCTAssertEqual(text.status, 0, text.stderr)
        for expected in ["\(image): png", "width", "6", "colour type", "rgb", "bit depth", "Title", "red square", "grüne Wiese"] {
            XCTAssertTrue(text.stdout.contains(expected), "missing '\(expected)' in:\n\(text.stdout)")
        }
    }

    /// frames → encode → inspect: an MP4 made by `encode` from PNGs is described with the frame
    /// count, size and rate it was made with; `frames` takes it apart again at a new size, and the
    /// result re-encoded as a GIF keeps the count and size.
    func testEncodeFramesInspectRoundTrip() throws {
        let sources = try writeFrames(8, width: 32, height: 24, into: "sources")
        let clip = path("clip.mp4")
        let encoded = try run(["encode", sources, "--out", clip, "--fps", "8"])
        XCTAssertEqual(encoded.status, 0, encoded.stderr)
        XCTAssertTrue(encoded.stdout.contains("8 frames") && encoded.stdout.contains("32x24"), encoded.stdout)

        let video = try inspectJSON([clip])[0]
        XCTAssertEqual(video["kind"] as? String, "video")
        XCTAssertTrue((video["container"] as? String ?? "").contains("mp4"), "\(video)")
        XCTAssertTrue(["h264", "mpeg4"].contains(video["codec"] as? String ?? ""), "\(video)")
        XCTAssertEqual(video["width"] as? Int, 32)
        XCTAssertEqual(video["height"] as? Int, 24)
        XCTAssertEqual(video["frames"] as? Int, 8)
        XCTAssertEqual(try XCTUnwrap(video["fps"] as? Double), 8, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(video["duration_seconds"] as? Double), 1, accuracy: 0.01)

        let extracted = path("extracted")
        let frames = try run(["frames", clip, "--out", extracted, "--count", "5", "--size", "16x16"])
        XCTAssertEqual(frames.status, 0, frames.stderr)
        XCTAssertTrue(frames.stdout.contains("5 frames") && frames.stdout.contains("frame_0001.png"), frames.stdout)
        let names = try FileManager.default.contentsOfDirectory(atPath: extracted).sorted()
        XCTAssertEqual(names, (1...5).map { String(format: "frame_%04d.png", $0) })
        for name in names {
            let info = try PNGImage.readInfo(path: extracted + "/" + name)
            XCTAssertEqual([info.width, info.height], [16, 16], name)
        }

        let gif = path("again.gif")
        let reencoded = try run(["encode", extracted, "--out", gif, "--fps", "4"])
        XCTAssertEqual(reencoded.status, 0, reencoded.stderr)
        let again = try inspectJSON([gif])[0]
        XCTAssertEqual(again["kind"] as? String, "video")
        XCTAssertEqual(again["codec"] as? String, "gif")
        XCTAssertEqual(again["frames"] as? Int, 5)
        XCTAssertEqual(again["width"] as? Int, 16)
        XCTAssertEqual(again["height"] as? Int, 16)
    }

    /// frame_2.png must come before frame_10.png: each GIF frame is checked against its source.
    func testEncodeOrdersFramesNaturallyAndFramesLetterboxes() throws {
        let sources = try writeFrames(11, width: 8, height: 8, into: "sources")
        let gif = path("ordered.gif")
        XCTAssertEqual(try run(["encode", sources, "--out", gif]).status, 0)
        let decoded = try VideoReader(path: gif).readFrames()
        XCTAssertEqual(decoded.count, 11)
        for (offset, image) in decoded.enumerated() {
            let expected = try frame(offset + 1, width: 8, height: 8)
            XCTAssertLessThan(distance(image[x: 7, y: 0], expected[x: 7, y: 0]), 12, "frame \(offset + 1) out of order")
        }

        // Letterboxing an 8x8 clip into 16x8 pads left and right with black.
        let boxed = path("boxed")
        let result = try run(["frames", gif, "--out", boxed, "--count", "1", "--size", "16x8", "--letterbox"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let (image, _) = try PNGImage.read(path: boxed + "/frame_0001.png")
        XCTAssertEqual([image.width, image.height], [16, 8])
        XCTAssertLessThan(distance(image[x: 0, y: 4], (0, 0, 0)), 3)
        XCTAssertGreaterThan(distance(image[x: 8, y: 0], (0, 0, 0)), 60)
    }

    func testInspectLoRAFilesInPEFTAndKohyaKeyFormats() throws {
        let modules = ["to_q", "to_k", "to_v"].map { "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.\($0)" }
        var peftTensors: [SafeTensors.TensorToWrite] = []
        for module in modules {
            peftTensors.append(.init(name: module + ".lora_A.weight", shape: [4, 32], values: .init(repeating: 0.01, count: 128)))
            peftTensors.append(.init(name: module + ".lora_B.weight", shape: [32, 4], values: .init(repeating: 0, count: 128), dtype: .f16))
        }
        let peft = path("pytorch_lora_weights.safetensors")
        try SafeTensors.write(peftTensors, metadata: ["lora_alpha": "8", "format": "pt"], to: peft)

        let kohyaModules = ["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k",
                            "lora_te_text_model_encoder_layers_0_self_attn_q_proj"]
        var kohyaTensors: [SafeTensors.TensorToWrite] = []
        for module in kohyaModules {
            kohyaTensors.append(.init(name: module + ".alpha", shape: [], values: [2]))
            kohyaTensors.append(.init(name: module + ".lora_down.weight", shape: [8, 16], values: .init(repeating: 0.5, count: 128)))
            kohyaTensors.append(.init(name: module + ".lora_up.weight", shape: [16, 8], values: .init(repeating: 0, count: 128)))
        }
        let kohya = path("kohya_style.safetensors")
        try SafeTensors.write(kohyaTensors, metadata: ["ss_network_dim": "8", "ss_network_alpha": "2"], to: kohya)

        let report = try inspectJSON([peft, kohya])
        XCTAssertEqual(report.count, 2)

        let peftItem = report[0]
        XCTAssertEqual(peftItem["kind"] as? String, "safetensors")
        XCTAssertEqual(peftItem["tensors"] as? Int, 6)
        XCTAssertEqual(peftItem["dtypes"] as? [String: Int], ["F32": 3, "F16": 3])
        XCTAssertEqual(peftItem["parameters"] as? Int, 6 * 128)
        XCTAssertEqual((peftItem["metadata"] as? [String: String])?["lora_alpha"], "8")
        let peftLoRA = try XCTUnwrap(peftItem["lora"] as? [String: Any], "\(peftItem)")
        XCTAssertEqual(peftLoRA["format"] as? String, "peft")
        XCTAssertEqual(peftLoRA["ranks"] as? [Int], [4])
        XCTAssertEqual(peftLoRA["alpha"] as? Double, 8)
        XCTAssertEqual(peftLoRA["alpha_source"] as? String, "metadata lora_alpha")
        XCTAssertEqual(peftLoRA["target_layers"] as? Int, 3)
        XCTAssertEqual(peftLoRA["first_targets"] as? [String], [modules[1], modules[0], modules[2]])

        let kohyaItem = report[1]
        XCTAssertEqual(kohyaItem["tensors"] as? Int, 6)
        XCTAssertEqual(kohyaItem["parameters"] as? Int, 2 * (1 + 128 + 128))
        let kohyaLoRA = try XCTUnwrap(kohyaItem["lora"] as? [String: Any], "\(kohyaItem)")
        XCTAssertEqual(kohyaLoRA["format"] as? String, "kohya")
        XCTAssertEqual(kohyaLoRA["ranks"] as? [Int], [8])
        XCTAssertEqual(kohyaLoRA["alpha"] as? Double, 2)
        XCTAssertEqual(kohyaLoRA["alpha_source"] as? String, "alpha tensors")
        XCTAssertEqual(kohyaLoRA["target_layers"] as? Int, 2)
        XCTAssertEqual(kohyaLoRA["first_targets"] as? [String], [kohyaModules[1], kohyaModules[0]])

        // Plain weights are not mistaken for an adapter.
        let plain = path("plain.safetensors")
        try SafeTensors.write([.init(name: "conv_in.weight", shape: [2, 2], values: [1, 2, 3, 4]),
                               .init(name: "mid_block.alpha", shape: [], values: [0.5])], to: plain)
        XCTAssertNil(try inspectJSON([plain])[0]["lora"])

        let text = try run(["inspect", kohya])
        XCTAssertEqual(text.status, 0, text.stderr)
        for expected in ["lora:", "kohya", "ranks", "target layers", kohyaModules[0]] {
            XCTAssertTrue(text.stdout.contains(expected), "missing '\(expected)' in:\n\(text.stdout)")
        }
    }

    func testInspectDiffusersModelFolder() throws {
        let model = try makeFolder("tiny-model")
        func writeJSON(_ text: String, _ name: String) throws {
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: model + "/" + name).deletingLastPathComponent().path,
                                                    withIntermediateDirectories: true)
            try text.write(toFile: model + "/" + name, atomically: true, encoding: .utf8)
        }
        try writeJSON("""
        {"_class_name": "TextToVideoSDPipeline", "_diffusers_version": "0.30.0",
         "unet": ["diffusers", "UNet3DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
         "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
         "scheduler": ["diffusers", "DDIMScheduler"], "safety_checker": [null, null]}
        """, "model_index.json")
        try writeJSON("""
        {"_class_name": "UNet3DConditionModel", "block_out_channels": [32, 64], "layers_per_block": 1,
         "cross_attention_dim": 32, "attention_head_dim": 8, "sample_size": 8, "in_channels": 4,
         "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"]}
        """, "unet/config.json")
        try writeJSON(#"{"_class_name": "AutoencoderKL", "latent_channels": 4, "scaling_factor": 0.18215, "block_out_channels": [16, 32]}"#, "vae/config.json")
        try writeJSON(#"{"architectures": ["CLIPTextModel"], "hidden_size": 32, "num_hidden_layers": 2, "vocab_size": 1000}"#, "text_encoder/config.json")
        try writeJSON(#"{"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}"#, "scheduler/scheduler_config.json")
        try writeJSON(#"{"model_max_length": 77}"#, "tokenizer/tokenizer_config.json")
        try writeJSON(#"{"a</w>": 0}"#, "tokenizer/vocab.json")
        try writeJSON("#version: 0.2\n", "tokenizer/merges.txt")
        try SafeTensors.write([.init(name: "conv_in.weight", shape: [32, 4, 3, 3], values: .init(repeating: 0, count: 1152), dtype: .f16),
                               .init(name: "conv_in.bias", shape: [32], values: .init(repeating: 0, count: 32))],
                              to: model + "/unet/diffusion_pytorch_model.safetensors")
        try SafeTensors.write([.init(name: "decoder.conv_out.bias", shape: [3], values: [0, 0, 0])],
                              to: model + "/vae/diffusion_pytorch_model.safetensors")

        let item = try inspectJSON([model])[0]
        XCTAssertEqual(item["kind"] as? String, "diffusers model")
        XCTAssertEqual(item["class_name"] as? String, "TextToVideoSDPipeline")
        let components = try XCTUnwrap(item["components"] as? [[String: Any]])
        XCTAssertEqual(components.map { $0["name"] as? String }, ["scheduler", "text_encoder", "tokenizer", "unet", "vae"])
        let byName = Dictionary(uniqueKeysWithValues: components.map { ($0["name"] as! String, $0) })

        let unet = try XCTUnwrap(byName["unet"]?["config"] as? [String: Any])
        XCTAssertEqual(unet["block_out_channels"] as? [Int], [32, 64])
        XCTAssertEqual(unet["layers_per_block"] as? Int, 1)
        XCTAssertEqual(unet["cross_attention_dim"] as? Int, 32)
        XCTAssertEqual(unet["attention_head_dim"] as? Int, 8)
        XCTAssertEqual(unet["sample_size"] as? Int, 8)
        let unetWeights = try XCTUnwrap(byName["unet"]?["weights"] as? [[String: Any]])
        XCTAssertEqual(unetWeights.first?["file"] as? String, "diffusion_pytorch_model.safetensors")
        XCTAssertEqual(unetWeights.first?["dtypes"] as? [String: Int], ["F16": 1, "F32": 1])
        XCTAssertEqual(unetWeights.first?["parameters"] as? Int, 1152 + 32)
        let unetFile = model + "/unet/diffusion_pytorch_model.safetensors"
        XCTAssertEqual(unetWeights.first?["size_bytes"] as? Int,
                       try FileManager.default.attributesOfItem(atPath: unetFile)[.size] as? Int)

        let vae = try XCTUnwrap(byName["vae"]?["config"] as? [String: Any])
        XCTAssertEqual(vae["latent_channels"] as? Int, 4)
        XCTAssertEqual(try XCTUnwrap(vae["scaling_factor"] as? Double), 0.18215, accuracy: 1e-12)
        let textEncoder = try XCTUnwrap(byName["text_encoder"]?["config"] as? [String: Any])
        XCTAssertEqual(textEncoder["hidden_size"] as? Int, 32)
        XCTAssertEqual(textEncoder["num_hidden_layers"] as? Int, 2)
        XCTAssertEqual(textEncoder["vocab_size"] as? Int, 1000)
        let scheduler = try XCTUnwrap(byName["scheduler"]?["config"] as? [String: Any])
        XCTAssertEqual(scheduler["_class_name"] as? String, "DDIMScheduler")
        XCTAssertEqual(scheduler["num_train_timesteps"] as? Int, 1000)
        XCTAssertEqual(scheduler["beta_schedule"] as? String, "scaled_linear")
        XCTAssertEqual(scheduler["prediction_type"] as? String, "epsilon")
        XCTAssertEqual(byName["tokenizer"]?["tokenizer_files"] as? [String], ["merges.txt", "tokenizer_config.json", "vocab.json"])

        let text = try run(["inspect", model])
        XCTAssertEqual(text.status, 0, text.stderr)
        for expected in ["diffusers model", "TextToVideoSDPipeline", "block out channels", "32, 64", "scaling factor", "0.18215",
                         "beta schedule", "scaled_linear", "diffusion_pytorch_model.safetensors"] {
            XCTAssertTrue(text.stdout.contains(expected), "missing '\(expected)' in:\n\(text.stdout)")
        }
    }

    /// One corrupt file in a folder is reported by name; the good files are still described and
    /// the status says "partly failed".
    func testFolderWithACorruptFileReportsItAndDescribesTheRest() throws {
        let mixed = try makeFolder("mixed")
        try PNGImage.write(try RGBImage(width: 3, height: 5), to: mixed + "/good.png")
        try SafeTensors.write([.init(name: "w", shape: [2], values: [1, 2])], to: mixed + "/weights.safetensors")
        // A PNG signature followed by garbage: recognised as PNG, fails its chunk checks.
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array("not a real png at all".utf8))
            .write(to: URL(fileURLWithPath: mixed + "/broken.png"))
        try "just notes".write(toFile: mixed + "/notes.txt", atomically: true, encoding: .utf8)

        let text = try run(["inspect", mixed])
        XCTAssertEqual(text.status, 2, text.stderr)
        XCTAssertTrue(text.stderr.contains("broken.png"), text.stderr)
        XCTAssertFalse(text.stderr.contains("good.png"), text.stderr)
        XCTAssertTrue(text.stdout.contains(mixed + "/good.png: png"), text.stdout)
        XCTAssertTrue(text.stdout.contains(mixed + "/weights.safetensors: safetensors"), text.stdout)
        XCTAssertTrue(text.stdout.contains("notes.txt"), text.stdout)

        let folderItem = try inspectJSON([mixed], status: 2)[0]
        XCTAssertEqual(folderItem["kind"] as? String, "folder")
        let entries = try XCTUnwrap(folderItem["entries"] as? [[String: Any]])
        XCTAssertEqual(entries.map { $0["path"] as? String }, ["broken.png", "good.png", "weights.safetensors"].map { mixed + "/" + $0 })
        XCTAssertNotNil(entries[0]["error"])
        XCTAssertEqual(entries[1]["width"] as? Int, 3)
        XCTAssertEqual(entries[2]["tensors"] as? Int, 1)
        XCTAssertEqual(folderItem["other_files"] as? [String], ["notes.txt"])

        // Every path failing is a plain failure.
        let allBad = try run(["inspect", mixed + "/broken.png", path("missing.mp4")])
        XCTAssertEqual(allBad.status, 1)
    }

    // MARK: - Bad input

    func testBadInputsFailWithAMessageNamingTheFileOrOption() throws {
        let missing = path("no-such-clip.mp4")
        let missingResult = try run(["inspect", missing])
        XCTAssertEqual(missingResult.status, 1)
        XCTAssertTrue(missingResult.stderr.contains(missing) && missingResult.stderr.contains("no such file"), missingResult.stderr)

        let empty = path("empty.mp4")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        let emptyInspect = try run(["inspect", empty])
        XCTAssertEqual(emptyInspect.status, 1)
        XCTAssertTrue(emptyInspect.stderr.contains(empty) && emptyInspect.stderr.contains("empty"), emptyInspect.stderr)
        let emptyFrames = try run(["frames", empty, "--out", path("out")])
        XCTAssertNotEqual(emptyFrames.status, 0)
        XCTAssertTrue(emptyFrames.stderr.contains(empty), emptyFrames.stderr)

        let sources = try writeFrames(2, width: 8, height: 8, into: "sources")
        let badSize = try run(["frames", path("clip.mp4"), "--out", path("out"), "--size", "64by64"])
        XCTAssertEqual(badSize.status, 64)
        XCTAssertTrue(badSize.stderr.contains("--size expects WxH, e.g. 64x64, got '64by64'"), badSize.stderr)

        let badExtension = try run(["encode", sources, "--out", path("clip.avi")])
        XCTAssertEqual(badExtension.status, 64)
        XCTAssertTrue(badExtension.stderr.contains("clip.avi") && badExtension.stderr.contains(".avi")
                      && badExtension.stderr.contains(".mp4") && badExtension.stderr.contains(".gif"), badExtension.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("clip.avi")))

        // A frame of another size is named, with both sizes.
        try PNGImage.write(try RGBImage(width: 10, height: 8), to: sources + "/frame_3.png")
        let mismatched = try run(["encode", sources, "--out", path("clip.mp4")])
        XCTAssertEqual(mismatched.status, 1)
        XCTAssertTrue(mismatched.stderr.contains("frame_3.png") && mismatched.stderr.contains("10x8")
                      && mismatched.stderr.contains("8x8"), mismatched.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("clip.mp4")))
    }

    /// `frames` never writes a frame over the clip it reads, even when the clip is named like one.
    func testFramesRefusesToOverwriteItsInput() throws {
        let sources = try writeFrames(3, width: 8, height: 8, into: "sources")
        let target = try makeFolder("target")
        let clip = target + "/frame_0001.png"
        XCTAssertEqual(try run(["encode", sources, "--out", path("clip.gif")]).status, 0)
        try FileManager.default.copyItem(atPath: path("clip.gif"), toPath: clip)
        let before = try Data(contentsOf: URL(fileURLWithPath: clip))

        let result = try run(["frames", clip, "--out", target])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("refusing") && result.stderr.contains(clip), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: clip)), before)
    }
}
