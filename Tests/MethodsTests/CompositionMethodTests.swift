import Adapters
import Diffusion
import Foundation
import Models
import Tensor
import XCTest
@testable import Methods

/// The three methods on the fixture pipeline: loading, merging, errors and whole renders.
final class CompositionMethodTests: XCTestCase {
    var folder: String!
    var pipeline: TextToVideoPipeline!

    override func setUpWithError() throws {
        folder = try CompositionFixtures.temporaryFolder()
        pipeline = try CompositionFixtures.pipeline()
        let projections = CompositionFixtures.crossAttentionProjections(pipeline)
        try CompositionFixtures.writeLoRA(pipeline, modules: projections, salt: 0.3, to: folder + "/cat.safetensors")
        // The dog adapts self-attention too (which LoRA-Composer leaves out), with another alpha.
        let selfAttention = SpatialAttentionLayers(unet: pipeline.unet).selfAttention.map { $0.path + ".to_q" }
        try CompositionFixtures.writeLoRA(pipeline, modules: projections + selfAttention, salt: 1.1, alpha: 4,
                                          to: folder + "/dog.safetensors")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    func loadedAdapters(catScale: Float = 1, dogScale: Float = 1) throws -> ConceptAdapters {
        let adapters = ConceptAdapters(pipeline: pipeline)
        try adapters.load(folder + "/cat.safetensors", as: "cat", scale: catScale)
        try adapters.load(folder + "/dog.safetensors", as: "dog", scale: dogScale)
        return adapters
    }

    /// Latent guidance steps in the U-Net's input space: DDIM (scale 1) takes −η·∇ as the papers do;
    /// Euler takes −η·∇·(σ²+1), so its step reaches the model as strongly at σ = 4096 as at σ = 1.
    func testGuidanceStepIsTakenInTheModelsInputSpace() throws {
        var config = SchedulerConfig()
        config.predictionType = .vPrediction
        config.rescaleBetasZeroSnr = true
        config.timestepSpacing = .trailing
        let latents = Tensor(repeating: 1, shape: [1, 4]), gradient = Tensor(repeating: 0.5, shape: [1, 4])
        var ddim = DDIMScheduler(config: config)
        try ddim.setTimesteps(10)
        let plain = try CompositionSampling.guidanceStep(latents, gradient: gradient, size: 0.1, scheduler: ddim, timestep: ddim.timesteps[0])
        XCTAssertEqual(plain.values, [Float](repeating: 0.95, count: 4))
        var euler = EulerDiscreteScheduler(config: config)
        try euler.setTimesteps(10)
        let sigma = euler.sigmas[0]
        XCTAssertGreaterThan(sigma, 1000, "zero terminal SNR: Euler's first sigma is 2^12")
        let scaled = try CompositionSampling.guidanceStep(latents, gradient: gradient, size: 0.1, scheduler: euler, timestep: euler.timesteps[0])
        let expected = 1 - 0.05 * (sigma * sigma + 1)
        for value in scaled.values { XCTAssertEqual(value, expected, accuracy: abs(expected) * 1e-5) }
    }

    func testMergeIsTheWeightedSumOfTheDeltas() throws {
        let adapters = try loadedAdapters()
        let path = CompositionFixtures.crossAttentionPaths(pipeline)[0] + ".to_k"
        let layer = try XCTUnwrap(pipeline.unet.module(at: path) as? Linear)
        let original = layer.weight.values
        let cat = try XCTUnwrap(adapters.unetLoRAsByPath(of: "cat")[path]), dog = try XCTUnwrap(adapters.unetLoRAsByPath(of: "dog")[path])
        try WeightedLoRAMerge.apply(adapters, weights: [("cat", 0.7), ("dog", 0.4)])
        // W + 0.7 · (2/2) · B_cat A_cat + 0.4 · (4/2) · B_dog A_dog, by loops.
        let (rows, columns) = (layer.outFeatures, layer.inFeatures)
        func product(_ lora: LoRA) -> [Float] {
            let (a, b) = (lora.down.values, lora.up.values)
            return (0 ..< rows * columns).map { index in
                (0 ..< 2).map { r in b[(index / columns) * 2 + r] * a[r * columns + index % columns] }.reduce(0, +)
            }
        }
        let (catDelta, dogDelta) = (product(cat), product(dog))
        let merged = layer.weight.values
        for index in merged.indices {
            XCTAssertEqual(merged[index], original[index] + 0.7 * 1 * catDelta[index] + 0.4 * 2 * dogDelta[index], accuracy: 1e-5)
        }
        XCTAssertEqual(adapters.unet.mergedAdapterNames, ["cat", "dog"])
        try WeightedLoRAMerge.remove(adapters)
        XCTAssertEqual(layer.weight.values, original, "unmerging restores the weights bit for bit")
        XCTAssertTrue(adapters.unet.summaries().allSatisfy { !$0.isEnabled && !$0.isMerged })
    }

    func testAdaptersAreLoadedDisabledAndSwitchedOnePerPass() throws {
        let adapters = try loadedAdapters(catScale: 0.5)
        XCTAssertEqual(adapters.names, ["cat", "dog"])
        XCTAssertEqual(try adapters.scale(of: "cat"), 0.5)
        XCTAssertTrue(adapters.unet.summaries().allSatisfy { !$0.isEnabled })
        try adapters.activate(["dog"])
        XCTAssertEqual(adapters.unet.summaries().filter(\.isEnabled).map(\.name), ["dog"])
        XCTAssertThrowsError(try adapters.activate(["bird"]))
        XCTAssertThrowsError(try adapters.load(folder + "/cat.safetensors", as: "cat", scale: 1))
    }

    func testALoRAForAnotherModelIsRefusedAndNothingStaysLoaded() throws {
        var other = (pipeline.unet as! UNet3DConditionModel).config
        other.crossAttentionDim += 1
        let metadata = LoRAFileMetadata(method: "subject-lora", baseModel: try BaseModelIdentity(name: "other-base", unetConfig: other))
        try CompositionFixtures.writeLoRA(pipeline, modules: CompositionFixtures.crossAttentionProjections(pipeline), salt: 2,
                                          metadata: metadata, to: folder + "/other.safetensors")
        let adapters = ConceptAdapters(pipeline: pipeline)
        XCTAssertThrowsError(try adapters.load(folder + "/other.safetensors", as: "other", scale: 1)) { error in
            guard case .baseModelMismatch(let file, let stored, _)? = error as? CompositionError else { return XCTFail("\(error)") }
            XCTAssertEqual(file, folder + "/other.safetensors")
            XCTAssertTrue(stored.contains("other-base"), stored)
        }
        XCTAssertTrue(adapters.names.isEmpty)
        XCTAssertTrue(adapters.unet.adapterNames.isEmpty)
        // The same LoRA made for this model loads.
        let same = LoRAFileMetadata(method: "subject-lora", baseModel: try BaseModelIdentity(name: "base", unet: pipeline.unet))
        try CompositionFixtures.writeLoRA(pipeline, modules: CompositionFixtures.crossAttentionProjections(pipeline), salt: 2,
                                          metadata: same, to: folder + "/same.safetensors")
        XCTAssertNoThrow(try adapters.load(folder + "/same.safetensors", as: "same", scale: 1))
    }

    func testBadConceptsAreNamedErrors() throws {
        let adapters = try loadedAdapters()
        func composer(_ concepts: [CompositionConcept]) throws -> LoRAComposer {
            try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: concepts)
        }
        let cat = CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat", words: ["cat"], box: ConceptBox.sideBySide(count: 2)[0])
        XCTAssertThrowsError(try composer([])) { XCTAssertEqual($0 as? CompositionError, .noConcepts) }
        XCTAssertThrowsError(try composer([cat, cat])) { XCTAssertEqual($0 as? CompositionError, .duplicateConcept("cat")) }
        var bird = cat
        bird.name = "bird"
        bird.adapter = "bird"
        XCTAssertThrowsError(try composer([bird])) { error in
            XCTAssertEqual(error as? CompositionError, .unknownAdapter(concept: "bird", adapter: "bird", loaded: ["cat", "dog"]))
        }
        var noBox = cat
        noBox.box = nil
        XCTAssertThrowsError(try composer([noBox])) { XCTAssertEqual($0 as? CompositionError, .missingBox(concept: "cat")) }
        var tiny = cat
        tiny.box = ConceptBox(x0: 0.3, y0: 0.3, x1: 0.4, y1: 0.4)
        XCTAssertThrowsError(try composer([tiny])) { error in
            XCTAssertEqual(error as? CompositionError, .boxTooSmall(concept: "cat", box: tiny.box!, grid: FeatureGrid(height: 8, width: 8)))
        }
        var outside = cat
        outside.box = ConceptBox(x0: 0.5, y0: 0, x1: 1.5, y1: 1)
        XCTAssertThrowsError(try composer([outside])) { XCTAssertEqual($0 as? CompositionError, .boxOutOfRange(concept: "cat", box: outside.box!)) }
        var unnamed = cat
        unnamed.prompt = "a dog"
        XCTAssertThrowsError(try composer([unnamed])) { error in
            XCTAssertEqual(error as? CompositionError, .wordsNotInPrompt(concept: "cat", words: ["cat"], prompt: "a dog"))
            XCTAssertTrue("\(error)".contains("\"a dog\" does not name cat"), "\(error)")
        }
        // CLoRA: the base prompt must name every concept.
        let clora = try CLoRA(pipeline: pipeline, adapters: adapters, concepts: [
            CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat and a dog", words: ["cat"]),
            CompositionConcept(name: "dog", adapter: "dog", prompt: "a cat and a dog", words: ["dog"]),
        ])
        XCTAssertThrowsError(try clora.tokenIndices(basePrompt: "a cat and a ball")) { error in
            XCTAssertEqual(error as? CompositionError, .wordsNotInPrompt(concept: "dog", words: ["dog"], prompt: "a cat and a ball"))
        }
        let indices = try clora.tokenIndices(basePrompt: "a cat and a dog")
        XCTAssertEqual(indices.groups, [[[2], [2], [2]], [[5], [5], [5]]])
        XCTAssertEqual(indices.maskTokens, [[], [2], [5]])
    }

    func testLoRAComposerRendersPicturesAndClipsWithGuidanceAndHeatMaps() throws {
        let adapters = try loadedAdapters()
        let boxes = ConceptBox.sideBySide(count: 2)
        let concepts = [
            CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat", words: ["cat"], box: boxes[0]),
            CompositionConcept(name: "dog", adapter: "dog", prompt: "a red dog", words: ["dog"], box: boxes[1]),
        ]
        let composer = try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: concepts)
        XCTAssertEqual(composer.tokenChoices.map(\.positions), [[2], [3]])
        for frames in [1, 2] {
            let settings = CompositionSettings(prompt: "a cat and a dog", frames: frames, steps: 3, guidance: 7.5, seed: 4)
            var steps: [Int] = []
            let result = try composer.generate(settings) { done, _, _ in steps.append(done) }
            XCTAssertEqual(steps, [1, 2, 3])
            XCTAssertEqual(result.frames.count, frames)
            XCTAssertEqual(result.latents.shape, [1, 4, frames, 8, 8])
            XCTAssertTrue(result.latents.values.allSatisfy(\.isFinite))
            XCTAssertEqual(result.attention.map(\.concept), ["cat", "dog"])
            XCTAssertEqual(result.attention.map(\.token), ["cat", "dog"])
            XCTAssertTrue(result.attention.allSatisfy { $0.frames.count == frames && $0.frames[0].count == 64 })
            XCTAssertFalse(result.notes.isEmpty)
            // The same request gives the same latents; without guidance and re-initialisation they differ.
            let again = try composer.generate(settings)
            XCTAssertEqual(again.latents.values, result.latents.values)
            var plain = LoRAComposerOptions()
            plain.latentGuidance = false
            plain.latentReinitialisation = false
            let unguided = try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: concepts, options: plain).generate(settings)
            XCTAssertGreaterThan(CompositionFixtures.maxDifference(unguided.latents, result.latents), 1e-4)
        }
        // Nothing of the method stays on the U-Net.
        XCTAssertTrue(SpatialAttentionLayers(unet: pipeline.unet).layers.allSatisfy { $0.attention.processor is ScaledDotProductAttentionProcessor })
        XCTAssertTrue(pipeline.unet.namedModules().compactMap { $0.module as? Linear }.allSatisfy { !$0.deltas.contains { $0 is RegionOutputDelta } })
        XCTAssertTrue(adapters.unet.summaries().allSatisfy { !$0.isEnabled })
    }

    func testLatentReinitialisationCopiesTheBestWindowAndKeepsTheStatistics() throws {
        let adapters = try loadedAdapters()
        let concept = CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat", words: ["cat"],
                                         box: ConceptBox(x0: 0, y0: 0, x1: 0.25, y1: 0.25))
        let composer = try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: [concept])
        let state = try composer.makeState()
        // The concept's attention peaks in the 2×2 window at rows 4-5, columns 6-7 of the 8×8 grid.
        var values = [Float](repeating: 0.01, count: 64 * 16)
        for cell in [4 * 8 + 6, 4 * 8 + 7, 5 * 8 + 6, 5 * 8 + 7] { values[cell * 16 + 2] = 0.5 }
        state.crossMaps = [[try Tensor(shape: [1, 64, 16], values: values)]]
        var generator = RandomGenerator(seed: 9)
        let latents = generator.normal([1, 4, 1, 8, 8])
        let result = try composer.reinitialise(latents, state: state)
        let (oldMean, oldStd) = LoRAComposer.meanAndStd(latents), (newMean, newStd) = LoRAComposer.meanAndStd(result)
        XCTAssertEqual(newMean, oldMean, accuracy: 1e-5)
        XCTAssertEqual(newStd, oldStd, accuracy: 1e-4)
        // Every value went through one affine map (the renormalisation); inside the box the values
        // came from the window.
        let source = latents.values, target = result.values
        func origin(_ index: Int) -> Int {
            let plane = index / 64, cell = index % 64, row = cell / 8, column = cell % 8
            return row < 2 && column < 2 ? plane * 64 + (row + 4) * 8 + column + 6 : index
        }
        let factor = (target[0] - target[63]) / (source[origin(0)] - source[origin(63)])
        let shift = target[0] - factor * source[origin(0)]
        for index in target.indices {
            XCTAssertEqual(target[index], factor * source[origin(index)] + shift, accuracy: 1e-4, "latent entry \(index)")
        }
        XCTAssertNotEqual(target[0], source[0])
    }

    func testCLoRARendersWithContrastiveUpdatesAndMaskedFusion() throws {
        let adapters = try loadedAdapters()
        var options = CLoRAOptions()
        options.iterativeRounds = 2
        let clora = try CLoRA(pipeline: pipeline, adapters: adapters, concepts: [
            CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat and a dog", words: ["cat"]),
            CompositionConcept(name: "dog", adapter: "dog", prompt: "a cat and a dog", words: ["dog"]),
        ], options: options)
        for frames in [1, 2] {
            let settings = CompositionSettings(prompt: "a cat and a dog", frames: frames, steps: 3, guidance: 7.5, seed: 2)
            let result = try clora.generate(settings)
            XCTAssertEqual(result.frames.count, frames)
            XCTAssertTrue(result.latents.values.allSatisfy(\.isFinite))
            XCTAssertEqual(result.tokens.count, 6, "each concept in each of the three prompts")
            XCTAssertEqual(result.attention.map(\.concept), ["cat", "dog"])
            XCTAssertTrue(result.notes[0].contains("latent update"), result.notes[0])
            var still = options
            still.latentUpdate = false
            let unguided = try CLoRA(pipeline: pipeline, adapters: adapters, concepts: clora.concepts, options: still).generate(settings)
            XCTAssertGreaterThan(CompositionFixtures.maxDifference(unguided.latents, result.latents), 1e-5)
        }
        XCTAssertTrue(SpatialAttentionLayers(unet: pipeline.unet).layers.allSatisfy { $0.attention.processor is ScaledDotProductAttentionProcessor })
        XCTAssertTrue(adapters.unet.summaries().allSatisfy { !$0.isEnabled })
    }

    func testMergeRendersAsThePipelineDoesWithTheLoRAsFused() throws {
        let adapters = try loadedAdapters(catScale: 0.6, dogScale: 0.9)
        let concepts = [
            CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat and a dog", words: ["cat"]),
            CompositionConcept(name: "dog", adapter: "dog", prompt: "a cat and a dog", words: ["dog"]),
        ]
        let settings = CompositionSettings(prompt: "a cat and a dog", frames: 1, steps: 2, guidance: 7.5, seed: 1)
        let merged = try WeightedLoRAMerge.generate(pipeline: pipeline, adapters: adapters, concepts: concepts, settings: settings)
        try WeightedLoRAMerge.apply(adapters, weights: [("cat", 0.6), ("dog", 0.9)])
        let direct = try pipeline.generate(prompt: "a cat and a dog", frames: 1, steps: 2, guidance: 7.5, seed: 1)
        try WeightedLoRAMerge.remove(adapters)
        XCTAssertEqual(merged.latents.values, direct.latents.values)
        let plain = try pipeline.generate(prompt: "a cat and a dog", frames: 1, steps: 2, guidance: 7.5, seed: 1)
        XCTAssertGreaterThan(CompositionFixtures.maxDifference(plain.latents, merged.latents), 1e-5)
        let withMaps = try WeightedLoRAMerge.generate(pipeline: pipeline, adapters: adapters, concepts: concepts, settings: settings,
                                                      recordsAttention: true)
        XCTAssertEqual(withMaps.attention.map(\.token), ["cat", "dog"])
        XCTAssertEqual(withMaps.latents.values, merged.latents.values, "recording maps does not change the render")
        XCTAssertEqual(withMaps.attention[0].frames[0].reduce(0, +) > 0, true)
    }
}
