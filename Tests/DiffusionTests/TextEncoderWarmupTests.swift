import Foundation
import XCTest
import Models
import Tensor
@testable import Diffusion

/// Pretraining's text-encoder warm-up (stage 1b): the objective reads the right states and
/// targets, training makes the states after the end marker tell the caption, the U-Net stage starts
/// from the result, and the stage resumes and refuses bad options by key.
final class TextEncoderWarmupTests: XCTestCase {
    private let captions = ["a red square", "a blue square", "a white square", "a green square", "a square", "a red blue square"]

    private func tinyEncoder(_ config: PretrainConfig, vocabulary: Int, seed: UInt64) throws -> (CLIPTextModel, CaptionSlotHead) {
        var textConfig = config.textEncoder
        textConfig.vocabSize = vocabulary
        let encoder = try CLIPTextModel(config: textConfig)
        try encoder.initializeParameters(generator: RandomGenerator(seed: seed))
        let head = CaptionSlotHead(hiddenSize: textConfig.hiddenSize, slots: config.warmupSlots, vocabulary: vocabulary)
        try head.initializeParameters(generator: RandomGenerator(seed: seed &+ 1))
        encoder.setRequiresGrad(true)
        head.setRequiresGrad(true)
        return (encoder, head)
    }

    private func tokenizer(in folder: String, maxLength: Int) throws -> CLIPTokenizer {
        try CLIPTokenizer.writeVocabulary(words: TinyPretraining.PatternData().vocabularyWords, to: folder, maxLength: maxLength)
        return try CLIPTokenizer(folder: folder)
    }

    /// The loss is the mean cross-entropy, over each caption's filled word slots, of the head's
    /// predictions from the end marker's state and from padding states, computed here in Double
    /// from the encoder's outputs; the accuracy counts the argmax hits among those slots.
    func testTheLossReadsTheEndMarkerAndPaddingStatesAndEveryFilledSlot() throws {
        let config = TinyPretraining.config()
        let folder = TinyPretraining.temporaryFolder("tokenizer")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let tokenizer = try tokenizer(in: folder, maxLength: config.textEncoder.maxPositionEmbeddings)
        let vocabulary = tokenizer.vocabulary.count
        let (encoder, head) = try tinyEncoder(config, vocabulary: vocabulary, seed: 9)
        var random = RandomGenerator(seed: 4)
        var replay = random
        let (loss, accuracy) = try TextEncoderWarmupObjective.loss(textEncoder: encoder, head: head, tokenizer: tokenizer,
                                                                   captions: captions, random: &random)

        let ids = captions.map { tokenizer($0).ids }
        let states = try Tensor.withoutGrad { try encoder(ids) }.values
        let weight = head.projection.weight.values, bias = try XCTUnwrap(head.projection.bias).values
        let length = ids[0].count, width = config.textEncoder.hiddenSize, slots = head.slots
        var total = 0.0, terms = 0, hits = 0
        for (item, sequence) in ids.enumerated() {
            let end = try XCTUnwrap(sequence.indices.dropFirst().first { sequence[$0] == tokenizer.endId })
            let pads = length - end - 1
            XCTAssertGreaterThan(pads, 0, "the tiny captions leave padding")
            let positions = [end] + (try replay.integers(below: pads, count: TextEncoderWarmupObjective.padPositionsPerCaption)).map { end + 1 + $0 }
            let words = Array(sequence[1..<end].prefix(slots))
            for position in positions {
                let state = (0..<width).map { Double(states[(item * length + position) * width + $0]) }
                for (slot, word) in words.enumerated() {
                    let logits = (0..<vocabulary).map { token -> Double in
                        let row = slot * vocabulary + token
                        return Double(bias[row]) + (0..<width).reduce(0.0) { $0 + Double(weight[row * width + $1]) * state[$1] }
                    }
                    let top = logits.max()!
                    let logSum = top + Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp($1 - top) })
                    total -= logits[word] - logSum
                    terms += 1
                    if logits.firstIndex(of: top) == word { hits += 1 }
                }
            }
        }
        XCTAssertEqual(Double(loss.values[0]), total / Double(terms), accuracy: 1e-4 * total / Double(terms))
        XCTAssertEqual(accuracy, Float(hits) / Float(terms), accuracy: 1e-6)
        // Each of the 4 states predicts every filled slot; "a red blue square" has 4 words for 3 slots.
        XCTAssertEqual(terms, 4 * (3 + 3 + 3 + 3 + 2 + 3))
        // Gradients reach the encoder's weights.
        try loss.backward()
        XCTAssertNotNil(encoder.textModel.embeddings.tokenEmbedding.weight.grad)
    }

    /// Asserts that `model`'s text encoder holds `warmed` (to F16) and is not the fresh draw.
    private func assertTextEncoder(of model: String, equals warmed: [String: Tensor], seed: UInt64,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let saved = try TextToVideoPipeline.load(folder: model).textEncoder
        let fresh = try CLIPTextModel(config: saved.config)
        try fresh.initializeParameters(generator: RandomGenerator(seed: seed).derived(3))
        let freshValues = Dictionary(uniqueKeysWithValues: fresh.namedParameters(prefix: "text_encoder.").map { ($0.path, $0.tensor.values) })
        var differsFromFresh = false
        for (path, tensor) in saved.namedParameters(prefix: "text_encoder.") {
            let expected = try XCTUnwrap(warmed[path], path, file: file, line: line).values
            let worst = zip(tensor.values, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-3, path, file: file, line: line)
            if tensor.values != freshValues[path] { differsFromFresh = true }
        }
        XCTAssertTrue(differsFromFresh, file: file, line: line)
    }

    /// A few dozen steps make the end marker's and padding states tell the caption's words, where
    /// a fresh encoder guesses. Without `train_text_encoder` the U-Net stage keeps the warmed encoder frozen, through
    /// a resume too, while the U-Net learns at a rate that would move any trained weight.
    func testTheWarmupTeachesTheCaptionAndTheUNetStageKeepsItFrozen() throws {
        var config = TinyPretraining.config()
        config.textEncoderWarmup.trainer = TrainerOptions(steps: 60, learningRate: 1e-2, checkpointingSteps: 30)
        config.textEncoderWarmup.batchSize = 16
        config.unetTraining.trainer = TrainerOptions(steps: 2, learningRate: 1e-2, checkpointingSteps: 1)
        config.preview.every = 0
        config.unetTraining.trainTextEncoder = false
        let run = TinyPretraining.temporaryFolder("warmup")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let data = TinyPretraining.PatternData()
        let pretraining = try Pretraining(newRunIn: run, config: config, data: data)
        var accuracies: [Float] = []
        pretraining.onStep = { stage, _ in
            if stage == .textEncoderWarmup, let accuracy = pretraining.warmupSlotAccuracy { accuracies.append(accuracy) }
        }
        let model = try pretraining.run()
        XCTAssertEqual(accuracies.count, 60)
        XCTAssertLessThan(accuracies[0], 0.5)
        XCTAssertGreaterThan(accuracies.suffix(5).reduce(0, +) / 5, 0.95)

        let warmed = try XCTUnwrap(pretraining.warmUpTextEncoder())
        try assertTextEncoder(of: model, equals: warmed, seed: config.seed)
        let checkpoint = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/unet")).path
        let trained = try TrainerCheckpoint.readTensors((checkpoint as NSString).appendingPathComponent(TrainerCheckpoint.modelFile))
        XCTAssertFalse(trained.keys.contains { $0.hasPrefix("text_encoder.") || $0.hasPrefix("head.") })
        XCTAssertTrue(trained.keys.contains { $0.hasPrefix("unet.") })
        try Pretraining(resumingIn: run, data: data) { $0.unetTraining.trainer.steps = 3 }.run()
        try assertTextEncoder(of: model, equals: warmed, seed: config.seed)
    }

    /// With `train_text_encoder` the U-Net stage trains the encoder too, starting from the warmed
    /// one: at a zero learning rate the saved model keeps it exactly (to F16), not the fresh draw.
    func testATrainedTextEncoderStartsFromTheWarmup() throws {
        var config = TinyPretraining.config()
        config.textEncoderWarmup.trainer = TrainerOptions(steps: 10, learningRate: 1e-2, checkpointingSteps: 10)
        config.unetTraining.trainer = TrainerOptions(steps: 1, learningRate: 0, adamWeightDecay: 0, checkpointingSteps: 1)
        config.unetTraining.trainTextEncoder = true
        config.preview.every = 0
        let run = TinyPretraining.temporaryFolder("warmup-trained")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let pretraining = try Pretraining(newRunIn: run, config: config, data: TinyPretraining.PatternData())
        let model = try pretraining.run()
        try assertTextEncoder(of: model, equals: try XCTUnwrap(pretraining.warmUpTextEncoder()), seed: config.seed)
        let checkpoint = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/unet")).path
        let trained = try TrainerCheckpoint.readTensors((checkpoint as NSString).appendingPathComponent(TrainerCheckpoint.modelFile))
        XCTAssertTrue(trained.keys.contains { $0.hasPrefix("text_encoder.") })
    }

    /// A warm-up stopped at its checkpoint and resumed ends with the same weights as one run through;
    /// once the U-Net stage has begun, the warm-up cannot grow.
    func testTheWarmupResumesAndCannotGrowOnceTheUNetStageStarted() throws {
        var config = TinyPretraining.config()
        config.textEncoderWarmup.trainer = TrainerOptions(steps: 4, learningRate: 1e-2, checkpointingSteps: 2)
        config.preview.every = 0
        let whole = TinyPretraining.temporaryFolder("warmup-whole"), split = TinyPretraining.temporaryFolder("warmup-split")
        defer { for folder in [whole, split] { try? FileManager.default.removeItem(atPath: folder) } }
        let data = TinyPretraining.PatternData()
        let straight = try XCTUnwrap(Pretraining(newRunIn: whole, config: config, data: data).warmUpTextEncoder())
        var short = config
        short.textEncoderWarmup.trainer.steps = 2
        try Pretraining(newRunIn: split, config: short, data: data).warmUpTextEncoder()
        let resumed = try Pretraining(resumingIn: split, data: data) { $0.textEncoderWarmup.trainer.steps = 4 }
        var starts: [(PretrainingStage, Int)] = []
        resumed.onStageStart = { stage, done, _ in starts.append((stage, done)) }
        let continued = try XCTUnwrap(resumed.warmUpTextEncoder())
        XCTAssertEqual(starts.map(\.0), [.textEncoderWarmup])
        XCTAssertEqual(starts.first?.1, 2)
        XCTAssertEqual(Set(continued.keys), Set(straight.keys))
        for (path, tensor) in straight { XCTAssertEqual(continued[path]?.values, tensor.values, path) }

        try resumed.run()
        let grown = try Pretraining(resumingIn: split, data: data) { $0.textEncoderWarmup.trainer.steps = 6 }
        XCTAssertThrowsError(try grown.run()) { error in
            XCTAssertTrue("\(error)".contains("text_encoder_warmup.trainer.max_train_steps"), "\(error)")
        }
    }

    /// Slot accuracy of `encoder` with `head` on fixed captions.
    private func slotAccuracy(_ encoder: CLIPTextModel, _ head: CaptionSlotHead, tokenizer: CLIPTokenizer) throws -> Float {
        var random = RandomGenerator(seed: 12)
        return try Tensor.withoutGrad {
            try TextEncoderWarmupObjective.loss(textEncoder: encoder, head: head, tokenizer: tokenizer,
                                                captions: captions, random: &random).slotAccuracy
        }
    }

    /// `warmup_loss_weight` keeps the warm-up's objective through a U-Net stage that trains the
    /// encoder, with the head trained along: the states keep telling the caption where, trained
    /// through the U-Net's loss alone, the same encoder loses it.
    func testTheWarmupLossKeepsTheCaptionInATrainedEncoder() throws {
        var results: [Float] = []
        XCTAssertTrue(PretrainConfig().unetTraining.trainTextEncoder)
        XCTAssertEqual(PretrainConfig().unetTraining.warmupLossWeight, 1)
        for weight in [Float(0), 1] {
            var config = TinyPretraining.config()
            config.textEncoderWarmup.trainer = TrainerOptions(steps: 60, learningRate: 1e-2, checkpointingSteps: 60)
            config.textEncoderWarmup.batchSize = 16
            config.unetTraining.trainer = TrainerOptions(steps: 40, learningRate: 3e-2, checkpointingSteps: 40)
            config.unetTraining.trainTextEncoder = true
            config.unetTraining.warmupLossWeight = weight
            config.preview.every = 0
            let run = TinyPretraining.temporaryFolder("warmup-loss")
            defer { try? FileManager.default.removeItem(atPath: run) }
            let pretraining = try Pretraining(newRunIn: run, config: config, data: TinyPretraining.PatternData())
            var reported = false
            pretraining.onStep = { stage, _ in if stage == .unet, pretraining.warmupSlotAccuracy != nil { reported = true } }
            let model = try pretraining.run()
            XCTAssertEqual(reported, weight > 0)
            let encoder = try TextToVideoPipeline.load(folder: model).textEncoder
            let warmed = try XCTUnwrap(pretraining.warmUpTextEncoder())
            let head = CaptionSlotHead(hiddenSize: config.textEncoder.hiddenSize, slots: config.warmupSlots,
                                       vocabulary: encoder.config.vocabSize)
            let checkpoint = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/unet")).path
            let trained = try TrainerCheckpoint.finalWeights(checkpoint)
            XCTAssertEqual(trained.keys.contains { $0.hasPrefix("head.") }, weight > 0)
            try head.loadWeights(from: InMemoryWeights(weight > 0 ? trained : warmed), prefix: "head.")
            results.append(try slotAccuracy(encoder, head, tokenizer: pretraining.tokenizer))
        }
        print("slot accuracy after the U-Net stage: without the warm-up loss \(results[0]), with it \(results[1])")
        XCTAssertGreaterThan(results[1], 0.8)
        XCTAssertLessThan(results[0], results[1] - 0.2)
    }

    func testBadWarmupOptionsNameTheirKey() throws {
        for (edit, key) in [({ (c: inout PretrainConfig) in c.textEncoderWarmup.slots = 0 }, "text_encoder_warmup.slots"),
                            ({ (c: inout PretrainConfig) in c.textEncoderWarmup.slots = 7 }, "text_encoder_warmup.slots"),
                            ({ (c: inout PretrainConfig) in c.textEncoderWarmup.batchSize = 0 }, "text_encoder_warmup.batch_size"),
                            ({ (c: inout PretrainConfig) in c.textEncoderWarmup.trainer.steps = -1 }, "max_train_steps"),
                            ({ (c: inout PretrainConfig) in c.unetTraining.warmupLossWeight = -1 }, "unet_training.warmup_loss_weight"),
                            ({ (c: inout PretrainConfig) in c.unetTraining.warmupLossBatchSize = 0 }, "unet_training.warmup_loss_batch_size")] {
            var config = TinyPretraining.config()
            edit(&config)
            XCTAssertThrowsError(try config.validate(file: "config.json"), key) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)")
            }
        }
        let file = TinyPretraining.temporaryFolder("config") + ".json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(#"{"text_encoder_warmup": {"slots": "all"}}"#.utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try PretrainConfig.load(path: file)) { error in
            XCTAssertTrue("\(error)".contains("text_encoder_warmup.slots"), "\(error)")
        }
        // Absent, it takes the defaults; 0 steps turns the stage off.
        try Data(#"{"text_encoder_warmup": {"trainer": {"max_train_steps": 0}}}"#.utf8).write(to: URL(fileURLWithPath: file))
        let off = try PretrainConfig.load(path: file)
        XCTAssertEqual(off.textEncoderWarmup.trainer.steps, 0)
        XCTAssertNil(off.textEncoderWarmup.slots)
        XCTAssertEqual(off.warmupSlots, 38, "every position between the default encoder's markers")
    }
}
