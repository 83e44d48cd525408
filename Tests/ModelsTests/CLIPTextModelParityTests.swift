import Checkpoints
import Models
import Tensor
import XCTest

/// CLIPTextModel against transformers on the tiny random-weight fixture of fixtures_clip.py.
final class CLIPTextModelParityTests: XCTestCase {
    func loadFixtureModel() throws -> CLIPTextModel {
        let configPath = ModelFixtures.path("clip_text", "config.json")
        let model = try CLIPTextModel(config: CLIPTextConfig.load(path: configPath), file: configPath)
        try model.loadCheckpoint(from: SafeTensorsFile(path: ModelFixtures.path("clip_text", "model.safetensors")))
        return model
    }

    func ids(_ io: SafeTensorsFile, _ name: String) throws -> [[Int]] {
        let tensor = try ModelFixtures.tensor(io, name)
        let values = tensor.values.map { Int($0) }
        return stride(from: 0, to: values.count, by: tensor.shape[1]).map { Array(values[$0 ..< $0 + tensor.shape[1]]) }
    }

    func check(_ name: String) throws {
        let model = try loadFixtureModel()
        let io = try SafeTensorsFile(path: ModelFixtures.path("clip_text", "io.safetensors"))
        let input = try ids(io, "input_ids_\(name)")
        let hidden = try model(input)
        ModelFixtures.assertClose(hidden, try ModelFixtures.tensor(io, "last_hidden_state_\(name)"), "last_hidden_state (\(name))")
        ModelFixtures.assertClose(try model.pooledOutput(hidden, ids: input), try ModelFixtures.tensor(io, "pooler_output_\(name)"),
                                  "pooler_output (\(name))")
    }

    func testPaddedPromptsMatchTransformers() throws { try check("padded") }

    func testShorterRandomSequencesMatchTransformers() throws { try check("random") }

    func testConfigKeysAreTransformersKeys() throws {
        let config = try CLIPTextConfig.load(path: ModelFixtures.path("clip_text", "config.json"))
        XCTAssertEqual(config.hiddenSize, 32)
        XCTAssertEqual(config.numHiddenLayers, 2)
        XCTAssertEqual(config.numAttentionHeads, 4)
        XCTAssertEqual(config.maxPositionEmbeddings, 16)
        XCTAssertEqual(config.hiddenAct, "quick_gelu")
        XCTAssertEqual(config.vocabSize, 604)
        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as! [String: Any]
        for key in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                    "max_position_embeddings", "hidden_act", "layer_norm_eps", "projection_dim", "bos_token_id",
                    "eos_token_id", "pad_token_id", "architectures", "model_type"] {
            XCTAssertNotNil(encoded[key], key)
        }
        XCTAssertEqual(try JSONDecoder().decode(CLIPTextConfig.self, from: JSONEncoder().encode(config)), config)
    }

    /// Parameter paths are the Hub's keys; files with that prefix and the old `position_ids`
    /// buffer load too, and give the same output.
    func testPrefixedKeysAndPositionIdsBufferLoad() throws {
        let reference = try loadFixtureModel()
        let keys = reference.stateDict().map(\.0)
        XCTAssertTrue(keys.contains("text_model.embeddings.token_embedding.weight"))
        XCTAssertTrue(keys.contains("text_model.encoder.layers.1.self_attn.out_proj.bias"))
        XCTAssertTrue(keys.contains("text_model.encoder.layers.0.mlp.fc1.weight"))
        XCTAssertTrue(keys.contains("text_model.final_layer_norm.weight"))
        var tensors: [String: Tensor] = [:]
        for (key, tensor) in reference.stateDict() { tensors[key] = tensor.copy() }
        tensors["text_model.embeddings.position_ids"] = try Tensor(shape: [1, 16], values: (0 ..< 16).map(Float.init))
        let model = try CLIPTextModel(config: reference.config)
        try model.loadCheckpoint(from: InMemoryWeights(tensors))
        let input = [[602, 320, 526, 572, 603, 603]]
        XCTAssertEqual(try model(input).values, try reference(input).values)
    }

    func testWeightsThatDoNotFitAreListedTogether() throws {
        let reference = try loadFixtureModel()
        var tensors: [String: Tensor] = [:]
        for (key, tensor) in reference.stateDict() { tensors[key] = tensor }
        tensors["text_model.final_layer_norm.bias"] = nil
        tensors["text_model.encoder.layers.0.mlp.fc1.weight"] = Tensor(zeros: [3, 3])
        tensors["text_model.encoder.layers.9.mlp.fc1.weight"] = Tensor(zeros: [3, 3])
        let model = try CLIPTextModel(config: reference.config)
        XCTAssertThrowsError(try model.loadCheckpoint(from: InMemoryWeights(tensors, location: "te.safetensors"))) { error in
            guard case let ModelError.weightsMismatch(file, missing, unexpected, shapes) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "te.safetensors")
            XCTAssertEqual(missing, ["text_model.final_layer_norm.bias"])
            XCTAssertEqual(unexpected, ["text_model.encoder.layers.9.mlp.fc1.weight"])
            XCTAssertEqual(shapes.map(\.key), ["text_model.encoder.layers.0.mlp.fc1.weight"])
        }
    }

    func testBadInputsAndConfigsAreErrors() throws {
        let model = try loadFixtureModel()
        XCTAssertThrowsError(try model([Array(repeating: 1, count: 17)]))  // more tokens than positions
        XCTAssertThrowsError(try model([[1, 2], [1]]))                    // ragged batch
        XCTAssertThrowsError(try model([[604]]))                          // outside the vocabulary
        var config = model.config
        config.hiddenAct = "relu6"
        XCTAssertThrowsError(try CLIPTextModel(config: config, file: "te/config.json")) { error in
            guard case let ModelError.badConfig(file, key, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(file, "te/config.json")
            XCTAssertEqual(key, "hidden_act")
        }
        config = model.config
        config.numAttentionHeads = 5
        XCTAssertThrowsError(try CLIPTextModel(config: config))
    }
}
