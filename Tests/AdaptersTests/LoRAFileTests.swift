import Checkpoints
import Foundation
import Models
import Tensor
import XCTest
@testable import Adapters

/// Saving and loading adapters: PEFT round trips, kohya and older diffusers keys, files that do not
/// fit, and the cross-check against a LoRA saved by diffusers/PEFT.
final class LoRAFileTests: XCTestCase {
    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: Support.temporaryFolder)
        super.tearDown()
    }

    func visibleSet(_ model: UNet3DConditionModel) throws -> AdapterSet {
        let set = AdapterSet(model: model)
        try set.inject("motion", config: LoRAConfig(rank: 4, alpha: 8, useRSLoRA: true, dropout: 0.1),
                       targets: ModulePattern.motionDirectorTemporal + ["*.temp_convs.*.conv1.*", "*.resnets.*.conv1"],
                       generator: RandomGenerator(seed: 11))
        for (index, lora) in try set.loras(of: "motion").enumerated() { Support.fill(lora.up, seed: UInt64(100 + index), scale: 0.2) }
        return set
    }

    func testPEFTRoundTripInF32ReproducesOutputsAndMetadata() throws {
        let model = try Support.fixtureUNet()
        let set = try visibleSet(model)
        try set.setMultiplier(0.8, for: "motion")
        let expected = try Support.run(model).values
        let path = Support.temporaryPath("motion-f32.safetensors")
        let identity = try BaseModelIdentity(name: "tiny", unetConfig: UNet3DConfig.load(path: Support.fixture("unet3d", "config.json")))
        try set.save("motion", to: path, metadata: LoRAFileMetadata(
            method: "motiondirector-temporal", baseModel: identity,
            training: ["steps": 300, "learning_rate": 5e-4, "spatial": "per-clip", "flip": true]))

        let file = try SafeTensorsFile(path: path)
        XCTAssertTrue(file.names.contains("unet.transformer_in.transformer_blocks.0.attn1.to_q.lora_A.weight"))
        XCTAssertTrue(file.names.contains("unet.down_blocks.0.temp_convs.0.conv1.2.lora_B.weight"))
        XCTAssertEqual(file.entries["unet.down_blocks.0.temp_convs.0.conv1.2.lora_A.weight"]?.shape, [4, 16, 3, 1, 1])
        XCTAssertEqual(file.names.count, try set.parameters(of: "motion").count)
        XCTAssertEqual(file.metadata["format"], "pt")
        let peft = try XCTUnwrap(JSONValue.decode(file.metadata["lora_adapter_metadata"]!)?.object)
        XCTAssertEqual(peft["unet.r"], 4)
        XCTAssertEqual(peft["unet.lora_alpha"], 8)
        XCTAssertEqual(peft["unet.use_rslora"], true)

        let metadata = LoRAFileMetadata(raw: file.metadata)
        XCTAssertEqual(metadata.method, "motiondirector-temporal")
        XCTAssertEqual(metadata.baseModel, identity)
        XCTAssertEqual(metadata.rank, 4)
        XCTAssertEqual(metadata.alpha, 8)
        XCTAssertEqual(metadata.training["steps"], 300)
        XCTAssertEqual(metadata.training["flip"], true)
        XCTAssertTrue(metadata.targetModules.contains("*.temp_convs.*.conv1.*"))

        let fresh = try Support.fixtureUNet()
        let loaded = AdapterSet(model: fresh)
        let report = try loaded.load(path, as: "motion", multiplier: 0.8, expectedBaseModel: identity)
        XCTAssertEqual(report.formats, [.peft])
        XCTAssertEqual(report.modulePaths, try set.loras(of: "motion").map(\.modulePath))
        XCTAssertEqual(report.alphaSources, ["lora_adapter_metadata"])
        XCTAssertNil(report.baseModelMismatch)
        XCTAssertTrue(try loaded.loras(of: "motion").allSatisfy { $0.useRSLoRA && $0.alpha == 8 && !$0.isTrainable })
        XCTAssertEqual(try Support.run(fresh).values, expected, "F32 round trip: identical factors, identical output")

        let other = BaseModelIdentity(name: "other", unetConfigSHA256: String(repeating: "0", count: 64))
        let second = AdapterSet(model: try Support.fixtureUNet())
        XCTAssertNotNil(try second.load(path, as: "motion", expectedBaseModel: other).baseModelMismatch)
    }

    func testPEFTRoundTripInF16KeepsFactorsToHalfPrecision() throws {
        let model = try Support.fixtureUNet()
        let set = try visibleSet(model)
        let expected = try Support.run(model).values
        let path = Support.temporaryPath("motion-f16.safetensors")
        try set.save("motion", to: path, dtype: .f16)
        XCTAssertEqual(try SafeTensorsFile(path: path).entries.values.map(\.dtype.rawValue).filter { $0 != "F16" }, [])

        let fresh = try Support.fixtureUNet()
        let loaded = AdapterSet(model: fresh)
        try loaded.load(path, as: "motion")
        for (original, copy) in zip(try set.loras(of: "motion"), try loaded.loras(of: "motion")) {
            XCTAssertEqual(copy.modulePath, original.modulePath)
            let rounded = original.up.values.map { Precision.floatFromF16Bits(Precision.f16Bits(from: $0)) }
            XCTAssertEqual(copy.up.values, rounded)
        }
        Support.assertClose(try Support.run(fresh).values, expected, tolerance: 2e-3, "F16 round trip")
    }

    func testTextEncoderAdaptersArePrefixedAndIgnoredByTheUNet() throws {
        let encoder = Module()
        let layer = encoder.child("text_model", Module()).child("q_proj", Linear(4, 4))
        Support.fill(layer.weight, seed: 1)
        let textSet = AdapterSet(model: encoder, component: "text_encoder")
        try textSet.inject("concept", config: LoRAConfig(rank: 2), targets: ["*.q_proj"], generator: RandomGenerator(seed: 2))
        let unetSet = AdapterSet(model: try Support.fixtureUNet())
        try unetSet.inject("concept", config: LoRAConfig(rank: 2), targets: ["*.attn1.to_q"], generator: RandomGenerator(seed: 3))
        let path = Support.temporaryPath("both.safetensors")
        try LoRAFileWriter.write([(unetSet, "concept"), (textSet, "concept")], metadata: LoRAFileMetadata(method: "lora"), to: path)
        let names = try SafeTensorsFile(path: path).names
        XCTAssertTrue(names.contains("text_encoder.text_model.q_proj.lora_A.weight"))
        XCTAssertTrue(names.contains { $0.hasPrefix("unet.") })

        let report = try AdapterSet(model: try Support.fixtureUNet()).load(path, as: "concept")
        XCTAssertEqual(report.otherComponentTensors.sorted(), ["text_encoder.text_model.q_proj.lora_A.weight", "text_encoder.text_model.q_proj.lora_B.weight"])
        XCTAssertEqual(report.modulePaths.count, 9, "to_q of attn1 in 4 spatial and 5 temporal transformers")
        let encoderCopy = Module()
        encoderCopy.child("text_model", Module()).child("q_proj", Linear(4, 4))
        let textReport = try AdapterSet(model: encoderCopy, component: "text_encoder").load(path, as: "concept")
        XCTAssertEqual(textReport.modulePaths, ["text_model.q_proj"])
    }

    /// The component of a tensor name, as the loaders split a pipeline's file.
    func testTensorNamesTellTheirComponent() {
        XCTAssertEqual(LoRATensorName.component(of: "text_encoder.text_model.q_proj.lora_A.weight"), "text_encoder")
        XCTAssertEqual(LoRATensorName.component(of: "unet.down_blocks.0.attn1.to_q.lora_B.weight"), "unet")
        XCTAssertEqual(LoRATensorName.component(of: "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"), "text_encoder")
        XCTAssertEqual(LoRATensorName.component(of: "lora_te2_text_model_q_proj.lora_up.weight"), "text_encoder_2")
        XCTAssertNil(LoRATensorName.component(of: "down_blocks.0.attn1.to_q.lora_A.weight"))
        XCTAssertNil(LoRATensorName.component(of: "unet.down_blocks.0.attn1.to_q.weight"), "not a LoRA tensor")
    }

    /// A kohya-ss file built here: underscore-joined names, `lora_down`/`lora_up`, scalar `.alpha`.
    func testKohyaFileLoadsOntoTheSameModules() throws {
        let modules: [(path: String, down: [Int], up: [Int], alpha: Float)] = [
            ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", [2, 16], [16, 2], 1),
            ("mid_block.temp_attentions.0.transformer_blocks.0.ff.net.0.proj", [3, 32], [256, 3], 6),
            ("down_blocks.0.resnets.0.conv1", [2, 16, 3, 3], [16, 2, 1, 1], 4),
            ("up_blocks.0.temp_convs.1.conv4.3", [2, 32, 3, 1, 1], [32, 2, 1, 1, 1], 2),
            ("conv_in", [2, 4, 3, 3], [16, 2, 1, 1], 2),
        ]
        var tensors: [SafeTensors.TensorToWrite] = []
        for (index, module) in modules.enumerated() {
            let name = "lora_unet_" + module.path.replacingOccurrences(of: ".", with: "_")
            tensors.append(.init(name: name + ".lora_down.weight", shape: module.down,
                                 values: Support.values(module.down.reduce(1, *), seed: UInt64(10 * index + 1)), dtype: .f16))
            tensors.append(.init(name: name + ".lora_up.weight", shape: module.up,
                                 values: Support.values(module.up.reduce(1, *), seed: UInt64(10 * index + 2)).map { $0 * 0.2 }, dtype: .f16))
            tensors.append(.init(name: name + ".alpha", shape: [], values: [module.alpha]))
        }
        let path = Support.temporaryPath("kohya.safetensors")
        try SafeTensors.write(tensors, metadata: ["ss_network_dim": "2"], to: path)

        let model = try Support.fixtureUNet()
        let set = AdapterSet(model: model)
        let report = try set.load(path, as: "kohya", multiplier: 0.9)
        XCTAssertEqual(report.formats, [.kohya])
        XCTAssertEqual(Set(report.modulePaths), Set(modules.map(\.path)))
        XCTAssertEqual(report.alphaSources, ["alpha tensors"])
        let kohyaOutput = try Support.run(model).values

        // The same factors attached by hand give the same output.
        let file = try SafeTensorsFile(path: path)
        let reference = try Support.fixtureUNet()
        let referenceSet = AdapterSet(model: reference)
        var loras: [LoRA] = []
        for module in modules {
            let name = "lora_unet_" + module.path.replacingOccurrences(of: ".", with: "_")
            let layer = try XCTUnwrap(referenceSet.adaptableLayers.first { $0.path == module.path }?.layer)
            loras.append(try LoRA(adapterName: "hand", modulePath: module.path, geometry: layer.geometry, alpha: module.alpha,
                                  down: Support.tensor(file, name + ".lora_down.weight"), up: Support.tensor(file, name + ".lora_up.weight")))
            let loaded = try XCTUnwrap(set.loras(of: "kohya").first { $0.modulePath == module.path })
            XCTAssertEqual(loaded.alpha, module.alpha)
            XCTAssertEqual(loaded.rank, module.down[0])
        }
        try referenceSet.add("hand", loras: loras, multiplier: 0.9)
        XCTAssertEqual(try Support.run(reference).values, kohyaOutput)
        let base = try Support.run(try Support.fixtureUNet()).values
        XCTAssertNotEqual(kohyaOutput, base)
    }

    func testOlderDiffusersKeysLoad() throws {
        let attention = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
        let tensors: [SafeTensors.TensorToWrite] = [
            .init(name: "\(attention).processor.to_out_lora.down.weight", shape: [2, 16], values: Support.values(32, seed: 1)),
            .init(name: "\(attention).processor.to_out_lora.up.weight", shape: [16, 2], values: Support.values(32, seed: 2)),
            .init(name: "unet.mid_block.attentions.0.proj_in.lora.down.weight", shape: [2, 32], values: Support.values(64, seed: 3)),
            .init(name: "unet.mid_block.attentions.0.proj_in.lora.up.weight", shape: [32, 2], values: Support.values(64, seed: 4)),
            .init(name: "base_model.model.conv_out.lora_A.default.weight", shape: [1, 16, 3, 3], values: Support.values(144, seed: 5)),
            .init(name: "base_model.model.conv_out.lora_B.default.weight", shape: [4, 1, 1, 1], values: Support.values(4, seed: 6)),
        ]
        let path = Support.temporaryPath("diffusers-old.safetensors")
        try SafeTensors.write(tensors, to: path)
        let set = AdapterSet(model: try Support.fixtureUNet())
        let report = try set.load(path, as: "old")
        XCTAssertEqual(Set(report.modulePaths), ["\(attention).to_out.0", "mid_block.attentions.0.proj_in", "conv_out"])
        XCTAssertEqual(report.formats, [.peft, .diffusers])
        XCTAssertEqual(report.alphaSources, ["rank (no alpha stored)"])
        XCTAssertTrue(try set.loras(of: "old").allSatisfy { $0.scale == 1 })
    }

    func testFileThatDoesNotFitFailsWithOneListingAndLoadsPartially() throws {
        let good = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
        let tensors: [SafeTensors.TensorToWrite] = [
            .init(name: "unet.\(good).lora_A.weight", shape: [2, 16], values: Support.values(32, seed: 1)),
            .init(name: "unet.\(good).lora_B.weight", shape: [16, 2], values: Support.values(32, seed: 2)),
            // unknown module
            .init(name: "unet.down_blocks.7.attn.to_q.lora_A.weight", shape: [2, 16], values: Support.values(32, seed: 3)),
            .init(name: "unet.down_blocks.7.attn.to_q.lora_B.weight", shape: [16, 2], values: Support.values(32, seed: 4)),
            // wrong shapes (to_k takes 16 inputs, not 24)
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.lora_A.weight", shape: [2, 24], values: Support.values(48, seed: 5)),
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.lora_B.weight", shape: [16, 2], values: Support.values(32, seed: 6)),
            // rank mismatch between A and B
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora_A.weight", shape: [2, 16], values: Support.values(32, seed: 7)),
            .init(name: "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.lora_B.weight", shape: [16, 3], values: Support.values(48, seed: 8)),
            // B without A
            .init(name: "unet.mid_block.attentions.0.proj_out.lora_B.weight", shape: [32, 2], values: Support.values(64, seed: 9)),
            // not an adaptable layer (GroupNorm)
            .init(name: "unet.conv_norm_out.lora_A.weight", shape: [2, 16], values: Support.values(32, seed: 10)),
            .init(name: "unet.conv_norm_out.lora_B.weight", shape: [16, 2], values: Support.values(32, seed: 11)),
            // not a LoRA name at all
            .init(name: "unet.conv_in.weight", shape: [2], values: [1, 2]),
            // kohya name that resolves to nothing
            .init(name: "lora_unet_down_blocks_9_conv.lora_down.weight", shape: [2, 4], values: Support.values(8, seed: 12)),
            // an alpha alone
            .init(name: "unet.conv_out.alpha", shape: [], values: [4]),
        ]
        let path = Support.temporaryPath("misfit.safetensors")
        try SafeTensors.write(tensors, to: path)
        let model = try Support.fixtureUNet()
        let set = AdapterSet(model: model)
        XCTAssertThrowsError(try set.load(path, as: "misfit")) { error in
            guard case let AdapterError.incompatibleFile(file, problems) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, path)
            XCTAssertEqual(problems.count, 8, "\(problems)")
            let text = "\(error)"
            for fragment in ["down_blocks.7.attn.to_q", "attn1.to_k: shapes do not fit", "[2, 24]", "attn1.to_v: rank mismatch",
                             "proj_out: lora_B (up) without lora_A", "conv_norm_out: the module is a GroupNorm",
                             "unet.conv_in.weight: not a LoRA tensor name", "down_blocks_9_conv", "conv_out: alpha without lora_A",
                             "allow-partial"] {
                XCTAssertTrue(text.contains(fragment), "missing \(fragment) in:\n\(text)")
            }
        }
        XCTAssertEqual(set.adapterNames, [], "nothing attached after a failed load")
        XCTAssertTrue(model.namedModules().compactMap { ($0.module as? Linear)?.deltas }.allSatisfy(\.isEmpty))

        let report = try set.load(path, as: "misfit", allowPartial: true)
        XCTAssertEqual(report.modulePaths, [good])
        XCTAssertEqual(report.skipped.count, 8)
        XCTAssertEqual((model.module(at: good) as? Linear)?.deltas.count, 1)
    }

    func testEmptyOrForeignFilesFail() throws {
        let path = Support.temporaryPath("text-only.safetensors")
        try SafeTensors.write([.init(name: "text_encoder.x.lora_A.weight", shape: [1, 2], values: [1, 2])], to: path)
        XCTAssertThrowsError(try AdapterSet(model: try Support.fixtureUNet()).load(path, as: "t", allowPartial: true)) { error in
            XCTAssertTrue("\(error)".contains("no tensors for the unet"), "\(error)")
        }
    }

    /// A LoRA made by PEFT through diffusers (Tests/Fixtures/fixtures_lora.py) on linear layers, 3×3,
    /// strided and 1×1 convolutions and a temporal Conv3d, with a rank and an alpha pattern:
    /// the U-Net output with it active matches PyTorch's.
    func testPEFTFixtureMatchesDiffusers() throws {
        let model = try Support.fixtureUNet()
        let set = AdapterSet(model: model)
        let report = try set.load(Support.fixture("lora", "peft_lora.safetensors"), as: "peft")
        XCTAssertEqual(report.modulePaths.count, 10)
        let loras = try set.loras(of: "peft")
        XCTAssertEqual(loras.first { $0.modulePath == "conv_in" }?.rank, 2)
        XCTAssertEqual(loras.first { $0.modulePath == "conv_in" }?.scale, 4)
        XCTAssertEqual(loras.first { $0.modulePath == "mid_block.attentions.0.transformer_blocks.0.ff.net.2" }?.alpha, 3)
        XCTAssertTrue(loras.contains { $0.geometry == .conv3dTemporal(inChannels: 16, outChannels: 16, kernelFrames: 3) })
        let io = try SafeTensorsFile(path: Support.fixture("lora", "peft_lora_io.safetensors"))
        let expected = try Support.tensor(io, "output_f3").values
        let output = try Support.run(model)
        Support.assertClose(output.values, expected, tolerance: 1e-4, "U-Net with PEFT LoRA vs diffusers")

        // Merged, the output is the same within float tolerance; unmerged, the weights are the originals.
        let originals = model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }
        try set.merge()
        Support.assertClose(try Support.run(model).values, expected, tolerance: 1e-4, "merged PEFT LoRA vs diffusers")
        try set.unmerge()
        XCTAssertEqual(model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }, originals)
    }

    func testSHA256KnownDigestsAndBaseModelIdentity() throws {
        XCTAssertEqual(SHA256.hexDigest(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hexDigest([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hexDigest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var config = UNet3DConfig(blockOutChannels: [16, 32], layersPerBlock: 1, normNumGroups: 8, crossAttentionDim: 16, attentionHeadDim: 8)
        let first = try BaseModelIdentity(name: "m", unetConfig: config)
        config.diffusersVersion = "0.42.1"
        XCTAssertEqual(try BaseModelIdentity(name: "m", unetConfig: config), first, "the diffusers version does not count")
        config.layersPerBlock = 2
        XCTAssertNotEqual(try BaseModelIdentity(name: "m", unetConfig: config).unetConfigSHA256, first.unetConfigSHA256)
    }
}
