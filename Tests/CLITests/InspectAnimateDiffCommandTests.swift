import Checkpoints
import Foundation
import XCTest

/// `customize inspect` on AnimateDiff's folders and LoRA files, run as a user would run it, on the
/// fixtures diffusers made (Tests/Fixtures/fixtures_animatediff_pipeline.py, fixtures_lora.py).
final class InspectAnimateDiffCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let animateDiff = fixtures + "/animatediff_pipeline"
    static let image = fixtures + "/animatediff_image"
    static let motionAdapter = fixtures + "/animatediff_motion_adapter"
    static let unet3D = fixtures + "/pipeline"
    static let animateDiffLoRA = fixtures + "/lora/animatediff_lora.safetensors"
    static let unet3DLoRA = fixtures + "/lora/peft_lora.safetensors"

    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "customize-inspect-animatediff-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    // MARK: - Helpers

    private func path(_ name: String) -> String { folder + "/" + name }

    /// `inspect --json`'s array, after checking the command's exit status.
    private func inspectJSON(_ paths: [String], status: Int32 = 0, file: StaticString = #filePath,
                             line: UInt = #line) throws -> [[String: Any]] {
        let result = try CLITests.run(["inspect", "--json"] + paths)
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try XCTUnwrap(parsed as? [[String: Any]], result.stdout, file: file, line: line)
    }

    private func inspectText(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try CLITests.run(["inspect", path])
        XCTAssertEqual(result.status, 0, result.stderr, file: file, line: line)
        return result.stdout
    }

    private func assertContains(_ text: String, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        for part in expected {
            XCTAssertTrue(text.contains(part), "missing '\(part)' in:\n\(text)", file: file, line: line)
        }
    }

    /// Parameters of a weights file, counted here from its header.
    private func parameters(_ file: String, motionModules: Bool? = nil) throws -> Int {
        let weights = try SafeTensorsFile(path: file)
        return weights.entries.filter { name, _ in motionModules.map { name.contains("motion_modules.") == $0 } ?? true }
            .values.reduce(0) { $0 + $1.elementCount }
    }

    /// The fixture's motion modules: 1 per down block (2), 1 in the middle, 2 per up block (4);
    /// 2 heads per block; positions for 8 frames.
    private func assertFixtureMotionModules(_ motion: [String: Any]?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(motion?["count"] as? Int, 7, file: file, line: line)
        XCTAssertEqual(motion?["in_blocks"] as? [String: Int], ["down": 2, "mid": 1, "up": 4], file: file, line: line)
        XCTAssertEqual(motion?["block_out_channels"] as? [Int], [8, 16], file: file, line: line)
        XCTAssertEqual(motion?["layers_per_block"] as? [Int], [1, 1], file: file, line: line)
        XCTAssertEqual(motion?["transformer_layers_per_block"] as? [Int], [1, 1], file: file, line: line)
        XCTAssertEqual(motion?["attention_heads"] as? [Int], [2, 2], file: file, line: line)
        XCTAssertEqual(motion?["max_frames"] as? Int, 8, file: file, line: line)
        XCTAssertEqual(motion?["mid_block"] as? Bool, true, file: file, line: line)
    }

    private func assertFixtureLayout(_ layout: [String: Any]?, down: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(layout?["block_out_channels"] as? [Int], [8, 16], file: file, line: line)
        XCTAssertEqual(layout?["down_blocks"] as? [String], down, file: file, line: line)
        XCTAssertEqual(layout?["layers_per_block"] as? [Int], [1, 1], file: file, line: line)
        XCTAssertEqual(layout?["transformer_layers_per_block"] as? [Int], [1, 1], file: file, line: line)
        XCTAssertEqual(layout?["attention_heads"] as? [Int], [2, 2], file: file, line: line)
        XCTAssertEqual(layout?["cross_attention_dim"] as? Int, 16, file: file, line: line)
    }

    /// A copy of the image pipeline fixture with `motion_adapter/` (the adapter fixture, its config
    /// edited by `editAdapter`) listed in model_index.json, as AnimateDiffPipeline saves one built
    /// from an image U-Net.
    private func imagePipelineWithAdapter(_ name: String, editAdapter: (inout String) -> Void = { _ in }) throws -> String {
        let copy = path(name)
        try FileManager.default.copyItem(atPath: Self.image, toPath: copy)
        try FileManager.default.copyItem(atPath: Self.motionAdapter, toPath: copy + "/motion_adapter")
        var adapterConfig = try String(contentsOfFile: copy + "/motion_adapter/config.json", encoding: .utf8)
        editAdapter(&adapterConfig)
        try adapterConfig.write(toFile: copy + "/motion_adapter/config.json", atomically: true, encoding: .utf8)
        let index = try String(contentsOfFile: copy + "/model_index.json", encoding: .utf8)
        let listed = index.replacingOccurrences(of: "\"scheduler\":", with: "\"motion_adapter\": [\"diffusers\", \"MotionAdapter\"],\n  \"scheduler\":")
        XCTAssertNotEqual(listed, index)
        try listed.write(toFile: copy + "/model_index.json", atomically: true, encoding: .utf8)
        return copy
    }

    // MARK: - Folders

    func testAnimateDiffPipelineFolderShowsLayoutMotionModulesAndParameterSplit() throws {
        let item = try inspectJSON([Self.animateDiff])[0]
        XCTAssertEqual(item["kind"] as? String, "diffusers model")
        XCTAssertEqual(item["class_name"] as? String, "AnimateDiffPipeline")
        XCTAssertEqual(item["unet_class"] as? String, "UNetMotionModel")
        let renders = try XCTUnwrap(item["renders"] as? String)
        XCTAssertTrue(renders.hasPrefix("video of 1 to 8 frames"), renders)
        assertFixtureLayout(item["layout"] as? [String: Any], down: ["CrossAttnDownBlockMotion", "DownBlockMotion"])
        assertFixtureMotionModules(item["motion_modules"] as? [String: Any])

        // The split agrees with the other fixtures: the image U-Net diffusers saved on its own, and
        // the motion modules it saved as a MotionAdapter.
        let unetWeights = Self.animateDiff + "/unet/diffusion_pytorch_model.safetensors"
        let split = try XCTUnwrap(item["parameters"] as? [String: Int])
        XCTAssertEqual(split["image_unet"], try parameters(unetWeights, motionModules: false))
        XCTAssertEqual(split["motion_modules"], try parameters(unetWeights, motionModules: true))
        XCTAssertEqual(split["image_unet"], try parameters(Self.image + "/unet/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(split["motion_modules"], try parameters(Self.motionAdapter + "/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(split, ["image_unet": 52004, "motion_modules": 29304])

        // The components are still listed, the motion keys among the configs' key facts.
        let components = try XCTUnwrap(item["components"] as? [[String: Any]])
        XCTAssertEqual(components.map { $0["name"] as? String }, ["motion_adapter", "scheduler", "text_encoder", "tokenizer", "unet", "vae"])
        let unetConfig = components.first { $0["name"] as? String == "unet" }?["config"] as? [String: Any]
        XCTAssertEqual(unetConfig?["motion_max_seq_length"] as? Int, 8)
        XCTAssertEqual(unetConfig?["use_motion_mid_block"] as? Bool, true)

        let text = try inspectText(Self.animateDiff)
        assertContains(text, ["AnimateDiffPipeline", "unet class         UNetMotionModel", "renders            video of 1 to 8 frames",
                              "motion modules:", "in blocks                     down 2, mid 1, up 4", "max frames                    8",
                              "mid block                     yes", "parameters         image unet 52004, motion modules 29304"])

        // unet/ on its own: the same layout, modules and split.
        let unet = try inspectJSON([Self.animateDiff + "/unet"])[0]
        XCTAssertEqual(unet["kind"] as? String, "diffusers component")
        assertFixtureLayout(unet["layout"] as? [String: Any], down: ["CrossAttnDownBlockMotion", "DownBlockMotion"])
        assertFixtureMotionModules(unet["motion_modules"] as? [String: Any])
        XCTAssertEqual(unet["parameters"] as? [String: Int], ["image_unet": 52004, "motion_modules": 29304])
    }

    func testImagePipelineFolderSaysPicturesOnlyAndHowToAddMotion() throws {
        let item = try inspectJSON([Self.image])[0]
        XCTAssertEqual(item["class_name"] as? String, "StableDiffusionPipeline")
        XCTAssertEqual(item["unet_class"] as? String, "UNet2DConditionModel")
        let renders = try XCTUnwrap(item["renders"] as? String)
        for expected in ["pictures only", "--frames 1", "--motion-adapter DIR"] {
            XCTAssertTrue(renders.contains(expected), renders)
        }
        // attention_head_dim 2 with num_attention_heads null: 2 heads (diffusers' naming quirk).
        assertFixtureLayout(item["layout"] as? [String: Any], down: ["CrossAttnDownBlock2D", "DownBlock2D"])
        XCTAssertNil(item["motion_modules"])
        XCTAssertEqual(item["parameters"] as? [String: Int], ["image_unet": 52004])
        assertContains(try inspectText(Self.image), ["renders            pictures only (render --frames 1)", "--motion-adapter DIR",
                                                     "parameters         image unet 52004"])

        // With motion_adapter/ beside the image U-Net, the folder renders video, as the loader joins them.
        let joined = try inspectJSON([try imagePipelineWithAdapter("joined")])[0]
        let joinedRenders = try XCTUnwrap(joined["renders"] as? String)
        XCTAssertTrue(joinedRenders.hasPrefix("video of 1 to 8 frames") && joinedRenders.contains("motion_adapter/"), joinedRenders)
        assertFixtureMotionModules(joined["motion_modules"] as? [String: Any])
        XCTAssertEqual(joined["parameters"] as? [String: Int], ["image_unet": 52004, "motion_modules": 29304])

        // An adapter that does not fit the U-Net: nothing renders, and the key is named.
        let misfit = try inspectJSON([try imagePipelineWithAdapter("misfit") {
            $0 = $0.replacingOccurrences(of: "\"motion_layers_per_block\": 1", with: "\"motion_layers_per_block\": 2")
        }])[0]
        let misfitRenders = try XCTUnwrap(misfit["renders"] as? String)
        XCTAssertTrue(misfitRenders.hasPrefix("nothing:") && misfitRenders.contains("motion_layers_per_block"), misfitRenders)
        XCTAssertNil(misfit["motion_modules"])
    }

    func testMotionAdapterFolderShowsItsModulesFramesAndParameters() throws {
        let item = try inspectJSON([Self.motionAdapter])[0]
        XCTAssertEqual(item["kind"] as? String, "diffusers component")
        assertFixtureMotionModules(item["motion_modules"] as? [String: Any])
        XCTAssertEqual(item["parameters"] as? [String: Int], ["motion_modules": 29304])
        let fits = try XCTUnwrap(item["fits"] as? String)
        XCTAssertTrue(fits.contains("block_out_channels 8, 16") && fits.contains("layers_per_block 1, 1"), fits)
        let use = try XCTUnwrap(item["use"] as? String)
        XCTAssertTrue(use.contains("--motion-adapter \(Self.motionAdapter)") && use.contains("up to 8"), use)

        let text = try inspectText(Self.motionAdapter)
        assertContains(text, ["motion modules:", "count                         7", "attention heads               2, 2",
                              "max frames                    8", "parameters  motion modules 29304", "--motion-adapter"])
    }

    /// UNet3D folders keep their description: components only, none of AnimateDiff's facts.
    func testUNet3DPipelineFolderGetsNoAnimateDiffFacts() throws {
        let item = try inspectJSON([Self.unet3D])[0]
        XCTAssertEqual(item["class_name"] as? String, "TextToVideoSDPipeline")
        XCTAssertEqual(Array(item.keys).sorted(), ["class_name", "components", "diffusers_version", "kind", "path"])
    }

    // MARK: - LoRA files

    func testLoRATargetsAreCountedByKindAndNameTheirLayout() throws {
        let report = try inspectJSON([Self.animateDiffLoRA, Self.unet3DLoRA])
        let animateDiff = try XCTUnwrap(report[0]["lora"] as? [String: Any])
        XCTAssertEqual(animateDiff["target_layers"] as? Int, 88)
        XCTAssertEqual(animateDiff["target_kinds"] as? [String: Int], ["spatial": 32, "motion": 56])
        XCTAssertTrue((animateDiff["layout"] as? String)?.hasPrefix("AnimateDiff") == true, "\(animateDiff)")
        // Alpha as diffusers' lora_adapter_metadata states it, as the adapter loader reads it.
        XCTAssertEqual(animateDiff["alpha"] as? Double, 8)
        XCTAssertEqual(animateDiff["alpha_source"] as? String, "lora_adapter_metadata")

        let unet3D = try XCTUnwrap(report[1]["lora"] as? [String: Any])
        XCTAssertEqual(unet3D["target_kinds"] as? [String: Int], ["spatial": 7, "temporal": 3])
        XCTAssertTrue((unet3D["layout"] as? String)?.hasPrefix("UNet3D") == true, "\(unet3D)")
        // lora_alpha 8, and 3 for the one module alpha_pattern names.
        XCTAssertEqual(unet3D["alpha"] as? [Double], [3, 8])

        let text = try inspectText(Self.animateDiffLoRA)
        assertContains(text, ["target kinds   spatial 32, motion 56", "layout         AnimateDiff (UNetMotionModel"])

        // kohya names (underscores for dots) count the same; spatial layers alone fit either U-Net.
        func kohya(_ name: String, _ modules: [String]) throws -> String {
            var tensors: [SafeTensors.TensorToWrite] = []
            for module in modules {
                tensors.append(.init(name: module + ".lora_down.weight", shape: [2, 4], values: .init(repeating: 0.5, count: 8)))
                tensors.append(.init(name: module + ".lora_up.weight", shape: [4, 2], values: .init(repeating: 0, count: 8)))
            }
            try SafeTensors.write(tensors, to: path(name))
            return path(name)
        }
        let spatial = try kohya("spatial.safetensors", ["lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k",
                                                        "lora_unet_up_blocks_1_resnets_0_conv1",
                                                        "lora_te_text_model_encoder_layers_0_self_attn_q_proj"])
        let motion = try kohya("motion.safetensors", ["lora_unet_down_blocks_0_motion_modules_0_transformer_blocks_0_attn1_to_q",
                                                      "lora_unet_mid_block_motion_modules_0_proj_in"])
        let mixed = try kohya("mixed.safetensors", ["lora_unet_down_blocks_0_motion_modules_0_transformer_blocks_0_attn1_to_q",
                                                    "lora_unet_transformer_in_proj_in", "lora_unet_up_blocks_0_temp_convs_1_conv1_2"])
        let textOnly = try kohya("text.safetensors", ["lora_te_text_model_encoder_layers_0_self_attn_q_proj"])
        let kinds = try inspectJSON([spatial, motion, mixed, textOnly]).map { try XCTUnwrap($0["lora"] as? [String: Any]) }
        XCTAssertEqual(kinds.map { $0["target_kinds"] as? [String: Int] },
                       [["spatial": 2, "text_encoder": 1], ["motion": 2], ["motion": 1, "temporal": 2], ["text_encoder": 1]])
        XCTAssertEqual(kinds.map { ($0["layout"] as? String)?.split(separator: " ").prefix(2).joined(separator: " ") },
                       ["either (spatial", "AnimateDiff (UNetMotionModel:", "neither layout", "no U-Net"])
        assertContains(try inspectText(spatial), ["target kinds   spatial 2, text encoder 1", "layout         either (spatial layers only"])
    }
}
