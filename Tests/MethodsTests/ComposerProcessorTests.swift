import Adapters
import Diffusion
import Models
import Tensor
import XCTest
@testable import Methods

/// LoRA-Composer's attention processors on single layers and on the fixture U-Net.
final class ComposerProcessorTests: XCTestCase {
    /// Two boxes on a 4×4 grid: the left and the right half of rows 1-2 (rows 0 and 3 are background).
    let left = ConceptBox(x0: 0, y0: 0.25, x1: 0.5, y1: 0.75)
    let right = ConceptBox(x0: 0.5, y0: 0.25, x1: 1, y1: 0.75)
    let grid = FeatureGrid(height: 4, width: 4)

    func state(_ concepts: [ComposerAttentionState.Concept]) -> ComposerAttentionState {
        ComposerAttentionState(concepts: concepts, latentHeight: 4, latentWidth: 4, analysisGrid: grid, isolates: true)
    }

    func testIsolationBlocksAttentionBetweenBoxesAndLeavesTheBackgroundFree() throws {
        let attention = Attention(queryDimension: 8, heads: 2, dimHead: 4)
        CompositionFixtures.randomise(attention, seed: 1)
        let shared = state([.init(name: "cat", box: left, loras: [:]), .init(name: "dog", box: right, loras: [:])])
        shared.recordsMaps = true
        attention.processor = ConceptIsolationProcessor(state: shared)
        var generator = RandomGenerator(seed: 2)
        let frames = 2
        let states = generator.normal([frames, grid.count, 8])
        _ = try attention(states, context: ForwardContext(frames: frames))

        XCTAssertEqual(shared.selfMaps.count, 1)
        let probabilities = shared.selfMaps[0]
        XCTAssertEqual(probabilities.shape, [frames, 16, 16])
        let leftCells = left.mask(height: 4, width: 4), rightCells = right.mask(height: 4, width: 4)
        // The same maps without the mask, for the rows the mask leaves alone.
        let q = try Attention.splitHeads(attention.toQ(states), heads: 2)
        let k = try Attention.splitHeads(attention.toK(states), heads: 2)
        let free = try AttentionMath.meanOverHeads(Tensor.attentionProbabilities(query: q, key: k, scale: attention.scale), heads: 2)
        let p = probabilities.values, unmasked = free.values
        for frame in 0 ..< frames {
            for query in 0 ..< 16 {
                let row = (0 ..< 16).map { p[(frame * 16 + query) * 16 + $0] }
                XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-5)
                for key in 0 ..< 16 {
                    let crossesBoxes = (leftCells[query] == 1 && rightCells[key] == 1) || (rightCells[query] == 1 && leftCells[key] == 1)
                    if crossesBoxes {
                        // −1e6 on the score: e^(−1e6) is 0 (the engine's exp stops at the smallest normal float).
                        XCTAssertLessThan(row[key], 1e-30, "frame \(frame): query \(query) attends to key \(key) in the other box")
                    } else {
                        XCTAssertGreaterThan(row[key], 1e-6)
                    }
                }
                if leftCells[query] == 0 && rightCells[query] == 0 {
                    for key in 0 ..< 16 {
                        XCTAssertEqual(row[key], unmasked[(frame * 16 + query) * 16 + key], accuracy: 1e-6, "background query \(query)")
                    }
                }
            }
        }
        // The layer's output is attention under the same mask.
        shared.recordsMaps = false
        let output = try attention(states, context: ForwardContext(frames: frames))
        let mask = try XCTUnwrap(shared.isolationMask(for: grid))
        let expected = try attention.toOut(Attention.mergeHeads(Tensor.attention(
            query: q, key: k, value: Attention.splitHeads(attention.toV(states), heads: 2), scale: attention.scale, mask: mask), heads: 2))
        XCTAssertLessThan(CompositionFixtures.maxDifference(output, expected), 1e-5)
    }

    /// A cross-attention layer with a concept LoRA on to_k, to_v and to_out.0.
    func crossAttentionLayer() throws -> (Attention, [String: LoRA]) {
        let attention = Attention(queryDimension: 8, crossAttentionDimension: 6, heads: 2, dimHead: 4)
        CompositionFixtures.randomise(attention, seed: 3)
        var loras: [String: LoRA] = [:]
        for (index, (name, layer)) in [("to_k", attention.toK), ("to_v", attention.toV), ("to_out.0", attention.toOut)].enumerated() {
            let geometry = LoRAGeometry.linear(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures)
            var generator = RandomGenerator(seed: 10 + UInt64(index))
            loras["." + name] = try LoRA(adapterName: "cat", modulePath: "." + name, geometry: geometry, alpha: 2,
                                         down: generator.normal(geometry.downShape(rank: 2)), up: generator.normal(geometry.upShape(rank: 2)))
        }
        return (attention, loras)
    }

    func testInjectionChangesOnlyTheQueriesInsideTheBox() throws {
        let (attention, loras) = try crossAttentionLayer()
        var generator = RandomGenerator(seed: 4)
        let frames = 2
        let states = generator.normal([frames, grid.count, 8])
        let globalText = generator.normal([1, 5, 6]), regionText = generator.normal([1, 5, 6])
        let perFrameText = try AttentionMath.repeatPerFrame(globalText, frames: frames)
        let base = try attention(states, encoderHiddenStates: perFrameText, context: ForwardContext(frames: frames))

        let shared = state([.init(name: "cat", box: left, loras: loras)])
        shared.regionStates = [regionText]
        let delta = RegionOutputDelta()
        shared.outputDeltas[""] = delta
        attention.toOut.deltas.append(delta)
        attention.processor = RegionInjectionProcessor(state: shared)
        let composed = try attention(states, encoderHiddenStates: perFrameText, context: ForwardContext(frames: frames))
        XCTAssertTrue(delta.pending.isEmpty, "the output delta consumed what the processor left")

        let inside = left.mask(height: 4, width: 4)
        let (b, c) = (base.values, composed.values)
        for frame in 0 ..< frames {
            for token in 0 ..< grid.count {
                let range = (frame * grid.count + token) * 8 ..< (frame * grid.count + token + 1) * 8
                let difference = range.map { abs(b[$0] - c[$0]) }.max()!
                if inside[token] == 1 {
                    XCTAssertGreaterThan(difference, 1e-3, "frame \(frame) token \(token) inside the box kept the base output")
                } else {
                    XCTAssertEqual(difference, 0, "frame \(frame) token \(token) outside the box changed")
                }
            }
        }

        // Inside the box: the layer as if the LoRA were on and the region prompt the text.
        for lora in loras.values { attention.layer(for: lora).deltas.append(lora) }
        attention.toOut.deltas.removeAll { $0 is RegionOutputDelta }
        attention.processor = ScaledDotProductAttentionProcessor.shared
        let withLoRA = try attention(states, encoderHiddenStates: AttentionMath.repeatPerFrame(regionText, frames: frames),
                                     context: ForwardContext(frames: frames))
        let w = withLoRA.values
        for frame in 0 ..< frames {
            for token in 0 ..< grid.count where inside[token] == 1 {
                for channel in 0 ..< 8 {
                    let index = (frame * grid.count + token) * 8 + channel
                    XCTAssertEqual(c[index], w[index], accuracy: 1e-5)
                }
            }
        }
    }

    func testOverlappingBoxesAverageTheConceptsOutputs() throws {
        let (attention, loras) = try crossAttentionLayer()
        var generator = RandomGenerator(seed: 5)
        let states = generator.normal([1, grid.count, 8])
        let text = generator.normal([1, 5, 6]), first = generator.normal([1, 5, 6]), second = generator.normal([1, 5, 6])
        func run(_ concepts: [(ConceptBox, Tensor)]) throws -> [Float] {
            let shared = state(concepts.enumerated().map { .init(name: "c\($0.offset)", box: $0.element.0, loras: loras) })
            shared.regionStates = concepts.map(\.1)
            let delta = RegionOutputDelta()
            shared.outputDeltas[""] = delta
            attention.toOut.deltas = [delta]
            attention.processor = RegionInjectionProcessor(state: shared)
            defer { attention.toOut.deltas = [] }
            return try attention(states, encoderHiddenStates: text, context: ForwardContext()).values
        }
        let both = try run([(.fullImage, first), (.fullImage, second)])
        let alone1 = try run([(.fullImage, first)]), alone2 = try run([(.fullImage, second)])
        for index in both.indices { XCTAssertEqual(both[index], (alone1[index] + alone2[index]) / 2, accuracy: 1e-5) }
    }

    /// With one concept over the whole picture, the composed U-Net is the U-Net with that LoRA on,
    /// reading the region prompt: every cross-attention takes its keys and values, nothing is isolated.
    func testOneFullImageConceptEqualsRunningItsLoRAOnItsPrompt() throws {
        let pipeline = try CompositionFixtures.pipeline()
        let folder = try CompositionFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try CompositionFixtures.writeLoRA(pipeline, modules: CompositionFixtures.crossAttentionProjections(pipeline), salt: 0.3,
                                          to: folder + "/cat.safetensors")
        let adapters = ConceptAdapters(pipeline: pipeline)
        try adapters.load(folder + "/cat.safetensors", as: "cat", scale: 0.8)
        let composer = try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: [
            CompositionConcept(name: "cat", adapter: "cat", prompt: "a cat", words: ["cat"], box: .fullImage),
        ])
        let global = try pipeline.encodePrompt("a dog and a ball"), region = try pipeline.encodePrompt("a cat")
        for frames in [1, 3] {
            var generator = RandomGenerator(seed: 6)
            let sample = generator.normal([1, 4, frames, 8, 8])
            try adapters.activate(["cat"])
            let reference = try pipeline.unet(sample: sample, timesteps: [500], encoderHiddenStates: region)
            try adapters.deactivateAll()
            let plain = try pipeline.unet(sample: sample, timesteps: [500], encoderHiddenStates: region)
            let state = try composer.makeState()
            state.regionStates = [region]
            let restore = composer.install(state)
            let composed = try pipeline.unet(sample: sample, timesteps: [500], encoderHiddenStates: global)
            restore()
            XCTAssertLessThan(CompositionFixtures.maxDifference(composed, reference), 2e-5, "\(frames) frame(s)")
            XCTAssertGreaterThan(CompositionFixtures.maxDifference(reference, plain), 1e-3, "the LoRA changes the U-Net")
            // The U-Net is itself again.
            let after = try pipeline.unet(sample: sample, timesteps: [500], encoderHiddenStates: region)
            XCTAssertEqual(after.values, plain.values)
        }
    }
}

extension Attention {
    /// The projection a test LoRA (`.to_k`, `.to_v`, `.to_out.0`) belongs to.
    func layer(for lora: LoRA) -> Linear {
        switch lora.modulePath {
        case ".to_k": return toK
        case ".to_v": return toV
        default: return toOut
        }
    }
}
