import Adapters
import Diffusion
import Foundation
import Models
import Tensor
import XCTest
@testable import Methods

/// The two paths of a MotionDirector step: which adapters each one switches on, and where each
/// path's gradient goes.
final class MotionDirectorPathTests: XCTestCase {
    private var pipeline: TextToVideoPipeline!
    private var adapters: MotionDirectorAdapters!
    private var text: Tensor!

    override func setUpWithError() throws {
        pipeline = try Support.pipeline()
        adapters = try MotionDirectorAdapters(unet: pipeline.unet, spatialCount: 2, temporal: true,
                                              config: LoRAConfig(rank: 2), generator: RandomGenerator(seed: 3))
        try Support.makeVisible(adapters.set, adapters.trainedNames, seed: 5)
        text = try pipeline.encodePrompt("a photo of a cat")
    }

    private var names: [String] { adapters.trainedNames }

    private func forward(_ sample: Tensor) throws -> Tensor {
        try pipeline.unet(sample: sample, timesteps: [500], encoderHiddenStates: text)
    }

    func testAdapterLayoutFollowsMethods() throws {
        XCTAssertEqual(names, ["temporal", "spatial-0", "spatial-1"])
        let temporal = try adapters.set.loras(of: "temporal").map(\.modulePath)
        XCTAssertTrue(temporal.allSatisfy { $0.hasPrefix("transformer_in.") || $0.contains(".temp_attentions.") })
        XCTAssertTrue(temporal.contains { $0.hasSuffix("attn2.to_v") } && temporal.contains { $0.hasSuffix("ff.net.2") })
        let spatial = try adapters.set.loras(of: "spatial-1").map(\.modulePath)
        XCTAssertTrue(spatial.allSatisfy { $0.contains(".attentions.") && !$0.contains("attn2") })
        XCTAssertTrue(spatial.contains { $0.hasSuffix("attn1.to_out.0") } && spatial.contains { $0.hasSuffix("ff.net.0.proj") })
        XCTAssertTrue(try adapters.set.loras(of: "temporal").allSatisfy { $0.rank == 2 && $0.scale == 1 })
    }

    func testSpatialPathGivesGradientsOnlyToItsSpatialLoRA() throws {
        try adapters.configureSpatialPath("spatial-1")
        let frame = Support.tensor([1, 4, 1, 8, 8], seed: 1)
        try Tensor.mseLoss(forward(frame), Support.tensor([1, 4, 1, 8, 8], seed: 2)).backward()
        let gradients = try Support.gradients(adapters.set, names)
        for (key, gradient) in gradients {
            if key.hasPrefix("spatial-1/") {
                let values = try XCTUnwrap(gradient, "\(key) has no gradient")
                XCTAssertTrue(values.contains { $0 != 0 }, "\(key): zero gradient")
            } else {
                XCTAssertNil(gradient, "\(key) got a gradient from the spatial path")
            }
        }
    }

    func testTemporalPathKeepsTheActiveSpatialLoRAFrozen() throws {
        let clip = Support.tensor([1, 4, 3, 8, 8], seed: 1)
        // The clip's spatial LoRA takes part in the temporal pass: switching it off changes the output.
        try adapters.configureTemporalPath(spatial: nil)
        let withoutSpatial = try Tensor.withoutGrad { try forward(clip) }
        try adapters.configureTemporalPath(spatial: "spatial-0")
        let prediction = try forward(clip)
        XCTAssertNotEqual(prediction.values, withoutSpatial.values)

        try AppearanceDebiasedLoss.temporalLoss(prediction: prediction, target: Support.tensor([1, 4, 3, 8, 8], seed: 2),
                                                beta: 1, anchor: 1).backward()
        for (key, gradient) in try Support.gradients(adapters.set, names) {
            if key.hasPrefix("temporal/") {
                let values = try XCTUnwrap(gradient, "\(key) has no gradient")
                XCTAssertTrue(values.contains { $0 != 0 }, "\(key): zero gradient")
            } else {
                XCTAssertNil(gradient, "\(key) got a gradient from the temporal loss")
            }
        }
    }

    /// A whole step: the spatial LoRA's gradient is complete before the temporal loss exists, and the
    /// backward pass of what the step returns adds nothing to it; the temporal LoRA gets only that
    /// pass's gradient.
    func testStepBackPropagatesEachPathIntoItsOwnAdapter() throws {
        var config = Support.config(steps: 1)
        config.spatialLoRAOffProbability = 0
        let step = MotionDirectorStep(unet: pipeline.unet, adapters: adapters, scheduler: DDPMScheduler(config: pipeline.schedulerConfig),
                                      config: config)
        let clip = Support.clips(1, frames: 3)[0]
        var random = RandomGenerator(seed: 11)
        let outcome = try step.run(clip: clip, spatialAdapter: "spatial-0", textStates: text, step: 0, random: &random)
        XCTAssertFalse(outcome.spatialLoRAsOff)
        let spatialLoss = try XCTUnwrap(outcome.spatialLoss), temporalLoss = try XCTUnwrap(outcome.temporalLoss)
        XCTAssertEqual(outcome.loss.item, temporalLoss + spatialLoss, accuracy: 1e-6 * (temporalLoss + spatialLoss))

        let afterSpatial = try Support.gradients(adapters.set, names)
        XCTAssertTrue(afterSpatial.filter { $0.key.hasPrefix("spatial-0/") }.allSatisfy { $0.value != nil })
        XCTAssertTrue(afterSpatial.filter { !$0.key.hasPrefix("spatial-0/") }.allSatisfy { $0.value == nil })
        try outcome.loss.backward()
        let afterBoth = try Support.gradients(adapters.set, names)
        for (key, gradient) in afterBoth {
            if key.hasPrefix("spatial-0/") {
                XCTAssertEqual(gradient, afterSpatial[key]!, "\(key) changed in the temporal backward pass")
            } else if key.hasPrefix("temporal/") {
                XCTAssertNotNil(gradient, "\(key) has no gradient")
            } else {
                XCTAssertNil(gradient, "\(key): another clip's spatial LoRA got a gradient")
            }
        }
    }

    func testStepWithSpatialLoRAsOffSkipsTheSpatialPath() throws {
        var config = Support.config(steps: 1)
        config.spatialLoRAOffProbability = 1
        let step = MotionDirectorStep(unet: pipeline.unet, adapters: adapters, scheduler: DDPMScheduler(config: pipeline.schedulerConfig),
                                      config: config)
        var random = RandomGenerator(seed: 11)
        let outcome = try step.run(clip: Support.clips(1, frames: 3)[0], spatialAdapter: "spatial-0", textStates: text, step: 0,
                                   random: &random)
        XCTAssertTrue(outcome.spatialLoRAsOff)
        XCTAssertNil(outcome.spatialLoss)
        try outcome.loss.backward()
        for (key, gradient) in try Support.gradients(adapters.set, names) {
            XCTAssertEqual(gradient == nil, key.hasPrefix("spatial-"), key)
        }
        for name in adapters.spatialNames {
            XCTAssertEqual(adapters.set.summaries().first { $0.name == name }?.isEnabled, false)
        }
    }

    func testLoRADropoutIsOffAtInference() throws {
        let set = AdapterSet(model: pipeline.unet)
        try set.inject("d", config: LoRAConfig(rank: 2, dropout: 0.5), targets: ModulePattern.motionDirectorTemporal,
                       generator: RandomGenerator(seed: 1))
        try Support.makeVisible(set, ["d"], seed: 9)
        let clip = Support.tensor([1, 4, 3, 8, 8], seed: 4)
        try set.setTraining(generator: RandomGenerator(seed: 2))
        let training = try Tensor.withoutGrad { try forward(clip) }
        try set.setTraining(generator: nil)
        let first = try Tensor.withoutGrad { try forward(clip) }
        let second = try Tensor.withoutGrad { try forward(clip) }
        XCTAssertEqual(first.values, second.values)
        XCTAssertNotEqual(first.values, training.values, "dropout did not act while training")
        // At inference the LoRA adds exactly scale · B A x.
        let lora = try set.loras(of: "d")[0]
        let x = Support.tensor([5, lora.geometry.inputs], seed: 8)
        let delta = try XCTUnwrap(lora.delta(x))
        let expected = try Tensor.linear(Tensor.linear(x, weight: lora.down), weight: lora.up) * lora.scale
        XCTAssertEqual(delta.values, expected.values)
    }

    func testInferenceConfigurationSetsStrengths() throws {
        try adapters.configureInference(spatialScale: 0.5)
        let summaries = Dictionary(uniqueKeysWithValues: adapters.set.summaries().map { ($0.name, $0) })
        XCTAssertEqual(summaries["temporal"]?.multiplier, 1)
        XCTAssertEqual(summaries["spatial-0"]?.multiplier, 0.5)
        XCTAssertEqual(summaries["spatial-1"]?.isEnabled, true)
        try adapters.configureInference(spatialScale: 0)
        XCTAssertEqual(adapters.set.summaries().first { $0.name == "spatial-1" }?.isEnabled, false)
        try adapters.restoreTrainingStrengths()
        XCTAssertTrue(adapters.set.summaries().allSatisfy { $0.multiplier == 1 })
    }
}
