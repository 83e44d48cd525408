import Foundation
import Models
import Tensor
import XCTest

/// Other layouts build and run; unsupported configs and mismatched weights fail with named keys.
final class ModelConfigTests: XCTestCase {
    func testAnotherUNetLayoutBuildsAndRuns() throws {
        var config = UNet3DConfig(blockOutChannels: [16, 16, 32], layersPerBlock: 2, normNumGroups: 4,
                                  crossAttentionDim: 12, attentionHeadDim: 4)
        config.downBlockTypes = ["CrossAttnDownBlock3D", "DownBlock3D", "CrossAttnDownBlock3D"]
        config.upBlockTypes = ["CrossAttnUpBlock3D", "UpBlock3D", "CrossAttnUpBlock3D"]
        let model = try UNet3DConditionModel(config: config)
        ModelFixtures.randomise(model, seed: 7)
        var generator = RandomGenerator(seed: 3)
        let sample = generator.normal([1, 4, 2, 8, 8])
        let text = generator.normal([1, 3, 12])
        let output = try model(sample: sample, timesteps: [500], encoderHiddenStates: text)
        XCTAssertEqual(output.shape, [1, 4, 2, 8, 8])
        XCTAssertTrue(output.values.allSatisfy { $0.isFinite })
        XCTAssertGreaterThan(output.values.map(abs).max() ?? 0, 0)
        // layers_per_block 2 → up blocks have 3 resnets; block 2 is a cross-attention down block.
        XCTAssertNotNil(model.module(at: "up_blocks.2.resnets.2"))
        XCTAssertNotNil(model.module(at: "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k"))
        XCTAssertNil(model.module(at: "down_blocks.1.attentions"))
    }

    func testAnotherVAELayoutBuildsAndRuns() throws {
        var config = AutoencoderKLConfig(blockOutChannels: [8, 16, 16], layersPerBlock: 2, latentChannels: 3, normNumGroups: 4)
        config.usePostQuantConv = false
        let model = try AutoencoderKL(config: config)
        XCTAssertNil(model.module(at: "post_quant_conv"))
        ModelFixtures.randomise(model, seed: 9)
        var generator = RandomGenerator(seed: 1)
        let (mean, logvar) = try model.encode(generator.uniform([1, 3, 16, 16], low: -1, high: 1))
        XCTAssertEqual(mean.shape, [1, 3, 4, 4])
        XCTAssertEqual(logvar.shape, [1, 3, 4, 4])
        let decoded = try model.decode(mean)
        XCTAssertEqual(decoded.shape, [1, 3, 16, 16])
    }

    func testUnsupportedConfigNamesTheKey() throws {
        func badKey(_ json: String) -> String? {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("unet-config-\(UUID().uuidString).json")
            try? json.write(to: url, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: url) }
            do {
                _ = try UNet3DConfig.load(path: url.path)
                return nil
            } catch ModelError.badConfig(let file, let key, _) {
                XCTAssertEqual(file, url.path)
                return key
            } catch {
                XCTFail("unexpected error \(error)")
                return nil
            }
        }
        XCTAssertEqual(badKey(#"{"down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"], "up_block_types": ["UpBlock3D", "AttnUpBlock3D"], "block_out_channels": [32, 64]}"#), "up_block_types")
        XCTAssertEqual(badKey(#"{"num_attention_heads": 8}"#), "num_attention_heads")
        XCTAssertEqual(badKey(#"{"act_fn": "gelu"}"#), "act_fn")
        XCTAssertEqual(badKey(#"{"block_out_channels": "wide"}"#), "block_out_channels")
        XCTAssertEqual(badKey(#"{"block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": 48}"#), "attention_head_dim")
        // Absent keys take diffusers' defaults.
        XCTAssertNil(badKey("{}"))
        let defaults = try JSONDecoder().decode(UNet3DConfig.self, from: Data("{}".utf8))
        XCTAssertEqual(defaults.blockOutChannels, [320, 640, 1280, 1280])
        XCTAssertEqual(defaults.crossAttentionDim, 1024)
        XCTAssertEqual(defaults.attentionHeadDim, .single(64))
        XCTAssertEqual(defaults.normNumGroups, 32)
    }

    func testMismatchedWeightsListEveryProblemAtOnce() throws {
        let model = try AutoencoderKL(config: AutoencoderKLConfig(blockOutChannels: [8], normNumGroups: 4))
        var tensors: [String: Tensor] = [:]
        for (key, tensor) in model.stateDict() { tensors[key] = Tensor(repeating: 0.5, shape: tensor.shape) }
        tensors["encoder.conv_in.bias"] = nil
        tensors["decoder.conv_out.weight"] = Tensor(zeros: [3, 8, 1, 1])
        tensors["decoder.extra.weight"] = Tensor(zeros: [2])
        let before = model.encoder.convIn.weight.values
        do {
            try model.loadWeights(from: InMemoryWeights(tensors, location: "vae.safetensors"))
            XCTFail("loading mismatched weights succeeded")
        } catch ModelError.weightsMismatch(let file, let missing, let unexpected, let shapes) {
            XCTAssertEqual(file, "vae.safetensors")
            XCTAssertEqual(missing, ["encoder.conv_in.bias"])
            XCTAssertEqual(unexpected, ["decoder.extra.weight"])
            XCTAssertEqual(shapes.map(\.key), ["decoder.conv_out.weight"])
            XCTAssertEqual(shapes.first?.expected, [3, 8, 3, 3])
            XCTAssertEqual(shapes.first?.found, [3, 8, 1, 1])
        }
        XCTAssertEqual(model.encoder.convIn.weight.values, before, "a failed load must not change the model")
    }

    func testLegacyVAEAttentionNamesLoad() throws {
        let model = try AutoencoderKL(config: AutoencoderKLConfig(blockOutChannels: [8], normNumGroups: 4))
        var tensors: [String: Tensor] = [:]
        for (key, tensor) in model.stateDict() { tensors[key] = Tensor(repeating: 0.25, shape: tensor.shape) }
        let legacy = ["to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"]
        for (modern, old) in legacy {
            let weightKey = "encoder.mid_block.attentions.0.\(modern).weight"
            tensors[weightKey] = nil
            // Old checkpoints converted from LDM stored these as 1×1 convolutions.
            tensors["encoder.mid_block.attentions.0.\(old).weight"] = Tensor(repeating: 2, shape: [8, 8, 1, 1])
            let biasKey = "encoder.mid_block.attentions.0.\(modern).bias"
            tensors["encoder.mid_block.attentions.0.\(old).bias"] = tensors.removeValue(forKey: biasKey)
        }
        try model.loadWeights(from: InMemoryWeights(tensors))
        let attention = try XCTUnwrap(model.module(at: "encoder.mid_block.attentions.0") as? Attention)
        XCTAssertEqual(Set(attention.toQ.weight.values), [2])
        XCTAssertEqual(Set(attention.toOut.weight.values), [2])
        XCTAssertEqual(Set(attention.toOut.bias!.values), [0.25])
    }

    func testLoadWithPrefixIgnoresOtherComponents() throws {
        let model = try AutoencoderKL(config: AutoencoderKLConfig(blockOutChannels: [8], normNumGroups: 4))
        var tensors: [String: Tensor] = ["unet.conv_in.weight": Tensor(zeros: [1])]
        for (key, tensor) in model.stateDict() { tensors["vae." + key] = Tensor(repeating: 0.75, shape: tensor.shape) }
        try model.loadWeights(from: InMemoryWeights(tensors), prefix: "vae.")
        XCTAssertEqual(Set(model.decoder.convOut.weight.values), [0.75])
    }
}
