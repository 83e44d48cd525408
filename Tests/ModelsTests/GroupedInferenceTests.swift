import Foundation
import Models
import Tensor
import XCTest

/// Inference runs a batch sample by sample in one group per thread (`inferInGroups`) only where the
/// samples are independent, and each sample computes what it computes alone on one thread.
final class GroupedInferenceTests: XCTestCase {
    /// Records the batch size and thread count every call sees; adds nothing.
    final class Recorder: LayerDelta {
        let adapterName = "recorder"
        let isPerSample: Bool
        let lock = NSLock()
        var calls: [(batch: Int, threads: Int)] = []
        init(isPerSample: Bool) { self.isPerSample = isPerSample }
        func delta(_ x: Tensor) throws -> Tensor? {
            lock.withLock { calls.append((x.shape[0], Parallel.threadCount)) }
            return nil
        }
    }

    final class PlainProcessor: AttentionProcessor {
        func attend(_ attention: Attention, query: Tensor, key: Tensor, value: Tensor, call: AttentionCall) throws -> Tensor {
            try ScaledDotProductAttentionProcessor.shared.attend(attention, query: query, key: key, value: value, call: call)
        }
    }

    func makeModel() throws -> (UNet3DConditionModel, Tensor, Tensor) { try ModelFixtures.tinyUNet3D(batch: 2) }

    func testEverySampleComputesWhatItComputesAloneOnOneThread() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let (model, sample, text) = try makeModel()
        let timesteps: [Float] = [250, 700]
        Parallel.threadCount = 1
        let alone = try Tensor.withoutGrad {
            try (0..<2).map { i in
                try model(sample: sample.slice(rows: i..<i + 1), timesteps: [timesteps[i]], encoderHiddenStates: text.slice(rows: i..<i + 1)).values
            }
        }
        let oneThread = try Tensor.withoutGrad { try model(sample: sample, timesteps: timesteps, encoderHiddenStates: text).values }
        Parallel.threadCount = 2
        let grouped = try Tensor.withoutGrad { try model(sample: sample, timesteps: timesteps, encoderHiddenStates: text).values }
        XCTAssertEqual(grouped, alone[0] + alone[1])
        XCTAssertEqual(oneThread, grouped, "a batch gives the same bytes on one thread and on two (DESIGN principle 8)")
        Parallel.threadCount = 3
        let fewerSamplesThanThreads = try Tensor.withoutGrad { try model(sample: sample, timesteps: timesteps, encoderHiddenStates: text).values }
        XCTAssertEqual(fewerSamplesThanThreads, grouped, "and on three threads, with fewer samples than threads")
    }

    /// Guided sampling's batch (one sample at one timestep, two texts) runs conv_in and
    /// transformer_in, which read neither the text nor the timestep, once over all threads, and the
    /// rest sample by sample in groups, with each sample's bytes as it computes them alone.
    func testGuidedBatchRunsItsTextFreeInputLayersOnce() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let (model, sample, text) = try makeModel()
        let one = try sample.slice(rows: 0..<1)
        let guided = try Tensor.concat([one, one], axis: 0)
        Parallel.threadCount = 1
        let alone = try Tensor.withoutGrad {
            try (0..<2).map { i in try model(sample: one, timesteps: [400], encoderHiddenStates: text.slice(rows: i..<i + 1)).values }
        }
        Parallel.threadCount = 2
        let first = Recorder(isPerSample: true), last = Recorder(isPerSample: true)
        model.convIn.deltas = [first]
        model.convOut.deltas = [last]
        defer { model.convIn.deltas = []; model.convOut.deltas = [] }
        func run(_ timesteps: [Float]) throws -> [Float] {
            first.calls = []
            last.calls = []
            return try Tensor.withoutGrad { try model(sample: guided, timesteps: timesteps, encoderHiddenStates: text).values }
        }
        func seen(_ recorder: Recorder) -> [String] { recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" } }
        XCTAssertEqual(try run([400, 400]), alone[0] + alone[1], "the bytes of each sample alone")
        XCTAssertEqual(seen(first), ["batch 3 on 2 threads"], "conv_in once, over all threads")
        XCTAssertEqual(seen(last), ["batch 3 on 1 threads", "batch 3 on 1 threads"], "conv_out per sample, in groups")
        XCTAssertEqual(try run([400]), alone[0] + alone[1], "one timestep for the batch")
        XCTAssertEqual(seen(first), ["batch 3 on 2 threads"])
        _ = try run([400, 401])
        XCTAssertEqual(seen(first), ["batch 3 on 1 threads", "batch 3 on 1 threads"], "other timesteps: nothing shared")
    }

    /// The autoencoder's encoder and decoder run their images in groups the same way.
    func testAutoencoderRunsImagesInGroups() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let config = try JSONDecoder().decode(AutoencoderKLConfig.self, from: Data("""
            {"block_out_channels": [8, 16], "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
             "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "layers_per_block": 1, "latent_channels": 4,
             "norm_num_groups": 4}
            """.utf8))
        let vae = try AutoencoderKL(config: config)
        ModelFixtures.randomise(vae, seed: 12)
        var generator = RandomGenerator(seed: 6)
        let images = generator.normal([3, 3, 8, 8]), latents = generator.normal([3, 4, 4, 4])
        Parallel.threadCount = 1
        let (alone, aloneDecoded) = try Tensor.withoutGrad {
            (try (0..<3).flatMap { try vae.encodeDistribution(images.slice(rows: $0..<$0 + 1)).mean.values },
             try (0..<3).flatMap { try vae.decode(latents.slice(rows: $0..<$0 + 1)).values })
        }
        Parallel.threadCount = 2
        let recorder = Recorder(isPerSample: true)
        vae.decoder.convIn.deltas = [recorder]
        let (grouped, groupedDecoded) = try Tensor.withoutGrad {
            (try vae.encodeDistribution(images).mean.values, try vae.decode(latents).values)
        }
        vae.decoder.convIn.deltas = []
        XCTAssertEqual(grouped, alone)
        XCTAssertEqual(groupedDecoded, aloneDecoded)
        XCTAssertEqual(recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" },
                       Array(repeating: "batch 1 on 1 threads", count: 3))
    }

    func testOnlyIndependentSamplesAreSplit() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 2
        let (model, sample, text) = try makeModel()
        func calls(_ recorder: Recorder, grad: Bool = false) throws -> [String] {
            model.convIn.deltas = [recorder]
            defer { model.convIn.deltas = [] }
            if grad {
                _ = try model(sample: sample, timesteps: [500], encoderHiddenStates: text)
            } else {
                _ = try Tensor.withoutGrad { try model(sample: sample, timesteps: [500], encoderHiddenStates: text) }
            }
            // conv_in sees each clip's 3 frames as images: one clip alone is a batch of 3.
            return recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" }
        }
        XCTAssertEqual(try calls(Recorder(isPerSample: true)), ["batch 3 on 1 threads", "batch 3 on 1 threads"])
        XCTAssertEqual(try calls(Recorder(isPerSample: false)), ["batch 6 on 2 threads"], "a delta that is not per sample keeps the batch")
        XCTAssertEqual(try calls(Recorder(isPerSample: true), grad: true), ["batch 3 on 1 threads", "batch 3 on 1 threads"],
                       "training splits a batch of clips too")

        let attention = try XCTUnwrap(model.attentionLayers().first?.attention)
        attention.processor = PlainProcessor()
        XCTAssertEqual(try calls(Recorder(isPerSample: true)), ["batch 6 on 2 threads"], "a method's processor keeps the batch")
        attention.processor = ScaledDotProductAttentionProcessor()
        XCTAssertEqual(try calls(Recorder(isPerSample: true)), ["batch 3 on 1 threads", "batch 3 on 1 threads"],
                       "any instance of the default processor is the default")
        attention.processor = ScaledDotProductAttentionProcessor.shared
    }

    /// Training keeps a batch whole where its dropout draws masks for the whole batch, and for
    /// pictures (one frame per sample), where sample by sample measured slower.
    func testTrainingKeepsDropoutAndPictureBatchesWhole() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 2
        let (model, sample, text) = try makeModel()
        let recorder = Recorder(isPerSample: true)
        model.convIn.deltas = [recorder]
        defer { model.convIn.deltas = [] }
        var dropout = RandomGenerator(seed: 3)
        _ = try model(sample: sample, timesteps: [500], encoderHiddenStates: text, dropoutGenerator: &dropout)
        XCTAssertEqual(recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" }, ["batch 6 on 2 threads"], "dropout")
        recorder.calls = []
        _ = try model(sample: sample.slice(axis: 2, 0..<1), timesteps: [500], encoderHiddenStates: text)
        XCTAssertEqual(recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" }, ["batch 2 on 2 threads"], "pictures")
    }

    /// A training pass whose layers draw no dropout (AnimateDiff's: every dropout probability 0)
    /// runs sample by sample although a dropout generator is given, and leaves the generator as it
    /// was, as the whole batch's pass would; UNet3D's temporal convolutions draw (p = 0.1).
    func testTrainingWithoutDropoutDrawsRunsSampleBySample() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 2
        let path = ModelFixtures.path("animatediff", "unet/config.json")
        let model = try UNetMotionModel(config: UNetMotionConfig.load(path: path), file: path)
        ModelFixtures.randomise(model, seed: 4)
        XCTAssertFalse(model.drawsDropout)
        XCTAssertTrue(try makeModel().0.drawsDropout)
        var generator = RandomGenerator(seed: 2)
        let sample = generator.normal([2, 4, 2, 8, 8]), text = generator.normal([2, 3, 16])
        let recorder = Recorder(isPerSample: true)
        model.convIn.deltas = [recorder]
        defer { model.convIn.deltas = [] }
        var dropout = RandomGenerator(seed: 3)
        var untouched = dropout
        _ = try model(sample: sample, timesteps: [300, 600], encoderHiddenStates: text, dropoutGenerator: &dropout)
        XCTAssertEqual(recorder.calls.map { "batch \($0.batch) on \($0.threads) threads" }, ["batch 2 on 1 threads", "batch 2 on 1 threads"])
        XCTAssertEqual(dropout.uniformValues(count: 4), untouched.uniformValues(count: 4))
    }

    /// A training step on a batch of clips runs sample by sample: every parameter's gradient has the
    /// same bytes on one thread and on two, and matches the whole batch's (kept whole here by a delta
    /// that is not per sample) up to the order of the sum over samples.
    func testTrainingGradientsAreTheSameOnAnyThreadCountAndMatchTheWholeBatch() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        let (model, sample, text) = try makeModel()
        sample.requiresGrad = true
        model.setRequiresGrad(true)
        defer { model.setRequiresGrad(false) }
        let parameters = model.namedParameters().map(\.tensor) + [sample]
        func gradients(threads: Int, whole: Bool = false) throws -> [[Float]] {
            Parallel.threadCount = threads
            model.convIn.deltas = whole ? [Recorder(isPerSample: false)] : []
            defer { model.convIn.deltas = [] }
            for tensor in parameters { tensor.grad = nil }
            try model(sample: sample, timesteps: [250, 700], encoderHiddenStates: text).pow(2).mean().backward()
            return try parameters.map { try XCTUnwrap($0.grad, $0.name ?? "sample").values }
        }
        let two = try gradients(threads: 2)
        XCTAssertEqual(two, try gradients(threads: 1))
        let whole = try gradients(threads: 2, whole: true)
        XCTAssertNotEqual(two, whole, "the whole batch is a different computation")
        for (index, (a, b)) in zip(two, whole).enumerated() {
            let scale = b.map(abs).max() ?? 0
            let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, 1e-5 * max(scale, 1e-3), "tensor \(index)")
        }
    }
}
