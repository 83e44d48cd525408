import Checkpoints
import Foundation
import Models
import Tensor
import XCTest
@testable import Diffusion

/// Reading and writing diffusers pipeline folders: errors that name what is missing or
/// unsupported, and save → load round trips in each stored precision.
final class DiffusersFolderTests: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("folder-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// A copy of the fixture pipeline folder to break.
    func copyOfFixture() throws -> String {
        let copy = scratch.appendingPathComponent("pipeline").path
        try FileManager.default.copyItem(atPath: PipelineTests.folder, toPath: copy)
        return copy
    }

    func testMissingFolderIndexComponentAndFileAreNamed() throws {
        let absent = scratch.appendingPathComponent("nothing-here").path
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: absent)) { error in
            guard case let ModelError.missingComponent(folder, component) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(folder, absent)
            XCTAssertTrue(component.contains("model_index.json"), component)
        }

        let folder = try copyOfFixture()
        try FileManager.default.removeItem(atPath: folder + "/vae")
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: folder)) { error in
            guard case let ModelError.missingComponent(where_, component) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(where_, folder)
            XCTAssertTrue(component.hasPrefix("vae/"), component)
        }

        let second = scratch.appendingPathComponent("second").path
        try FileManager.default.copyItem(atPath: PipelineTests.folder, toPath: second)
        try FileManager.default.removeItem(atPath: second + "/text_encoder/model.safetensors")
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: second)) { error in
            guard case let ModelError.missingComponent(where_, component) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(where_, second + "/text_encoder")
            XCTAssertEqual(component, "model.safetensors")
            XCTAssertTrue("\(error)".contains("text_encoder: missing model.safetensors"), "\(error)")
        }

        // A component model_index.json does not list.
        var index = try ModelIndex.decode(Data(contentsOf: URL(fileURLWithPath: second + "/model_index.json")), file: "model_index.json")
        index.components["unet"] = nil
        try index.encoded().write(to: URL(fileURLWithPath: second + "/model_index.json"))
        XCTAssertThrowsError(try DiffusersFolder(path: second).loadUNet()) { error in
            guard case let ModelError.missingComponent(_, component) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(component.hasPrefix("unet"), component)
        }
    }

    func testUnsupportedBlockTypeNamesFileAndKey() throws {
        let folder = try copyOfFixture()
        let configPath = folder + "/unet/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        config["down_block_types"] = ["CrossAttnDownBlock3D", "DownBlockMotion"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        XCTAssertThrowsError(try TextToVideoPipeline.load(folder: folder)) { error in
            guard case let ModelError.badConfig(file, key, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, configPath)
            XCTAssertEqual(key, "down_block_types")
            XCTAssertTrue(reason.contains("DownBlockMotion"), reason)
        }
    }

    func testUnsupportedComponentClassNamesModelIndex() throws {
        let folder = try copyOfFixture()
        var index = try DiffusersFolder(path: folder).index
        index.components["unet"] = .init(library: "diffusers", className: "UNetSpatioTemporalConditionModel")
        try index.encoded().write(to: URL(fileURLWithPath: folder + "/model_index.json"))
        XCTAssertThrowsError(try DiffusersFolder(path: folder).loadUNet()) { error in
            guard case let ModelError.badConfig(file, key, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, folder + "/model_index.json")
            XCTAssertEqual(key, "unet")
            XCTAssertTrue(reason.contains("UNetSpatioTemporalConditionModel") && reason.contains("UNetMotionModel"), reason)
        }
        // The index's class decides: a UNet3D config under an image U-Net's name is refused by that class's rules.
        index.components["unet"] = .init(library: "diffusers", className: "UNet2DConditionModel")
        try index.encoded().write(to: URL(fileURLWithPath: folder + "/model_index.json"))
        XCTAssertThrowsError(try DiffusersFolder(path: folder).loadUNet()) { error in
            guard case let ModelError.badConfig(file, key, reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, folder + "/unet/config.json")
            XCTAssertEqual(key, "down_block_types")
            XCTAssertTrue(reason.contains("CrossAttnDownBlock3D"), reason)
        }
    }

    func testWeightsThatDoNotFitAreOneErrorListingEverything() throws {
        let folder = try copyOfFixture()
        let weightsPath = folder + "/vae/diffusion_pytorch_model.safetensors"
        let original = try SafeTensorsFile(path: weightsPath)
        var tensors: [SafeTensors.TensorToWrite] = []
        for name in original.names where name != "decoder.conv_out.bias" {
            let shape = name == "encoder.conv_in.weight" ? [1] : original.entries[name]!.shape
            let values = name == "encoder.conv_in.weight" ? [0] : try original.floats(name)
            tensors.append(.init(name: name, shape: shape, values: values, dtype: .f16))
        }
        tensors.append(.init(name: "decoder.extra.weight", shape: [1], values: [0]))
        try SafeTensors.write(tensors, to: weightsPath)
        XCTAssertThrowsError(try DiffusersFolder(path: folder).loadVAE()) { error in
            guard case let ModelError.weightsMismatch(file, missing, unexpected, shapes) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, weightsPath)
            XCTAssertEqual(missing, ["decoder.conv_out.bias"])
            XCTAssertEqual(unexpected, ["decoder.extra.weight"])
            XCTAssertEqual(shapes.map(\.key), ["encoder.conv_in.weight"])
        }
    }

    func roundTrip(_ dtype: SafeTensors.DType) throws {
        let pipeline = try TextToVideoPipeline.load(folder: PipelineTests.folder)
        let saved = scratch.appendingPathComponent("saved-\(dtype.rawValue)").path
        try pipeline.save(to: saved, dtype: dtype)
        for file in ["unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"] {
            let weights = try SafeTensorsFile(path: saved + "/" + file)
            XCTAssertTrue(weights.entries.values.allSatisfy { $0.dtype == dtype }, file)
        }
        XCTAssertTrue(try SafeTensorsFile(path: saved + "/text_encoder/model.safetensors").names.allSatisfy { $0.hasPrefix("text_model.") })
        let index = try DiffusersFolder(path: saved).index
        XCTAssertEqual(index.className, "TextToVideoSDPipeline")
        XCTAssertEqual(index.components["scheduler"], .init(library: "diffusers", className: "DDIMScheduler"))
        XCTAssertEqual(index.components["text_encoder"], .init(library: "transformers", className: "CLIPTextModel"))

        let loaded = try TextToVideoPipeline.load(folder: saved)
        XCTAssertEqual(loaded.unet.blockOutChannels, pipeline.unet.blockOutChannels)
        XCTAssertEqual(loaded.vae.config.scalingFactor, pipeline.vae.config.scalingFactor)
        XCTAssertEqual(loaded.textEncoder.config, {
            var config = pipeline.textEncoder.config
            config.transformersVersion = DiffusersFolderWriter.transformersVersion
            return config
        }())
        XCTAssertEqual(loaded.schedulerConfig, pipeline.schedulerConfig)
        XCTAssertEqual(loaded.tokenizer.maxLength, 16)
        // transformers 5 refuses an integer in a float field: whole floats are written as 1.0.
        let textJSON = try String(contentsOfFile: saved + "/text_encoder/config.json", encoding: .utf8)
        let written = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(textJSON.utf8)) as? [String: Any])
        XCTAssertEqual((written["initializer_factor"] as? NSNumber)?.doubleValue, Double(pipeline.textEncoder.config.initializerFactor))
        for key in ["initializer_factor", "initializer_range", "layer_norm_eps", "attention_dropout"] {
            let line = try XCTUnwrap(textJSON.split(separator: "\n").first { $0.contains("\"\(key)\"") }, key)
            XCTAssertTrue(line.contains(".") || line.contains("e-"), "\(key) is written as an integer: \(line)")
        }
        // The fixture's weights are F16 values: F16 and F32 keep them exactly, BF16 rounds them.
        for (module, original) in [(loaded.unet as Module, pipeline.unet as Module), (loaded.vae, pipeline.vae), (loaded.textEncoder, pipeline.textEncoder)] {
            let reloaded = Dictionary(uniqueKeysWithValues: module.stateDict())
            for (key, tensor) in original.stateDict() {
                let values = try XCTUnwrap(reloaded[key], key).values
                if dtype == .bf16 {
                    let worst = zip(values, tensor.values).map { abs($0 - $1) / max(abs($1), 1e-6) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst, 1.0 / 256, key)
                } else {
                    XCTAssertEqual(values, tensor.values, key)
                }
            }
        }
    }

    func testF32RoundTrip() throws { try roundTrip(.f32) }
    func testF16RoundTrip() throws { try roundTrip(.f16) }
    func testBF16RoundTrip() throws { try roundTrip(.bf16) }

    func testSavingRefusesANonEmptyFolderUnlessAskedAndLeavesNoTemporaryFolder() throws {
        let pipeline = try TextToVideoPipeline.load(folder: PipelineTests.folder)
        let target = scratch.appendingPathComponent("model").path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        try pipeline.save(to: target, dtype: .f16)  // an empty folder is fine
        XCTAssertThrowsError(try pipeline.save(to: target, dtype: .f16)) { error in
            XCTAssertTrue("\(error)".contains(target), "\(error)")
            XCTAssertTrue("\(error)".contains("not empty"), "\(error)")
        }
        try pipeline.save(to: target, dtype: .bf16, overwrite: true)
        let entry = try SafeTensorsFile(path: target + "/unet/diffusion_pytorch_model.safetensors").entries.values.first!
        XCTAssertEqual(entry.dtype, .bf16)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted(), ["model"])

        // An unwritable destination fails before anything appears.
        XCTAssertThrowsError(try pipeline.save(to: scratch.appendingPathComponent("no/such/parent").path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted(), ["model"])
    }
}
