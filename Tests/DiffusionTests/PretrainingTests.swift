import Foundation
import XCTest
import Models
import Tensor
@testable import Diffusion

final class PretrainingTests: XCTestCase {
    func testBothStagesRunResumeAndSaveADiffusersFolder() throws {
        let run = TinyPretraining.temporaryFolder("pretrain")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let data = TinyPretraining.PatternData()
        var stages: [(PretrainingStage, Int, Int)] = []
        var previews: [Int: [PreviewSample]] = [:], reconstructions: [Int: [PreviewSample]] = [:]
        let pretraining = try Pretraining(newRunIn: run, config: TinyPretraining.config(), data: data)
        pretraining.onStageStart = { stages.append(($0, $1, $2)) }
        pretraining.onPreview = { stage, step, samples in
            if stage == .vae { reconstructions[step] = samples } else { previews[step] = samples }
        }
        let model = try pretraining.run()
        XCTAssertEqual(stages.map(\.0), [.vae, .textEncoderWarmup, .unet])
        XCTAssertEqual(previews.keys.sorted(), [2])
        XCTAssertEqual(previews[2]?.map(\.frames.count), [1, 2])
        XCTAssertEqual(previews[2]?.first?.frames.first?.shape, [3, 16, 16])
        XCTAssertEqual(reconstructions.keys.sorted(), [2])
        XCTAssertEqual(reconstructions[2]?.map(\.frames.count), [2, 2, 2, 2])
        XCTAssertEqual(reconstructions[2]?.first?.frames.map(\.shape), [[3, 16, 16], [3, 16, 16]])

        // The saved folder loads as a pipeline, with the world's tokenizer and a measured scaling factor.
        let pipeline = try TextToVideoPipeline.load(folder: model)
        XCTAssertEqual(pipeline.tokenizer.maxLength, 8)
        XCTAssertEqual(pipeline.textEncoder.config.vocabSize, pipeline.tokenizer.vocabulary.count)
        XCTAssertNotEqual(pipeline.vae.config.scalingFactor, 1)
        let weights = try SafeTensorsFileProbe.dtypes(of: (model as NSString).appendingPathComponent("unet/diffusion_pytorch_model.safetensors"))
        XCTAssertEqual(weights, ["F16"])
        for stage in ["vae", "text_encoder_warmup", "unet"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/\(stage)/loss.csv"), stage)
            XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/\(stage)")?.step, 2, stage)
        }

        // A new run refuses the folder; resuming with more U-Net steps continues from step 2.
        XCTAssertThrowsError(try Pretraining(newRunIn: run, config: TinyPretraining.config(), data: data)) { error in
            XCTAssertTrue("\(error)".contains("not empty"), "\(error)")
        }
        let resumed = try Pretraining(resumingIn: run, data: data) { $0.unetTraining.trainer.steps = 3; $0.preview.every = 0 }
        var resumedStages: [(PretrainingStage, Int, Int)] = []
        resumed.onStageStart = { resumedStages.append(($0, $1, $2)) }
        try resumed.run()
        XCTAssertEqual(resumedStages.map(\.0), [.unet])
        XCTAssertEqual(resumedStages.first?.1, 2)
        XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/unet")?.step, 3)
        // Models cannot change on resume.
        XCTAssertThrowsError(try Pretraining(resumingIn: run, data: data) { $0.unet.layersPerBlock = 2 })
    }

    /// `startingFrom:` (the CLI's --init-from): the models come from the folder, its autoencoder is
    /// not trained, the warm-up trains only its head, and the U-Net stage starts from its weights; the
    /// run keeps a copy, so it resumes with the source gone; a folder that is no model leaves nothing.
    func testARunFromAModelStartsFromItsWeightsAndResumesWithoutIt() throws {
        let source = TinyPretraining.temporaryFolder("pretrain-source"), run = TinyPretraining.temporaryFolder("pretrain-from")
        defer { for folder in [source, run] { try? FileManager.default.removeItem(atPath: folder) } }
        let data = TinyPretraining.PatternData()
        var config = TinyPretraining.config()
        config.preview.every = 0
        let sourceModel = try Pretraining(newRunIn: source, config: config, data: data).run()

        // Other model configs in the given config are replaced by the model's; a zero learning rate
        // shows where the U-Net stage starts.
        var next = config
        next.unet.layersPerBlock = 2
        next.unetTraining.trainer = TrainerOptions(steps: 1, learningRate: 0, adamWeightDecay: 0, emaDecay: 0.9, checkpointingSteps: 1)
        next.textEncoderWarmup.trainer = TrainerOptions(steps: 3, learningRate: 1e-2, checkpointingSteps: 3)
        let pretraining = try Pretraining(newRunIn: run, config: next, data: data, startingFrom: sourceModel)
        XCTAssertEqual(pretraining.config.unet.layersPerBlock, config.unet.layersPerBlock)
        XCTAssertEqual(pretraining.config.vaeTraining.trainer.steps, 0)
        var stages: [PretrainingStage] = []
        pretraining.onStageStart = { stage, _, _ in stages.append(stage) }
        let model = try pretraining.run()
        XCTAssertEqual(stages, [.textEncoderWarmup, .unet])
        XCTAssertNil(TrainerCheckpoint.latest(in: "\(run)/vae"))
        let warmup = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/text_encoder_warmup")).path
        let warmed = try TrainerCheckpoint.readTensors((warmup as NSString).appendingPathComponent(TrainerCheckpoint.modelFile))
        XCTAssertFalse(warmed.isEmpty)
        XCTAssertTrue(warmed.keys.allSatisfy { $0.hasPrefix("head.") }, "\(warmed.keys.sorted())")
        let (before, after) = (try TextToVideoPipeline.load(folder: sourceModel), try TextToVideoPipeline.load(folder: model))
        XCTAssertEqual(after.vae.config.scalingFactor, before.vae.config.scalingFactor)
        for (name, old, new) in [("vae", before.vae.stateDict(), after.vae.stateDict()),
                                 ("text_encoder", before.textEncoder.stateDict(), after.textEncoder.stateDict()),
                                 ("unet", before.unet.stateDict(), after.unet.stateDict())] {
            XCTAssertEqual(old.map(\.0), new.map(\.0), name)
            for ((path, a), (_, b)) in zip(old, new) { XCTAssertEqual(a.values, b.values, "\(name).\(path)") }
        }

        // With the source gone, the run resumes from its own copy and trains on.
        try FileManager.default.removeItem(atPath: source)
        let resumed = try Pretraining(resumingIn: run, data: data) { $0.unetTraining.trainer.steps = 2 }
        var resumedAt: [Int] = []
        resumed.onStageStart = { _, done, _ in resumedAt.append(done) }
        _ = try TextToVideoPipeline.load(folder: resumed.run())
        XCTAssertEqual(resumedAt, [1])
        XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/unet")?.step, 2)

        let elsewhere = TinyPretraining.temporaryFolder("pretrain-bad")
        XCTAssertThrowsError(try Pretraining(newRunIn: elsewhere, config: config, data: data, startingFrom: source)) { error in
            XCTAssertTrue("\(error)".contains(source), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: elsewhere))
    }

    /// vae_training.object_weight: the reconstruction terms become means weighted 1 + w on object
    /// pixels; uniform weights give the plain loss; data without masks and negative weights are refused.
    func testObjectWeightedReconstructionLoss() throws {
        let config = TinyPretraining.config()
        let vae = try AutoencoderKL(config: config.vae)
        try vae.initializeParameters(generator: RandomGenerator(seed: 3))
        let data = TinyPretraining.PatternData()
        let (pixels, _, masked) = try data.maskedBatch(index: 0, count: 2, frames: 1)
        let masks = try XCTUnwrap(masked)
        let covered = masks.values.reduce(0, +) / Float(masks.count)
        XCTAssertGreaterThan(covered, 0.05)
        XCTAssertLessThan(covered, 0.5)
        func loss(_ weights: Tensor?, l2: Float = 1) throws -> Float {
            var random = RandomGenerator(seed: 9)
            return try PretrainingObjectives.autoencoderLoss(vae, pixels: pixels, random: &random, l1Weight: 1, l2Weight: l2,
                                                             klWeight: 0, pixelWeights: weights).values[0]
        }
        XCTAssertEqual(try loss(Tensor(repeating: 3, shape: masks.shape)), try loss(nil), accuracy: 1e-5)
        // Against the formula, from the same posterior sample.
        var random = RandomGenerator(seed: 9)
        let posterior = try vae.encodeDistribution(pixels)
        let reconstruction = try vae.decode(posterior.sample(noise: random.normal(posterior.mean.shape)))
        let weights = try masks * 4 + 1
        let plane = 16 * 16
        var weighted = 0.0, total = 0.0
        for item in 0..<2 {
            for channel in 0..<3 {
                for pixel in 0..<plane {
                    let index = (item * 3 + channel) * plane + pixel
                    let w = Double(weights.data[item * plane + pixel])
                    weighted += w * Double(abs(reconstruction.data[index] - pixels.data[index]))
                    total += w
                }
            }
        }
        XCTAssertEqual(Double(try loss(weights, l2: 0)), weighted / total, accuracy: 1e-5)
        // The L2 term alike: (L1 + L2) − L1 = Σ w·d² / Σ w.
        var squared = 0.0
        for item in 0..<2 {
            for channel in 0..<3 {
                for pixel in 0..<plane {
                    let index = (item * 3 + channel) * plane + pixel
                    let d = Double(reconstruction.data[index] - pixels.data[index])
                    squared += Double(weights.data[item * plane + pixel]) * d * d
                }
            }
        }
        XCTAssertEqual(Double(try loss(weights) - loss(weights, l2: 0)), squared / total, accuracy: 1e-5)
        XCTAssertNotEqual(try loss(weights), try loss(nil))

        var weightedConfig = config
        weightedConfig.vaeTraining.objectWeight = 4
        let run = TinyPretraining.temporaryFolder("object-weight")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let refused = try Pretraining(newRunIn: run, config: weightedConfig, data: TinyPretraining.MasklessData())
        XCTAssertThrowsError(try refused.run()) { error in
            XCTAssertTrue("\(error)".contains("vae_training.object_weight"), "\(error)")
        }
        weightedConfig.vaeTraining.objectWeight = -1
        XCTAssertThrowsError(try weightedConfig.validate(file: "config.json")) { error in
            XCTAssertTrue("\(error)".contains("vae_training.object_weight"), "\(error)")
        }
    }

    /// vae_training.initial_logvar: a fresh autoencoder's posterior starts with exactly that
    /// log-variance (and unchanged means), with or without quant_conv; pretraining applies it before
    /// its first step; values outside the posterior's clamp are refused.
    func testInitialLogvarStartsThePosteriorNearDeterministic() throws {
        let config = TinyPretraining.config()
        let (pixels, _) = try TinyPretraining.PatternData().batch(index: 0, count: 2, frames: 1)
        for useQuantConv in [true, false] {
            var vaeConfig = config.vae
            vaeConfig.useQuantConv = useQuantConv
            let vae = try AutoencoderKL(config: vaeConfig)
            try vae.initializeParameters(generator: RandomGenerator(seed: 3))
            let before = try vae.encodeDistribution(pixels)
            XCTAssertGreaterThan(before.logvar.values.map { abs($0) }.max() ?? 0, 0.01)
            vae.setInitialLogVariance(-10)
            let after = try vae.encodeDistribution(pixels)
            XCTAssertEqual(after.logvar.values, [Float](repeating: -10, count: after.logvar.count), "quant_conv \(useQuantConv)")
            XCTAssertEqual(after.mean.values, before.mean.values, "quant_conv \(useQuantConv)")
        }

        var started = config
        started.vaeTraining.initialLogvar = -10
        started.vaeTraining.trainer.steps = 1
        started.unetTraining.trainer.steps = 0
        let run = TinyPretraining.temporaryFolder("initial-logvar")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let vae = try Pretraining(newRunIn: run, config: started, data: TinyPretraining.PatternData()).trainAutoencoder()
        let logvar = try vae.encodeDistribution(pixels).logvar.values
        XCTAssertLessThan(logvar.max() ?? 0, -9.9)
        XCTAssertGreaterThan(logvar.min() ?? 0, -10.1)

        started.vaeTraining.initialLogvar = -40
        XCTAssertThrowsError(try started.validate(file: "config.json")) { error in
            XCTAssertTrue("\(error)".contains("vae_training.initial_logvar"), "\(error)")
        }
    }

    /// unet_training.object_weight trains on masks of images and clips alike, and is refused for
    /// data without masks and for negative weights.
    func testUNetObjectWeightTrainsAndIsRefusedWithoutMasks() throws {
        var config = TinyPretraining.config()
        config.vaeTraining.trainer.steps = 1
        config.unetTraining.trainer.steps = 4
        config.unetTraining.clipFraction = 1
        config.unetTraining.objectWeight = 4
        config.preview.every = 0
        let run = TinyPretraining.temporaryFolder("unet-object-weight")
        defer { try? FileManager.default.removeItem(atPath: run) }
        try Pretraining(newRunIn: run, config: config, data: TinyPretraining.PatternData()).run()
        XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/unet")?.step, 4)

        let maskless = TinyPretraining.temporaryFolder("unet-object-weight-maskless")
        defer { try? FileManager.default.removeItem(atPath: maskless) }
        XCTAssertThrowsError(try Pretraining(newRunIn: maskless, config: config, data: TinyPretraining.MasklessData()).run()) { error in
            XCTAssertTrue("\(error)".contains("unet_training.object_weight"), "\(error)")
        }
        config.unetTraining.objectWeight = -2
        XCTAssertThrowsError(try config.validate(file: "config.json")) { error in
            XCTAssertTrue("\(error)".contains("unet_training.object_weight"), "\(error)")
        }
    }

    func testConfigFilesNameTheBadKey() throws {
        let file = TinyPretraining.temporaryFolder("config") + ".json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data(#"{"unet_training": {"trainer": {"learning_rate": "fast"}}}"#.utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try PretrainConfig.load(path: file)) { error in
            XCTAssertTrue("\(error)".contains("unet_training.trainer.learning_rate"), "\(error)")
        }
        try Data(#"{"unet_training": {"trainer": {"lr_scheduler": "linear"}}}"#.utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try PretrainConfig.load(path: file)) { error in
            XCTAssertTrue("\(error)".contains("lr_scheduler"), "\(error)")
        }
        // A partial file keeps the defaults for the rest.
        try Data(#"{"seed": 7, "vae_training": {"batch_size": 3}}"#.utf8).write(to: URL(fileURLWithPath: file))
        let config = try PretrainConfig.load(path: file)
        XCTAssertEqual(config.seed, 7)
        XCTAssertEqual(config.vaeTraining.batchSize, 3)
        XCTAssertEqual(config.unet, PretrainConfig().unet)
        // The saved form reads back equal.
        XCTAssertEqual(try JSONDecoder().decode(PretrainConfig.self, from: config.encoded()), config)
    }

    func testTheDefaultAutoencoderNormalisesGroupsOfSeveralChannels() {
        // A group norm over single channels is an instance norm: it removes each channel's mean, so
        // a plain image's colour cannot survive the decoder's last norm before conv_out. (The first
        // base run, with 32 groups over 32 channels, reconstructed every background washed out.)
        let vae = PretrainConfig().vae
        for channels in vae.blockOutChannels {
            XCTAssertEqual(channels % vae.normNumGroups, 0)
            XCTAssertGreaterThanOrEqual(channels / vae.normNumGroups, 4, "\(channels) channels in \(vae.normNumGroups) groups")
        }
    }

    func testTheDefaultModelFitsFortyMegabytesInF16() throws {
        var config = PretrainConfig()
        config.textEncoder.vocabSize = 600
        let total = try AutoencoderKL(config: config.vae).parameterCount + UNet3DConditionModel(config: config.unet).parameterCount
            + CLIPTextModel(config: config.textEncoder).parameterCount
        XCTAssertLessThan(total * 2, 40_000_000, "\(total) parameters")
    }
}

/// The dtypes stored in a safetensors file.
enum SafeTensorsFileProbe {
    static func dtypes(of path: String) throws -> Set<String> {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let length = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
        return Set(header.compactMap { key, value in key == "__metadata__" ? nil : (value as? [String: Any])?["dtype"] as? String })
    }
}
