import Checkpoints
import Foundation
import Media
import XCTest

/// `customize compose` end to end with the tiny pipeline folder and LoRAs made for it.
final class ComposeCommandTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-compose-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder + "/loras", withIntermediateDirectories: true)
        // The cat is found by the token in its metadata (its file is kitty.safetensors), the dog by its file name.
        try writeLoRA("loras/kitty.safetensors", salt: 0.4, metadata: ["training": #"{"token": "<cat>", "class": "cat"}"#])
        try writeLoRA("loras/dog.safetensors", salt: 1.9)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    private func path(_ name: String) -> String { folder + "/" + name }
    private func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name)) }

    /// A PEFT-style LoRA on `to_k`, `to_v` and `to_out.0` of the fixture U-Net's spatial cross-attention layers.
    private func writeLoRA(_ name: String, salt: Float, metadata: [String: String] = [:],
                           extra: [SafeTensors.TensorToWrite] = []) throws {
        var tensors: [SafeTensors.TensorToWrite] = extra
        let layers = [("down_blocks.0.attentions.0", 8), ("mid_block.attentions.0", 16),
                      ("up_blocks.1.attentions.0", 8), ("up_blocks.1.attentions.1", 8)]
        for (index, (block, channels)) in layers.enumerated() {
            for (projection, inputs) in [("to_k", 16), ("to_v", 16), ("to_out.0", channels)] {
                let key = "unet.\(block).transformer_blocks.0.attn2.\(projection)"
                let shift = salt + Float(index)
                tensors.append(.init(name: key + ".lora_A.weight", shape: [2, inputs],
                                     values: (0 ..< 2 * inputs).map { sin(Float($0) * 1.7 + shift) * 0.8 }))
                tensors.append(.init(name: key + ".lora_B.weight", shape: [channels, 2],
                                     values: (0 ..< channels * 2).map { cos(Float($0) * 2.3 + shift) * 0.8 }))
            }
        }
        try SafeTensors.write(tensors, metadata: metadata, to: path(name))
    }

    @discardableResult
    private func compose(_ arguments: [String], status: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> CLITests.Run {
        let result = try CLITests.run(["compose"] + arguments + ["--model", RenderTests.model, "--lora-dir", path("loras"),
                                                                 "--steps", "2", "--threads", "1"])
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        return result
    }

    func testComposerWritesThePictureTheTokensAndAttentionHeatMaps() throws {
        let result = try compose(["a cat and a dog", "--lora", "cat", "--lora", "dog", "--out", path("pic.png"),
                                  "--save-attention", path("maps")])
        XCTAssertTrue(result.stdout.contains(#"tokens of cat in "a <cat> cat": 2 (<), 3 (cat), 4 (>), 5 (cat)"#), result.stdout)
        XCTAssertTrue(result.stdout.contains(#"tokens of dog in "a dog": 2 (dog)"#), result.stdout)
        XCTAssertTrue(result.stderr.contains("latent guidance"), result.stderr)
        let info = try PNGImage.readInfo(path: path("pic.png"))
        XCTAssertEqual([info.width, info.height], [16, 16])
        XCTAssertEqual(info.text["method"], "composer")
        XCTAssertEqual(info.text["prompt"], "a cat and a dog")
        XCTAssertEqual(info.text["adapters"], path("loras/kitty.safetensors") + ":1.0, " + path("loras/dog.safetensors") + ":1.0")
        XCTAssertTrue(info.text["concepts"]?.contains(#"cat = \#(path("loras/kitty.safetensors")):1.0, region 0,0.1,0.5,0.9, prompt "a <cat> cat""#) == true,
                      info.text["concepts"] ?? "")
        let maps = try FileManager.default.contentsOfDirectory(atPath: path("maps")).sorted()
        XCTAssertEqual(maps, ["cat-02-_.png", "cat-03-cat.png", "cat-04-_.png", "cat-05-cat.png", "dog-02-dog.png"])
        let map = try PNGImage.readInfo(path: path("maps/dog-02-dog.png"))
        XCTAssertEqual([map.width, map.height], [16, 16])
        XCTAssertEqual(map.text["token"], "dog")
        XCTAssertEqual(map.text["attention grid"], "8x8")

        // Regions and prompts given by hand, one concept by its file name, one by its token.
        try compose(["a cat and a dog", "--lora", "<cat>:0.7", "--lora", "dog", "--region", "cat=0,0,0.4,1", "--region", "dog=0.6,0.2,1,0.8",
                     "--concept-prompt", "dog=a red dog", "--out", path("hand.png")])
        let hand = try PNGImage.readInfo(path: path("hand.png"))
        XCTAssertTrue(hand.text["concepts"]?.contains(#"region 0.6,0.2,1,0.8, prompt "a red dog""#) == true, hand.text["concepts"] ?? "")
        XCTAssertTrue(hand.text["adapters"]?.contains("kitty.safetensors:0.7") == true)
    }

    /// Without a prompt the concepts stand side by side and the prompt names them so (printed,
    /// stored), each by its class word, else its name; CLoRA's per-LoRA prompts follow from it.
    func testComposeWithoutAPromptPlacesTheConceptsSideBySide() throws {
        let result = try compose(["--lora", "cat", "--lora", "dog", "--out", path("pair.png")])
        XCTAssertTrue(result.stdout.contains(#"prompt (from the concepts' names; give one to change it): "a cat on the left and a dog on the right""#),
                      result.stdout)
        let info = try PNGImage.readInfo(path: path("pair.png"))
        XCTAssertEqual(info.text["prompt"], "a cat on the left and a dog on the right")
        XCTAssertTrue(info.text["concepts"]?.contains("region 0,0.1,0.5,0.9") == true, info.text["concepts"] ?? "")
        let clora = try compose(["--lora", "dog", "--lora", "cat", "--method", "clora", "--out", path("clora.png")])
        XCTAssertTrue(clora.stdout.contains(#"tokens of cat in "a dog on the left and a <cat> cat on the right""#), clora.stdout)
        try writeLoRA("loras/robot.safetensors", salt: 2.7)
        let three = try compose(["--lora", "dog", "--lora", "robot", "--lora", "cat", "--out", path("three.png")])
        XCTAssertTrue(three.stdout.contains(#""a dog on the left, a robot in the middle and a cat on the right""#), three.stdout)
        // Boxes given by hand: the prompt names the concepts without places.
        let placed = try compose(["--lora", "cat", "--lora", "dog", "--region", "cat=0.55,0.1,1,0.9", "--region", "dog=0,0.1,0.45,0.9",
                                  "--out", path("regions.png")])
        XCTAssertTrue(placed.stdout.contains(#"give one to change it): "a cat and a dog""#), placed.stdout)
        // Two LoRAs of one class word are named by their names instead.
        try writeLoRA("loras/rex.safetensors", salt: 3.1, metadata: ["training": #"{"token": "<rex>", "class": "dog"}"#])
        try writeLoRA("loras/fido.safetensors", salt: 3.3, metadata: ["training": #"{"token": "<fido>", "class": "dog"}"#])
        let dogs = try compose(["--lora", "rex", "--lora", "fido", "--out", path("dogs.png")])
        XCTAssertTrue(dogs.stdout.contains(#""a rex on the left and a fido on the right""#), dogs.stdout)
    }

    func testCLoRARendersAClipWithHeatMapsPerFrame() throws {
        let result = try compose(["a cat and a dog", "--lora", "cat", "--lora", "dog", "--method", "clora", "--frames", "2",
                                  "--out", path("clip.mp4"), "--save-attention", path("maps")])
        // The cat's prompt gets its token before its word; the base prompt names both.
        XCTAssertTrue(result.stdout.contains(#"tokens of cat in "a cat and a dog": 2 (cat)"#), result.stdout)
        XCTAssertTrue(result.stdout.contains(#"tokens of cat in "a <cat> cat and a dog": 2 (<), 3 (cat), 4 (>), 5 (cat)"#), result.stdout)
        XCTAssertTrue(result.stdout.contains(#"tokens of dog in "a cat and a dog": 5 (dog)"#), result.stdout)
        XCTAssertTrue(exists("clip.mp4") && exists("clip_sheet.png"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("clip_frames")).sorted(), ["frame_0001.png", "frame_0002.png"])
        let sheet = try PNGImage.readInfo(path: path("maps/dog-05-dog.png"))
        XCTAssertEqual([sheet.width, sheet.height], [32, 16], "two frames side by side")
        XCTAssertEqual(try PNGImage.readInfo(path: path("clip_sheet.png")).text["method"], "clora")
    }

    func testMergeRendersWhatRenderGivesWithTheSameLoRAs() throws {
        try compose(["a cat and a dog", "--lora", path("loras/kitty.safetensors") + ":0.6", "--lora", "dog:0.9", "--method", "merge",
                     "--seed", "3", "--out", path("merged.png"), "--save-attention", path("maps")])
        let render = try CLITests.run(["render", "a cat and a dog", "--lora", path("loras/kitty.safetensors") + ":0.6",
                                       "--lora", path("loras/dog.safetensors") + ":0.9", "--frames", "1", "--seed", "3",
                                       "--model", RenderTests.model, "--steps", "2", "--threads", "1", "--out", path("render.png")])
        XCTAssertEqual(render.status, 0, render.stderr)
        XCTAssertEqual(try PNGImage.read(path: path("merged.png")).image, try PNGImage.read(path: path("render.png")).image)
        XCTAssertEqual(try PNGImage.readInfo(path: path("merged.png")).text["method"], "merge")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("maps")).sorted(), ["dog-05-dog.png", "kitty-02-cat.png"])
    }

    func testEvalComposeScoresEveryMethodWithTheConceptProbe() throws {
        let probe = path("probes/concept.safetensors")
        let trained = try CLITests.run(["eval", "train-probe", "--kind", "concept", "--out", probe, "--images", "300", "--steps", "400", "--threads", "1"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertTrue(trained.stdout.contains("concept classifier") && trained.stdout.contains("robot"), trained.stdout)
        XCTAssertEqual(try SafeTensorsFile(path: probe).metadata["labels"], "cat,dog,robot,other")

        let arguments = ["eval", "compose", "--model", RenderTests.model, "--probe", probe, "--lora-dir", path("loras"),
                         "--seeds", "2", "--steps", "2", "--threads", "1", "--out", path("eval")]
        let run = try CLITests.run(arguments + ["--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        let rows = report["rows"] as! [[String: Any]]
        XCTAssertEqual(rows.map { $0["method"] as! String }, ["composer", "clora", "merge"])
        for row in rows {
            XCTAssertEqual(row["images"] as? Int, 2)
            let placed = row["placed"] as! Double, present = row["present"] as! Double
            XCTAssertLessThanOrEqual(placed, present)
            XCTAssertEqual(present + (row["vanished"] as! Double), 1, accuracy: 1e-9)
            XCTAssertEqual(Set((row["per_concept"] as! [String: Double]).keys), ["cat", "dog"])
        }
        let samples = report["samples"] as! [[String: Any]]
        XCTAssertEqual(samples.count, 6)
        // Seed 1 swaps the sides; the kitty file is named by its token and class.
        XCTAssertEqual(samples[0]["prompt"] as? String, "a <cat> cat on the left and a dog on the right on a green background")
        XCTAssertEqual(samples[3]["left"] as? String, "dog")
        // The probe reads the world's own drawings of these scenes.
        XCTAssertGreaterThanOrEqual(report["probe_accuracy_on_true_drawings"] as! Double, 0.5)
        XCTAssertEqual(report["passes_bars"] as? Bool, false, "a two-step fixture model cannot compose")
        XCTAssertTrue(exists("eval/eval-compose.png") && exists("eval/report.json"))

        let table = try CLITests.run(arguments + ["--methods", "merge,composer", "--require-bars"])
        XCTAssertEqual(table.status, 1)
        XCTAssertTrue(table.stdout.contains("probe on the world's own drawings") && table.stdout.contains("bar missed composer placed"), table.stdout)

        // A LoRA that names no concept the probe knows, one concept, and a bad method.
        try writeLoRA("loras/ball.safetensors", salt: 2.5)
        let unknown = try CLITests.run(arguments + ["--lora", "cat", "--lora", "ball"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("--lora ball: none of its names (ball) is a concept the probe knows"), unknown.stderr)
        let single = try CLITests.run(arguments + ["--lora", "cat"])
        XCTAssertTrue(single.status != 0 && single.stderr.contains("at least two --lora"), single.stderr)
        let method = try CLITests.run(arguments + ["--methods", "composer,blend"])
        XCTAssertTrue(method.status != 0 && method.stderr.contains(#""blend" is not a method"#), method.stderr)
    }

    /// A file with a module the model lacks fails unless --allow-partial, which loads what fits
    /// and warns about the rest (compose and render alike).
    func testAllowPartialLoadsWhatFitsAndWarns() throws {
        let misfit: [SafeTensors.TensorToWrite] = [
            .init(name: "unet.down_blocks.7.attentions.0.proj_in.lora_A.weight", shape: [2, 8], values: Array(repeating: 0.1, count: 16)),
            .init(name: "unet.down_blocks.7.attentions.0.proj_in.lora_B.weight", shape: [8, 2], values: Array(repeating: 0.1, count: 16)),
        ]
        try writeLoRA("loras/part.safetensors", salt: 5, extra: misfit)
        let refused = try compose(["a cat and a dog", "--lora", "cat", "--lora", "part", "--out", path("refused.png")], status: 1)
        XCTAssertTrue(refused.stderr.contains("LoRA does not fit the model") && refused.stderr.contains("--allow-partial"), refused.stderr)
        XCTAssertFalse(exists("refused.png"))
        let partial = try compose(["a cat and a dog", "--lora", "cat", "--lora", "part", "--allow-partial", "--out", path("partial.png")])
        XCTAssertTrue(partial.stderr.contains("warning: LoRA '\(path("loras/part.safetensors"))': 1 part that does not fit the model skipped"),
                      partial.stderr)
        XCTAssertTrue(partial.stderr.contains("down_blocks.7.attentions.0.proj_in"), partial.stderr)
        XCTAssertTrue(exists("partial.png"))

        // A file whose U-Net part fits while none of its text-encoder keys does loads its U-Net part;
        // one where nothing fits fails even with the flag, saying so.
        try writeLoRA("loras/te.safetensors", salt: 6, extra: [
            .init(name: "text_encoder.text_model.encoder.layers.9.self_attn.q_proj.lora_A.weight", shape: [2, 16], values: Array(repeating: 0.1, count: 32)),
            .init(name: "text_encoder.text_model.encoder.layers.9.self_attn.q_proj.lora_B.weight", shape: [16, 2], values: Array(repeating: 0.1, count: 32)),
        ])
        let unetOnly = try compose(["a cat and a dog", "--lora", "cat", "--lora", "te", "--allow-partial", "--out", path("te.png")])
        XCTAssertTrue(unetOnly.stderr.contains("layers.9.self_attn.q_proj"), unetOnly.stderr)
        try SafeTensors.write(misfit, to: path("loras/bird.safetensors"))
        let nothing = try compose(["a cat and a dog", "--lora", "cat", "--lora", "bird", "--allow-partial", "--out", path("bird.png")], status: 1)
        XCTAssertTrue(nothing.stderr.contains("no module of this LoRA fits the model"), nothing.stderr)
        XCTAssertFalse(exists("bird.png"))

        let render = ["render", "a cat", "--model", RenderTests.model, "--lora-dir", path("loras"), "--lora", "part",
                      "--frames", "1", "--steps", "2", "--threads", "1"]
        let renderRefused = try CLITests.run(render + ["--out", path("render-refused.png")])
        XCTAssertEqual(renderRefused.status, 1, renderRefused.stderr)
        XCTAssertTrue(renderRefused.stderr.contains("down_blocks.7.attentions.0.proj_in"), renderRefused.stderr)
        let rendered = try CLITests.run(render + ["--allow-partial", "--out", path("render.png")])
        XCTAssertEqual(rendered.status, 0, rendered.stderr)
        XCTAssertTrue(rendered.stderr.contains("skipped (--allow-partial)"), rendered.stderr)
        XCTAssertTrue(exists("render.png"))
    }

    func testBadInputIsANamedErrorAndNothingIsWritten() throws {
        let base = ["a cat and a dog", "--lora", "cat", "--lora", "dog", "--out", path("out.png"), "--save-attention", path("maps")]
        let cases: [(arguments: [String], message: String)] = [
            (["--region", "bird=0,0,0.5,1"], "--region 'bird' names no loaded LoRA (loaded: cat, dog)"),
            (["--region", "cat=0,0,0.6,1", "--region", "dog=0.4,0,1,1"], "regions of cat (0,0,0.6,1) and dog (0.4,0,1,1) overlap"),
            (["--region", "cat=0,0,1.5,1", "--region", "dog=0.5,0,1,1"], "region of cat: 0,0,1.5,1 lies outside the image"),
            (["--region", "cat=0.5,0,0.2,1", "--region", "dog=0.6,0,1,1"], "region of cat: 0.5,0,0.2,1 is empty"),
            (["--region", "cat=0,0,0.5,1"], "2 LoRAs but 1 region: give a --region for dog"),
            (["--region", "cat=0,0,0.5,1", "--region", "cat=0,0,0.4,1"], "cat has two regions"),
            (["--method", "clora", "--region", "cat=0,0,0.5,1"], "regions place concepts for --method composer only"),
            (["--concept-prompt", "bird=a bird"], "--concept-prompt 'bird' names no loaded LoRA"),
            (["--concept-prompt", "cat=a bird"], #"the prompt "a bird" does not name cat"#),
        ]
        for (arguments, message) in cases {
            let result = try compose(base + arguments, status: 1)
            XCTAssertTrue(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            XCTAssertFalse(exists("out.png") || exists("maps"), "\(arguments) wrote something")
        }
        // CLoRA needs every concept named in the global prompt.
        let unnamed = try compose(["a cat and a ball", "--lora", "cat", "--lora", "dog", "--method", "clora", "--out", path("out.png")], status: 1)
        XCTAssertTrue(unnamed.stderr.contains(#"the prompt "a cat and a ball" does not name dog"#), unnamed.stderr)
        // A LoRA that is not there, and one made for another model.
        let missing = try compose(["a cat", "--lora", "cat", "--lora", "bird", "--out", path("out.png")], status: 1)
        XCTAssertTrue(missing.stderr.contains("--lora bird: no LoRA file at"), missing.stderr)
        try writeLoRA("loras/other.safetensors", salt: 3, metadata: [
            "base_model": #"{"name": "other-base", "unet_config_sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#,
        ])
        let other = try compose(["a cat", "--lora", "cat", "--lora", "other", "--out", path("out.png")], status: 1)
        XCTAssertTrue(other.stderr.contains("--lora other: LoRA '\(path("loras/other.safetensors"))' was made for another model (other-base"),
                      other.stderr)
        XCTAssertFalse(exists("out.png") || exists("maps"))
        // A LoRA whose keys the model lacks: the loader's list names the file and the module.
        try SafeTensors.write([.init(name: "unet.down_blocks.7.attentions.0.proj_in.lora_A.weight", shape: [2, 8], values: Array(repeating: 0.1, count: 16)),
                               .init(name: "unet.down_blocks.7.attentions.0.proj_in.lora_B.weight", shape: [8, 2], values: Array(repeating: 0.1, count: 16))],
                              to: path("loras/bird.safetensors"))
        let unfit = try compose(["a cat", "--lora", "cat", "--lora", "bird", "--out", path("out.png")], status: 1)
        XCTAssertTrue(unfit.stderr.contains("--lora bird: \(path("loras/bird.safetensors")): LoRA does not fit the model"), unfit.stderr)
        XCTAssertTrue(unfit.stderr.contains("down_blocks.7.attentions.0.proj_in"), unfit.stderr)
        XCTAssertFalse(exists("out.png"))
        // One LoRA is no composition, and an empty prompt is no prompt: usage errors naming what to do.
        let one = try compose(["a cat", "--lora", "cat", "--out", path("out.png")], status: 64)
        XCTAssertTrue(one.stderr.contains("compose puts two or more concepts in one picture: give another --lora (to render with one LoRA: customize render --lora 'cat'"),
                      one.stderr)
        let empty = try compose(["  ", "--lora", "cat", "--lora", "dog", "--out", path("out.png")], status: 64)
        XCTAssertTrue(empty.stderr.contains("the prompt is empty"), empty.stderr)
        XCTAssertFalse(exists("out.png"))
        // Malformed options are usage errors.
        let region = try compose(["a cat", "--lora", "cat", "--lora", "dog", "--region", "cat=0,0,1"], status: 64)
        XCTAssertTrue(region.stderr.contains("--region 'cat=0,0,1'"), region.stderr)
        try compose(["a cat", "--lora", "cat", "--method", "blend"], status: 64)
    }
}
