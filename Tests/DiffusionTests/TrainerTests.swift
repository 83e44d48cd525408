import Foundation
import XCTest
import Models
import Tensor
@testable import Diffusion

final class TrainerTests: XCTestCase {
    var folders: [String] = []
    override func tearDown() {
        for folder in folders { try? FileManager.default.removeItem(atPath: folder) }
    }

    func folder(_ name: String) -> String {
        let path = TinyPretraining.temporaryFolder(name)
        folders.append(path)
        return path
    }

    // MARK: Objectives

    func testAutoencoderStepsReduceTheLossOnAFixedBatch() throws {
        let config = TinyPretraining.config()
        let vae = try AutoencoderKL(config: config.vae)
        try vae.initializeParameters(generator: RandomGenerator(seed: 1))
        let (pixels, _) = try TinyPretraining.PatternData().batch(index: 0, count: 4, frames: 1)
        func loss(_ random: RandomGenerator) throws -> Tensor {
            var random = random
            return try PretrainingObjectives.autoencoderLoss(vae, pixels: pixels, random: &random, l1Weight: 1, l2Weight: 1, klWeight: 1e-6)
        }
        let fixed = RandomGenerator(seed: 9)
        let before = try Tensor.withoutGrad { try loss(fixed) }.item
        let trainer = try Trainer(folder: folder("vae"), parameters: vae.namedParameters(),
                                  options: TrainerOptions(steps: 8, learningRate: 3e-3, checkpointingSteps: 100))
        try trainer.train { _, _ in try loss(fixed) }
        let after = try Tensor.withoutGrad { try loss(fixed) }.item
        XCTAssertLessThan(after, before * 0.8, "loss \(before) → \(after)")
        XCTAssertEqual(trainer.history.count, 8)
    }

    func testDiffusionStepsReduceTheLossOnAFixedBatch() throws {
        let (unet, text, tokenizer) = try tinyDenoiser()
        let scheduler = DDPMScheduler(config: TinyPretraining.config().scheduler)
        var latentRandom = RandomGenerator(seed: 4)
        let latents = latentRandom.normal([2, 4, 2, 8, 8])
        func loss(_ random: RandomGenerator) throws -> Tensor {
            var random = random
            return try PretrainingObjectives.diffusionLoss(unet: unet, textEncoder: text, tokenizer: tokenizer, scheduler: scheduler,
                                                           latents: latents, captions: ["a red square", "a blue square"],
                                                           captionDropout: 0.1, random: &random)
        }
        let fixed = RandomGenerator(seed: 5)
        let before = try Tensor.withoutGrad { try loss(fixed) }.item
        let parameters = unet.namedParameters(prefix: "unet.") + text.namedParameters(prefix: "text_encoder.")
        let trainer = try Trainer(folder: folder("unet"), parameters: parameters,
                                  options: TrainerOptions(steps: 8, learningRate: 3e-3, checkpointingSteps: 100))
        try trainer.train { _, _ in try loss(fixed) }
        let after = try Tensor.withoutGrad { try loss(fixed) }.item
        XCTAssertLessThan(after, before * 0.9, "loss \(before) → \(after)")
    }

    /// Min-SNR weights follow diffusers' formulas, and with a γ no timestep reaches the loss is the
    /// plain MSE, while a small γ damps the low-noise samples.
    func testMinSNRWeightingMatchesDiffusersAndReducesToMSE() throws {
        let cumprod: [Float] = [0.99, 0.5, 0.2, 0]  // SNR 99, 1, 0.25, 0
        let v = PretrainingObjectives.minSNRWeights(timesteps: [0, 1, 2, 3], alphasCumprod: cumprod, gamma: 5, predictionType: .vPrediction)
        for (weight, expected) in zip(v, [5 / Float(100), 1, 1, 1]) { XCTAssertEqual(weight, expected, accuracy: 1e-5) }
        let epsilon = PretrainingObjectives.minSNRWeights(timesteps: [0, 1, 3], alphasCumprod: cumprod, gamma: 5, predictionType: .epsilon)
        for (weight, expected) in zip(epsilon, [5 / Float(99), 1, 1]) { XCTAssertEqual(weight, expected, accuracy: 1e-5) }

        let lossAt = try fixedDiffusionLoss(latentShape: [4, 4, 1, 8, 8], captions: Array(repeating: "a red square", count: 4),
                                          predictionType: .vPrediction)
        func loss(_ gamma: Float?) throws -> Float { try lossAt(gamma, nil) }
        let plain = try loss(nil)
        XCTAssertEqual(try loss(1e30), plain, accuracy: plain * 1e-5)
        XCTAssertLessThan(try loss(0.5), plain)
    }

    /// unet_training.object_weight: latent cells weigh 1 + w × their pixels' object share; each
    /// sample's error is then Σ w·d² / (C·Σ w) (checked against a loop), uniform weights give the
    /// plain loss, and weights on the object cells change it.
    func testObjectCellWeightsAndWeightedDiffusionLoss() throws {
        // Two 2-frame samples of 4×4 masks over a 2×2 latent grid; sample 1's second frame has
        // three of the four pixels of its top-left cell on an object.
        let masks = Tensor(zeros: [4, 1, 4, 4])
        for pixel in [0, 1, 4] { masks.data[3 * 16 + pixel] = 1 }
        masks.data[0 * 16 + 15] = 1
        masks.data[1 * 16 + 2] = 1     // sample 0, frame 1, top-right cell: 1 of 4 pixels
        let weights = try PretrainingObjectives.objectCellWeights(masks: masks, frames: 2, latentHeight: 2, latentWidth: 2, objectWeight: 4)
        XCTAssertEqual(weights.shape, [2, 1, 2, 2, 2])
        var expected = [Float](repeating: 1, count: 16)
        expected[3] = 1 + 4 * 0.25     // sample 0, frame 0, bottom-right cell: 1 of 4 pixels
        expected[5] = 1 + 4 * 0.25     // sample 0, frame 1, top-right cell
        expected[12] = 1 + 4 * 0.75    // sample 1, frame 1, top-left cell: 3 of 4 pixels
        XCTAssertEqual(weights.values, expected)
        XCTAssertThrowsError(try PretrainingObjectives.objectCellWeights(masks: masks, frames: 2, latentHeight: 3, latentWidth: 2, objectWeight: 4))
        XCTAssertThrowsError(try PretrainingObjectives.objectCellWeights(masks: masks, frames: 3, latentHeight: 2, latentWidth: 2, objectWeight: 4))

        var random = RandomGenerator(seed: 12)
        let prediction = random.normal([2, 3, 2, 2, 2]), target = random.normal([2, 3, 2, 2, 2])
        let weighted = try PretrainingObjectives.squaredError(prediction, target, elementWeights: weights).values
        for sample in 0..<2 {
            var sum = 0.0, total = 0.0
            for channel in 0..<3 {
                for cell in 0..<8 {
                    let w = Double(weights.data[sample * 8 + cell])
                    let d = Double(prediction.data[(sample * 3 + channel) * 8 + cell] - target.data[(sample * 3 + channel) * 8 + cell])
                    sum += w * d * d
                    total += w
                }
            }
            XCTAssertEqual(Double(weighted[sample]), sum / total, accuracy: 1e-5)
        }
        let uniform = try PretrainingObjectives.squaredError(prediction, target, elementWeights: Tensor(repeating: 2, shape: [2, 1, 2, 2, 2]))
        let plain = try PretrainingObjectives.squaredError(prediction, target, elementWeights: nil)
        for (a, b) in zip(uniform.values, plain.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertThrowsError(try PretrainingObjectives.squaredError(prediction, target, elementWeights: Tensor(zeros: [2, 1, 2, 2])))

        // Through diffusionLoss: uniform weights leave the loss as it was; object weights move it.
        let lossAt = try fixedDiffusionLoss(latentShape: [2, 4, 2, 8, 8], captions: ["a red square", "a blue square"])
        func loss(_ elementWeights: Tensor?) throws -> Float { try lossAt(nil, elementWeights) }
        let unweighted = try loss(nil)
        XCTAssertEqual(try loss(Tensor(repeating: 3, shape: [2, 1, 2, 8, 8])), unweighted, accuracy: unweighted * 1e-5)
        let cellMasks = Tensor(zeros: [4, 1, 16, 16])
        for slot in 0..<4 { for pixel in 0..<40 { cellMasks.data[slot * 256 + pixel] = 1 } }
        let objectWeights = try PretrainingObjectives.objectCellWeights(masks: cellMasks, frames: 2, latentHeight: 8, latentWidth: 8, objectWeight: 8)
        XCTAssertNotEqual(try loss(objectWeights), unweighted)
    }

    /// The tiny denoiser's loss on fixed latents (seed 4) and draws (seed 9), without gradients, as a
    /// function of Min-SNR's γ and the element weights.
    func fixedDiffusionLoss(latentShape: [Int], captions: [String], predictionType: SchedulerConfig.PredictionType? = nil)
        throws -> (Float?, Tensor?) throws -> Float {
        let (unet, text, tokenizer) = try tinyDenoiser()
        var config = TinyPretraining.config().scheduler
        if let predictionType { config.predictionType = predictionType }
        let scheduler = DDPMScheduler(config: config)
        var latentRandom = RandomGenerator(seed: 4)
        let latents = latentRandom.normal(latentShape)
        return { gamma, elementWeights in
            var random = RandomGenerator(seed: 9)
            return try Tensor.withoutGrad {
                try PretrainingObjectives.diffusionLoss(unet: unet, textEncoder: text, tokenizer: tokenizer, scheduler: scheduler,
                                                        latents: latents, captions: captions, captionDropout: 0, snrGamma: gamma,
                                                        elementWeights: elementWeights, random: &random)
            }.item
        }
    }

    // MARK: Checkpoints and resume

    /// A denoiser run whose loss draws from every per-step stream (captions, noise, timesteps, dropout).
    func denoiserRun(folder: String, options: TrainerOptions, until: Int? = nil, resume: Bool) throws -> (Trainer, Int?) {
        let (unet, text, tokenizer) = try tinyDenoiser()
        let scheduler = DDPMScheduler(config: TinyPretraining.config().scheduler)
        let trainer = try Trainer(folder: folder, parameters: unet.namedParameters(prefix: "unet.") + text.namedParameters(prefix: "text_encoder."),
                                  options: options)
        let resumedAt = resume ? try trainer.resume() : nil
        let data = TinyPretraining.PatternData()
        try trainer.train(until: until) { step, random in
            // The step's captions come from the data stream, its latents from the step's own generator.
            let (_, captions) = try data.batch(index: step, count: 2, frames: 1)
            var latentRandom = random.derived(7)
            let input = latentRandom.normal([2, 4, 1, 8, 8])
            return try PretrainingObjectives.diffusionLoss(unet: unet, textEncoder: text, tokenizer: tokenizer, scheduler: scheduler,
                                                           latents: input, captions: captions, captionDropout: 0.5, random: &random)
        }
        return (trainer, resumedAt)
    }

    func testResumeAfterAKillIsBitIdenticalToAnUninterruptedRun() throws {
        let options = TrainerOptions(steps: 6, learningRate: 2e-3, lrScheduler: "cosine", lrWarmupSteps: 2, emaDecay: 0.9,
                                     checkpointingSteps: 2)
        let (whole, _) = try denoiserRun(folder: folder("whole"), options: options, resume: false)

        let interrupted = folder("interrupted")
        // Killed after step 3: the checkpoint of step 2 survives, step 3 is lost (at most one interval).
        let (abandoned, _) = try denoiserRun(folder: interrupted, options: options, until: 3, resume: false)
        XCTAssertEqual(abandoned.step, 3)
        let (resumed, resumedAt) = try denoiserRun(folder: interrupted, options: options, resume: true)
        XCTAssertEqual(resumedAt, 2)
        XCTAssertEqual(resumed.step, 6)

        for ((path, a), (_, b)) in zip(whole.parameters, resumed.parameters) {
            XCTAssertEqual(a.values, b.values, path)
        }
        for (a, b) in zip(whole.ema!.shadow, resumed.ema!.shadow) { XCTAssertEqual(a.values, b.values, a.name ?? "") }
        XCTAssertEqual(whole.history.map(\.loss), resumed.history.map(\.loss))
        // The last two checkpoints are kept.
        XCTAssertEqual(TrainerCheckpoint.list(in: interrupted).map(\.step), [4, 6])
        let log = try String(contentsOfFile: (interrupted as NSString).appendingPathComponent("loss.csv"), encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 7)
    }

    func testAHalfWrittenCheckpointIsIgnoredOnResume() throws {
        let options = TrainerOptions(steps: 4, learningRate: 1e-3, checkpointingSteps: 2)
        let run = folder("half")
        _ = try denoiserRun(folder: run, options: options, resume: false)
        // A write killed midway: the temporary folder with a torn weights file and no state.
        let torn = (run as NSString).appendingPathComponent(".checkpoint-000006.tmp-4242")
        try FileManager.default.createDirectory(atPath: torn, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: (torn as NSString).appendingPathComponent("model.safetensors")))
        // A folder under a checkpoint name but without trainer_state.json is not a checkpoint either.
        try FileManager.default.createDirectory(atPath: (run as NSString).appendingPathComponent("checkpoint-000008"), withIntermediateDirectories: true)
        var longer = options
        longer.steps = 6
        let (resumed, at) = try denoiserRun(folder: run, options: longer, resume: true)
        XCTAssertEqual(at, 4)
        XCTAssertEqual(resumed.step, 6)
        XCTAssertFalse(FileManager.default.fileExists(atPath: torn))
    }

    func testANonFiniteLossNamesTheStep() throws {
        let weight = Tensor(repeating: 1, shape: [3])
        let trainer = try Trainer(folder: folder("nan"), parameters: [("weight", weight)],
                                  options: TrainerOptions(steps: 5, learningRate: 0.1, checkpointingSteps: 100))
        XCTAssertThrowsError(try trainer.train { step, _ in
            let scale: Float = step == 2 ? .nan : 1
            return try (weight * scale).sum()
        }) { error in
            guard case .nonFiniteLoss(let step, let value)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(step, 2)
            XCTAssertTrue(value.isNaN)
            XCTAssertTrue("\(error)".contains("step 3"), "\(error)")
        }
        XCTAssertEqual(trainer.step, 2)
    }

    func testANonFiniteGradientNamesTheParameter() throws {
        let weight = Tensor(repeating: 1, shape: [2]), other = Tensor(repeating: 0, shape: [2])
        let trainer = try Trainer(folder: folder("inf"), parameters: [("weight", weight), ("other", other)],
                                  options: TrainerOptions(steps: 2, learningRate: 0.1, checkpointingSteps: 100))
        // The gradient of sqrt at 0 is infinite while the loss (0) is finite.
        XCTAssertThrowsError(try trainer.train { _, _ in try (weight * 0).sum() + other.sqrt().sum() }) { error in
            guard case .nonFiniteGradient(let step, let parameter)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(step, 0)
            XCTAssertEqual(parameter, "other")
        }
    }

    // MARK: Helpers

    func tinyDenoiser() throws -> (UNet3DConditionModel, CLIPTextModel, CLIPTokenizer) {
        var config = TinyPretraining.config()
        let tokenizerFolder = folder("tokenizer")
        try CLIPTokenizer.writeVocabulary(words: TinyPretraining.PatternData().vocabularyWords, to: tokenizerFolder, maxLength: 8)
        let tokenizer = try CLIPTokenizer(folder: tokenizerFolder)
        config.textEncoder.vocabSize = tokenizer.vocabulary.count
        let unet = try UNet3DConditionModel(config: config.unet)
        let text = try CLIPTextModel(config: config.textEncoder)
        try unet.initializeParameters(generator: RandomGenerator(seed: 2))
        try text.initializeParameters(generator: RandomGenerator(seed: 3))
        return (unet, text, tokenizer)
    }
}
