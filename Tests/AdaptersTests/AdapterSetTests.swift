import Adapters
import Models
import Tensor
import XCTest

/// Named adapters on the tiny U-Net: pattern injection, several adapters with their own scales,
/// exact merge and unmerge, switching and removal.
final class AdapterSetTests: XCTestCase {
    static let spatialTransformers = [
        "down_blocks.0.attentions.0", "mid_block.attentions.0", "up_blocks.1.attentions.0", "up_blocks.1.attentions.1",
    ]
    static let temporalTransformers = [
        "transformer_in", "down_blocks.0.temp_attentions.0", "mid_block.temp_attentions.0",
        "up_blocks.1.temp_attentions.0", "up_blocks.1.temp_attentions.1",
    ]
    static let attentionLinears = ["to_q", "to_k", "to_v", "to_out.0"]

    func testMotionDirectorSpatialTargetsSelectSelfAttentionAndFeedForwardOfSpatialTransformers() throws {
        let set = AdapterSet(model: try Support.fixtureUNet())
        let expected = Self.spatialTransformers.flatMap { block in
            (Self.attentionLinears.map { "attn1.\($0)" } + ["ff.net.0.proj", "ff.net.2"]).map { "\(block).transformer_blocks.0.\($0)" }
        }
        let paths = try set.matchingPaths(ModulePattern.motionDirectorSpatial)
        XCTAssertEqual(Set(paths), Set(expected))
        XCTAssertEqual(paths.count, 24)
        XCTAssertFalse(paths.contains { $0.contains("attn2") || $0.contains("temp_") || $0.hasPrefix("transformer_in") })
    }

    func testMotionDirectorTemporalTargetsSelectBothAttentionsAndFeedForwardOfTemporalTransformers() throws {
        let set = AdapterSet(model: try Support.fixtureUNet())
        let expected = Self.temporalTransformers.flatMap { block in
            (Self.attentionLinears.map { "attn1.\($0)" } + Self.attentionLinears.map { "attn2.\($0)" } + ["ff.net.0.proj", "ff.net.2"])
                .map { "\(block).transformer_blocks.0.\($0)" }
        }
        let paths = try set.inject("temporal", config: LoRAConfig(rank: 4, dropout: 0.1), targets: ModulePattern.motionDirectorTemporal,
                                   generator: RandomGenerator(seed: 1))
        XCTAssertEqual(Set(paths), Set(expected))
        XCTAssertEqual(paths.count, 50)
        XCTAssertEqual(try set.loras(of: "temporal").map(\.modulePath), paths)
        // Each selected layer carries exactly this adapter's LoRA.
        for path in paths {
            let layer = try XCTUnwrap(set.model.module(at: path) as? Linear)
            XCTAssertEqual(layer.deltas.count, 1)
            XCTAssertEqual(layer.deltas.first?.adapterName, "temporal")
        }
        XCTAssertEqual(try set.parameters(of: "temporal").count, 100)
        XCTAssertEqual(try set.parameters(of: "temporal").first?.path, "transformer_in.transformer_blocks.0.attn1.to_q.lora_A.weight")
    }

    func testGlobAndRegexPatterns() throws {
        XCTAssertTrue(ModulePattern("*.to_q").matches("a.b.to_q"))
        XCTAssertFalse(ModulePattern("*.to_q").matches("to_q"), "* stands for at least one component")
        XCTAssertTrue(ModulePattern("a.*.c").matches("a.b.x.c"))
        XCTAssertTrue(ModulePattern("*.to_*").matches("x.to_k"))
        XCTAssertFalse(ModulePattern("*.to_*").matches("x.to_out.0"), "* inside a component stays in that component")
        XCTAssertFalse(ModulePattern("*.attentions.*").matches("down_blocks.0.temp_attentions.0.x"))
        XCTAssertTrue(ModulePattern("re:.*attn[12]\\.to_(q|k)").matches("a.attn2.to_k"))
        XCTAssertFalse(ModulePattern("re:attn1").matches("x.attn1"), "regular expressions match the whole path")
        XCTAssertThrowsError(try ModulePattern("re:(").validate())
        XCTAssertThrowsError(try ModulePattern("a..b").validate())

        let set = AdapterSet(model: try Support.fixtureUNet())
        let convs = try set.matchingPaths(["re:.*temp_convs\\.0\\.conv[0-9]\\.[0-9]"])
        // temp_convs.0 of down 0, down 1, mid, up 0, up 1: four Conv3d stages each.
        XCTAssertEqual(convs.count, 5 * 4)
        XCTAssertTrue(convs.allSatisfy { set.model.module(at: $0) is Conv3dTemporal })
        let excluded = try set.matchingPaths(ModulePattern.attentionProjections, excluding: ["*.temp_attentions.*", "transformer_in.*"])
        XCTAssertEqual(excluded.count, 4 * 8)
        XCTAssertThrowsError(try set.inject("none", config: LoRAConfig(rank: 2), targets: ["*.no_such_layer"], generator: RandomGenerator(seed: 0))) { error in
            XCTAssertTrue("\(error)".contains("no_such_layer"), "\(error)")
        }
    }

    /// Adds a LoRA with random (non-zero) B so that its effect shows.
    func injectVisible(_ set: AdapterSet, _ name: String, targets: [ModulePattern], seed: UInt64, rank: Int = 4, alpha: Float = 8) throws {
        try set.inject(name, config: LoRAConfig(rank: rank, alpha: alpha, initialisation: .gaussian), targets: targets,
                       generator: RandomGenerator(seed: seed))
        for lora in try set.loras(of: name) { Support.fill(lora.up, seed: seed &+ UInt64(lora.modulePath.count), scale: 0.2) }
    }

    func testZeroInitialisedAdapterLeavesTheUNetOutputUnchanged() throws {
        let model = try Support.fixtureUNet()
        let base = try Support.run(model).values
        let set = AdapterSet(model: model)
        try set.inject("spatial", config: LoRAConfig(rank: 4), targets: ModulePattern.motionDirectorSpatial, generator: RandomGenerator(seed: 2))
        try set.inject("convs", config: LoRAConfig(rank: 2), targets: ["*.resnets.*.conv1", "*.temp_convs.*"], generator: RandomGenerator(seed: 3))
        XCTAssertEqual(try Support.run(model).values, base)
    }

    func testMergeMatchesActiveAdaptersAndUnmergeRestoresWeightsBitForBit() throws {
        let model = try Support.fixtureUNet()
        let originals = model.namedParameters().map { ($0.path, $0.tensor.values) }
        let set = AdapterSet(model: model)
        try injectVisible(set, "spatial", targets: ModulePattern.motionDirectorSpatial, seed: 4)
        try injectVisible(set, "convs", targets: ["*.resnets.*.conv1", "conv_in", "*.temp_convs.*.conv2.*", "*.downsamplers.*"], seed: 5, rank: 2, alpha: 1)
        try set.setMultiplier(0.7, for: "spatial")
        try set.setMultiplier(1.3, for: "convs")
        let active = try Support.run(model).values

        try set.merge()
        XCTAssertEqual(set.mergedAdapterNames, ["spatial", "convs"])
        XCTAssertTrue(try set.loras(of: "spatial").allSatisfy(\.isMerged))
        let merged = try Support.run(model).values
        Support.assertClose(merged, active, tolerance: 1e-4, "merged vs unmerged adapters")
        XCTAssertNotEqual(model.namedParameters().map(\.tensor.values), originals.map(\.1))

        // Unmerging one keeps the other folded in and active results unchanged.
        try set.unmerge(["spatial"])
        XCTAssertEqual(set.mergedAdapterNames, ["convs"])
        Support.assertClose(try Support.run(model).values, active, tolerance: 1e-4, "one merged, one active")

        // A new multiplier on a merged adapter re-folds it.
        try set.setMultiplier(0, for: "convs")
        try set.setMultiplier(0, for: "spatial")
        let originalBits = originals.map { $0.1.map(\.bitPattern) }
        XCTAssertEqual(model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }, originalBits,
                       "at multiplier 0 the merged weight is original + 0 = original")
        try set.setMultiplier(1.3, for: "convs")
        try set.unmerge()
        XCTAssertEqual(set.mergedAdapterNames, [])
        XCTAssertEqual(model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }, originalBits,
                       "unmerge restores every weight bit for bit")
    }

    func testTwoAdaptersWithTheirOwnScalesAddUp() throws {
        let layer = Linear(6, 4)
        Support.fill(layer.weight, seed: 81)
        let root = Module()
        let block = root.child("block", Module())
        block.child("proj", layer)
        let set = AdapterSet(model: root)
        try injectVisible(set, "first", targets: ["block.proj"], seed: 82, rank: 2, alpha: 2)
        try injectVisible(set, "second", targets: ["*.proj"], seed: 83, rank: 3, alpha: 6)
        try set.setMultiplier(0.5, for: "first")
        try set.setMultiplier(-2, for: "second")
        XCTAssertEqual(set.adapterNames, ["first", "second"])
        let x = Support.tensor([3, 6], seed: 84)
        let first = try set.loras(of: "first")[0], second = try set.loras(of: "second")[0]
        let d1 = Support.product(up: first.up, down: first.down), d2 = Support.product(up: second.up, down: second.down)
        let weight = (0..<24).map { Double(layer.weight.data[$0]) + 0.5 * 1 * d1[$0] + -2 * 2 * d2[$0] }
        var expected: [Float] = []
        for row in 0..<3 {
            for o in 0..<4 {
                var value = Double(layer.bias!.data[o])
                for i in 0..<6 { value += weight[o * 6 + i] * Double(x.data[row * 6 + i]) }
                expected.append(Float(value))
            }
        }
        Support.assertClose(try layer(x).values, expected, tolerance: 1e-5, "two adapters")

        try set.setEnabled(false, for: "second")
        let onlyFirst = (0..<24).map { Double(layer.weight.data[$0]) + 0.5 * d1[$0] }
        var expectedFirst: [Float] = []
        for row in 0..<3 {
            for o in 0..<4 {
                var value = Double(layer.bias!.data[o])
                for i in 0..<6 { value += onlyFirst[o * 6 + i] * Double(x.data[row * 6 + i]) }
                expectedFirst.append(Float(value))
            }
        }
        Support.assertClose(try layer(x).values, expectedFirst, tolerance: 1e-5, "second disabled")

        try set.remove("first")
        XCTAssertEqual(set.adapterNames, ["second"])
        XCTAssertEqual(layer.deltas.count, 1)
        XCTAssertThrowsError(try set.parameters(of: "first")) { error in
            XCTAssertTrue("\(error)".contains("second"), "the error lists the adapters there are: \(error)")
        }
        XCTAssertThrowsError(try set.inject("second", config: LoRAConfig(rank: 1), targets: ["block.proj"], generator: RandomGenerator(seed: 0)))
    }

    func testTrainableParametersAndMergedAdaptersCannotTrain() throws {
        let set = AdapterSet(model: try Support.fixtureUNet())
        try set.inject("spatial", config: LoRAConfig(rank: 2), targets: ModulePattern.motionDirectorSpatial, generator: RandomGenerator(seed: 1))
        try set.inject("temporal", config: LoRAConfig(rank: 2), targets: ModulePattern.motionDirectorTemporal, generator: RandomGenerator(seed: 1))
        XCTAssertEqual(set.trainableParameters().count, 2 * (24 + 50))
        try set.setTrainable(false, for: "spatial")
        XCTAssertEqual(set.trainableParameters().count, 2 * 50)
        XCTAssertTrue(set.trainableParameters().allSatisfy { $0.adapter == "temporal" && $0.tensor.requiresGrad })
        try set.merge(["spatial"])
        XCTAssertThrowsError(try set.setTrainable(true, for: "spatial"))
        let summary = try XCTUnwrap(set.summaries().first { $0.name == "spatial" })
        XCTAssertTrue(summary.isMerged)
        XCTAssertEqual(summary.modulePaths.count, 24)
        XCTAssertEqual(summary.ranks, [2])
    }

    func testInitialisationDependsOnSeedNameAndPathOnly() throws {
        let first = AdapterSet(model: try Support.fixtureUNet())
        try first.inject("a", config: LoRAConfig(rank: 2), targets: ModulePattern.motionDirectorSpatial, generator: RandomGenerator(seed: 7))
        let second = AdapterSet(model: try Support.fixtureUNet())
        try second.inject("a", config: LoRAConfig(rank: 2), targets: ["*.attentions.*.transformer_blocks.*.attn1.to_k"], generator: RandomGenerator(seed: 7))
        try second.inject("b", config: LoRAConfig(rank: 2), targets: ["*.attentions.*.transformer_blocks.*.attn1.to_k"], generator: RandomGenerator(seed: 7))
        let path = "mid_block.attentions.0.transformer_blocks.0.attn1.to_k"
        let fromFirst = try first.loras(of: "a").first { $0.modulePath == path }!.down.values
        XCTAssertEqual(try second.loras(of: "a")[1].modulePath, path)
        XCTAssertEqual(try second.loras(of: "a")[1].down.values, fromFirst)
        XCTAssertNotEqual(try second.loras(of: "b")[1].down.values, fromFirst, "another adapter name, other values")
    }

    func testTrainingTurnsLoRADropoutOnAndRemovingAMergedAdapterRestoresTheModel() throws {
        let model = try Support.fixtureUNet()
        let originals = model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }
        let set = AdapterSet(model: model)
        try set.inject("temporal", config: LoRAConfig(rank: 4, dropout: 0.5), targets: ModulePattern.motionDirectorTemporal,
                       generator: RandomGenerator(seed: 1))
        for lora in try set.loras(of: "temporal") { Support.fill(lora.up, seed: 9, scale: 0.3) }
        let inference = try Support.run(model).values
        try set.setTraining(generator: RandomGenerator(seed: 5))
        let training = try Support.run(model).values
        XCTAssertNotEqual(training, inference)
        try set.setTraining(generator: RandomGenerator(seed: 5))
        XCTAssertEqual(try Support.run(model).values, training, "same generator, same dropout masks")
        try set.setTraining(generator: nil)
        XCTAssertEqual(try Support.run(model).values, inference)

        try set.merge()
        try set.remove("temporal")
        XCTAssertEqual(set.adapterNames, [])
        XCTAssertEqual(model.namedParameters().map { $0.tensor.values.map(\.bitPattern) }, originals)
        XCTAssertTrue(set.adaptableLayers.allSatisfy { entry in
            switch entry.layer {
            case let .linear(layer): return layer.deltas.isEmpty
            case let .conv2d(layer): return layer.deltas.isEmpty
            case let .conv3dTemporal(layer): return layer.deltas.isEmpty
            }
        })
    }
}
