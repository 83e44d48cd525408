import Foundation
import XCTest
import Models
import Tensor
@testable import Diffusion

/// `architecture: animatediff` (issue 24): the U-Net stage trains the image U-Net on images, the
/// motion stage the motion modules on clips, and model/ is an AnimateDiffPipeline folder.
final class AnimateDiffPretrainingTests: XCTestCase {
    /// The tiny config in AnimateDiff's layout: image U-Net [8, 16], motion modules on the same blocks.
    static func config() -> PretrainConfig {
        var config = TinyPretraining.config()
        config.architecture = .animatediff
        config.unetTraining.clipFraction = 0
        config.imageUNet = UNet2DConditionConfig(blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4, crossAttentionDim: 16,
                                                 attentionHeads: 2, inChannels: 4, outChannels: 4, sampleSize: 8)
        config.motionAdapter = MotionAdapterConfig(blockOutChannels: [8, 16], layersPerBlock: 1, heads: 2, normNumGroups: 4,
                                                   maxSequenceLength: 8, useMidBlock: true)
        config.motionTraining = .init(trainer: TrainerOptions(steps: 2, learningRate: 1e-3, emaDecay: 0.9, checkpointingSteps: 1),
                                      clipBatchSize: 1, clipFrames: 3)
        return config
    }

    func tensors(_ checkpoint: String, _ file: String = TrainerCheckpoint.modelFile) throws -> [String: Tensor] {
        try TrainerCheckpoint.readTensors((checkpoint as NSString).appendingPathComponent(file))
    }

    /// Equal up to the F16 rounding of a saved model.
    func assertCloseToF16(_ saved: Tensor, _ exact: Tensor, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(saved.shape, exact.shape, name, file: file, line: line)
        let worst = zip(saved.values, exact.values).map { abs($0 - $1) - 1e-3 * abs($1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, 1e-6, name, file: file, line: line)
    }

    func testBothStagesTrainTheirOwnParametersAndSaveAnAnimateDiffPipeline() throws {
        let run = TinyPretraining.temporaryFolder("pretrain-ad")
        defer { try? FileManager.default.removeItem(atPath: run) }
        var stages: [PretrainingStage] = []
        var previews: [PretrainingStage: [Int]] = [:]
        let pretraining = try Pretraining(newRunIn: run, config: Self.config(), data: TinyPretraining.PatternData())
        pretraining.onStageStart = { stage, _, _ in stages.append(stage) }
        pretraining.onPreview = { stage, step, samples in
            previews[stage] = samples.map(\.frames.count)
            XCTAssertEqual(step, 2)
        }
        let model = try pretraining.run()
        XCTAssertEqual(stages, [.vae, .textEncoderWarmup, .unet, .motion])
        // The image stage draws pictures; the motion stage each prompt's frames.
        XCTAssertEqual(previews[.unet], [1, 1])
        XCTAssertEqual(previews[.motion], [1, 2])
        for stage in ["vae", "text_encoder_warmup", "unet", "motion"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/\(stage)/loss.csv"), stage)
            XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/\(stage)")?.step, 2, stage)
        }

        // model/ is an AnimateDiffPipeline folder that loads as a UNetMotionModel.
        let index = try String(contentsOfFile: "\(model)/model_index.json", encoding: .utf8)
        XCTAssertTrue(index.contains("AnimateDiffPipeline"), index)
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let unet = try XCTUnwrap(pipeline.unet as? UNetMotionModel)
        XCTAssertEqual(unet.config.blockOutChannels, [8, 16])
        XCTAssertEqual(unet.config.motionMaxSeqLength, 8)
        XCTAssertNotEqual(pipeline.vae.config.scalingFactor, 1)

        // The image stage trains an image U-Net: no motion module in its checkpoint.
        let imageFinal = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/unet")).path
        let imageWeights = try TrainerCheckpoint.finalWeights(imageFinal)
        XCTAssertFalse(imageWeights.keys.contains { $0.contains("motion_modules.") })
        XCTAssertTrue(imageWeights.keys.contains { $0.hasPrefix("text_encoder.") })
        // The motion stage (trainable motion_modules) trains motion-module parameters only ...
        let motionCheckpoints = TrainerCheckpoint.list(in: "\(run)/motion").map(\.path)
        XCTAssertEqual(motionCheckpoints.count, 2)
        let (first, last) = (try tensors(motionCheckpoints[0]), try tensors(motionCheckpoints[1]))
        XCTAssertFalse(last.isEmpty)
        XCTAssertTrue(last.keys.allSatisfy { $0.hasPrefix("unet.") && $0.contains("motion_modules.") }, "\(last.keys.sorted())")
        XCTAssertEqual(last.count, unet.namedParameters().filter { $0.path.contains("motion_modules.") }.count)
        // ... and changes them (the output projections start at zero) ...
        XCTAssertTrue(last.contains { key, tensor in first[key]!.values != tensor.values })
        let projection = try XCTUnwrap(last.first { $0.key.hasSuffix("motion_modules.0.proj_out.weight") }?.value)
        XCTAssertGreaterThan(projection.values.map { abs($0) }.max() ?? 0, 0)
        // ... while the saved image U-Net and text encoder are the image stage's averaged weights.
        let saved = Dictionary(uniqueKeysWithValues: unet.stateDict())
        var compared = 0
        for (key, exact) in imageWeights where key.hasPrefix("unet.") {
            assertCloseToF16(try XCTUnwrap(saved[String(key.dropFirst(5))], key), exact, key)
            compared += 1
        }
        XCTAssertEqual(compared, saved.keys.filter { !$0.contains("motion_modules.") }.count)
        let text = Dictionary(uniqueKeysWithValues: pipeline.textEncoder.stateDict())
        for (key, exact) in imageWeights where key.hasPrefix("text_encoder.") {
            assertCloseToF16(try XCTUnwrap(text[String(key.dropFirst(13))], key), exact, key)
        }
    }

    /// `motion_training.trainable` picks the trained U-Net parameters by path.
    func testTrainableSelectsParametersByPath() throws {
        let config = Self.config()
        let unet = try UNetMotionModel(image: UNet2DConditionModel(config: config.imageUNet),
                                       adapter: MotionAdapter(config: config.motionAdapter))
        let paths = unet.namedParameters().map(\.path)
        func selected(_ trainable: PretrainConfig.MotionTraining.Trainable) -> [String] {
            paths.filter { trainable.trainsUNetParameter($0) }
        }
        let motion = paths.filter { $0.contains("motion_modules.") }
        XCTAssertFalse(motion.isEmpty)
        XCTAssertEqual(selected(.motionModules), motion)
        XCTAssertEqual(selected(.motionModulesAndTextEncoder), motion)
        let crossAttention = Set(selected(.motionModulesAndCrossAttention)).subtracting(motion)
        XCTAssertFalse(crossAttention.isEmpty)
        XCTAssertTrue(crossAttention.allSatisfy { $0.contains(".attn2.to_k.") || $0.contains(".attn2.to_v.") }, "\(crossAttention.sorted())")
        XCTAssertEqual(crossAttention.count, paths.filter { !$0.contains("motion_modules.") && ($0.contains(".attn2.to_k.") || $0.contains(".attn2.to_v.")) }.count)
        XCTAssertEqual(selected(.all), paths)
        XCTAssertEqual(selected(.unet), paths)
        XCTAssertFalse(PretrainConfig.MotionTraining.Trainable.unet.trainsTextEncoder)
        XCTAssertTrue(PretrainConfig.MotionTraining.Trainable.all.trainsTextEncoder)
        XCTAssertFalse(PretrainConfig.MotionTraining.Trainable.motionModules.trainsTextEncoder)
        XCTAssertTrue(PretrainConfig.MotionTraining.Trainable.motionModulesAndCrossAttention.trainsTextEncoder)
    }

    /// A run killed in either stage (here by an error after step 3 of 4, checkpoints every 2 steps)
    /// and resumed ends bit for bit where the uninterrupted run ends, losing at most one interval.
    func testEachStageResumesAfterAKillBitExactly() throws {
        var config = Self.config()
        config.preview.every = 0
        config.unetTraining.trainer = TrainerOptions(steps: 4, learningRate: 1e-3, lrScheduler: "cosine", emaDecay: 0.9,
                                                     checkpointingSteps: 2, logEvery: 1)
        config.motionTraining.trainer = TrainerOptions(steps: 4, learningRate: 1e-3, lrScheduler: "cosine", emaDecay: 0.9,
                                                       checkpointingSteps: 2, logEvery: 1)
        config.motionTraining.trainable = .motionModulesAndTextEncoder
        let data = TinyPretraining.PatternData()
        struct Killed: Error {}
        func finished(_ run: String) throws -> [String: [Float]] {
            var all: [String: [Float]] = [:]
            for stage in ["unet", "motion"] {
                let last = try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/\(stage)"))
                XCTAssertEqual(last.step, 4)
                for file in [TrainerCheckpoint.modelFile, TrainerCheckpoint.emaFile, TrainerCheckpoint.optimizerFile] {
                    for (key, tensor) in try tensors(last.path, file) { all["\(stage)/\(file)/\(key)"] = tensor.values }
                }
                let losses = try LossLog.read("\(run)/\(stage)/loss.csv", upTo: 4).map(\.loss)
                all["\(stage)/losses"] = losses
            }
            return all
        }
        let whole = TinyPretraining.temporaryFolder("pretrain-ad-whole")
        defer { try? FileManager.default.removeItem(atPath: whole) }
        try Pretraining(newRunIn: whole, config: config, data: data).run()
        let expected = try finished(whole)
        XCTAssertEqual(expected["motion/losses"]?.count, 4)

        for killedStage in [PretrainingStage.unet, .motion] {
            let run = TinyPretraining.temporaryFolder("pretrain-ad-killed")
            defer { try? FileManager.default.removeItem(atPath: run) }
            let killed = try Pretraining(newRunIn: run, config: config, data: data)
            killed.onLog = { stage, _, records in
                if stage == killedStage, records.count == 3 { throw Killed() }
            }
            XCTAssertThrowsError(try killed.run()) { XCTAssertTrue($0 is Killed, "\($0)") }
            let resumed = try Pretraining(resumingIn: run, data: data)
            var starts: [(PretrainingStage, Int)] = []
            resumed.onStageStart = { stage, done, _ in starts.append((stage, done)) }
            try resumed.run()
            XCTAssertEqual(starts.first?.0, killedStage)
            XCTAssertEqual(starts.first?.1, 2, "at most one checkpoint interval lost")
            XCTAssertEqual(starts.map(\.0), killedStage == .unet ? [.unet, .motion] : [.motion])
            let got = try finished(run)
            XCTAssertEqual(Set(got.keys), Set(expected.keys))
            for (key, values) in expected { XCTAssertEqual(got[key], values, "\(killedStage): \(key)") }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(run)/model/unet/diffusion_pytorch_model.safetensors")),
                           try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model/unet/diffusion_pytorch_model.safetensors")))
        }
    }

    /// `startingFrom:` an AnimateDiff folder: the run takes its layout (whatever the config's
    /// architecture), both stages start from its weights (zero learning rates leave them as they
    /// were), and the run resumes from its own copy.
    func testARunFromAnAnimateDiffFolderContinuesBothStages() throws {
        let source = TinyPretraining.temporaryFolder("pretrain-ad-source"), run = TinyPretraining.temporaryFolder("pretrain-ad-from")
        defer { for folder in [source, run] { try? FileManager.default.removeItem(atPath: folder) } }
        let data = TinyPretraining.PatternData()
        var config = Self.config()
        config.preview.every = 0
        let sourceModel = try Pretraining(newRunIn: source, config: config, data: data).run()

        // A UNet3D config (clip_fraction 0.5) takes the model's layout.
        var next = TinyPretraining.config()
        next.preview.every = 0
        next.unetTraining.trainer = TrainerOptions(steps: 1, learningRate: 0, adamWeightDecay: 0, emaDecay: 0.9, checkpointingSteps: 1)
        next.motionTraining = .init(trainer: TrainerOptions(steps: 1, learningRate: 0, adamWeightDecay: 0, emaDecay: 0.9, checkpointingSteps: 1),
                                    clipBatchSize: 1, clipFrames: 2, trainable: .all)
        let pretraining = try Pretraining(newRunIn: run, config: next, data: data, startingFrom: sourceModel)
        XCTAssertEqual(pretraining.config.architecture, .animatediff)
        XCTAssertEqual(pretraining.config.unetTraining.clipFraction, 0)
        XCTAssertEqual(pretraining.config.imageUNet.blockOutChannels, [8, 16])
        XCTAssertEqual(pretraining.config.motionAdapter.motionMaxSeqLength, 8)
        var stages: [PretrainingStage] = []
        pretraining.onStageStart = { stage, _, _ in stages.append(stage) }
        let model = try pretraining.run()
        XCTAssertEqual(stages, [.textEncoderWarmup, .unet, .motion])
        let (before, after) = (try TextToVideoPipeline.load(folder: sourceModel), try TextToVideoPipeline.load(folder: model))
        XCTAssertTrue(after.unet is UNetMotionModel)
        for (name, old, new) in [("vae", before.vae.stateDict(), after.vae.stateDict()),
                                 ("text_encoder", before.textEncoder.stateDict(), after.textEncoder.stateDict()),
                                 ("unet", before.unet.stateDict(), after.unet.stateDict())] {
            XCTAssertEqual(old.map(\.0), new.map(\.0), name)
            for ((path, a), (_, b)) in zip(old, new) { XCTAssertEqual(a.values, b.values, "\(name).\(path)") }
        }

        try FileManager.default.removeItem(atPath: source)
        let resumed = try Pretraining(resumingIn: run, data: data) { $0.motionTraining.trainer.steps = 2 }
        var resumedAt: [PretrainingStage: Int] = [:]
        resumed.onStageStart = { stage, done, _ in resumedAt[stage] = done }
        XCTAssertTrue(try TextToVideoPipeline.load(folder: resumed.run()).unet is UNetMotionModel)
        XCTAssertEqual(resumedAt, [.motion: 1])
        XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/motion")?.step, 2)
    }

    /// `startingFrom:` a picture model (an image U-Net alone): an animatediff run whose motion stage
    /// starts from fresh motion modules of the config's `motion_adapter`.
    func testARunFromAnImageUNetAddsFreshMotionModules() throws {
        let source = TinyPretraining.temporaryFolder("pretrain-ad-image"), run = TinyPretraining.temporaryFolder("pretrain-ad-image-from")
        defer { for folder in [source, run] { try? FileManager.default.removeItem(atPath: folder) } }
        let data = TinyPretraining.PatternData()
        var config = Self.config()
        config.preview.every = 0
        let trained = try TextToVideoPipeline.load(folder: Pretraining(newRunIn: source + "-run", config: config, data: data).run())
        defer { try? FileManager.default.removeItem(atPath: source + "-run") }
        let image = try XCTUnwrap(trained.unet as? UNetMotionModel).imageUNet()
        try TextToVideoPipeline(tokenizer: trained.tokenizer, textEncoder: trained.textEncoder, unet: image, vae: trained.vae,
                                schedulerConfig: trained.schedulerConfig, tokenizerFiles: trained.tokenizerFiles).save(to: source)
        let pretraining = try Pretraining(newRunIn: run, config: config, data: data, startingFrom: source)
        XCTAssertEqual(pretraining.config.architecture, .animatediff)
        XCTAssertEqual(pretraining.config.imageUNet, image.config)
        let model = try TextToVideoPipeline.load(folder: pretraining.run())
        let unet = try XCTUnwrap(model.unet as? UNetMotionModel)
        XCTAssertEqual(unet.config.motionMaxSeqLength, config.motionAdapter.motionMaxSeqLength)
        XCTAssertEqual(TrainerCheckpoint.latest(in: "\(run)/motion")?.step, 2)
    }

    /// `startingFrom:` a UNet3D folder with an animatediff config (`customize pretrain --architecture
    /// animatediff --init-from samples/base`): the run stays animatediff, keeps the folder's
    /// autoencoder (no autoencoder stage), tokenizer and text encoder (the warm-up trains only its
    /// head), draws a fresh image U-Net and fresh motion modules from the config, saves the image
    /// U-Net's folder at image-stage checkpoints when asked, and resumes bit-exactly from its init/
    /// copy after a kill in either stage.
    func testAnAnimateDiffRunFromAUNet3DFolderKeepsItsAutoencoderAndTextEncoderAndDrawsAFreshDenoiser() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent("pipeline").path
        let source = try TextToVideoPipeline.load(folder: fixture)
        XCTAssertTrue(source.unet is UNet3DConditionModel)
        let data = TinyPretraining.PatternData()
        var config = Self.config()
        config.preview.every = 0
        config.unetTraining.trainer = TrainerOptions(steps: 4, learningRate: 1e-3, lrScheduler: "cosine", emaDecay: 0.9,
                                                     checkpointingSteps: 2, logEvery: 1)
        config.motionTraining.trainer = config.unetTraining.trainer
        var adopted = config
        try Pretraining.adoptArchitecture(ofModel: fixture, into: &adopted)
        XCTAssertEqual(adopted.architecture, .animatediff)
        var unet3d = TinyPretraining.config()
        try Pretraining.adoptArchitecture(ofModel: fixture, into: &unet3d)
        XCTAssertEqual(unet3d.architecture, .unet3d, "a UNet3D config still continues the folder's U-Net")

        let whole = TinyPretraining.temporaryFolder("pretrain-ad-from-3d")
        defer { try? FileManager.default.removeItem(atPath: whole) }
        let pretraining = try Pretraining(newRunIn: whole, config: config, data: data, startingFrom: fixture)
        XCTAssertEqual(pretraining.config.architecture, .animatediff)
        XCTAssertTrue(pretraining.drawsFreshDenoiser)
        XCTAssertEqual(pretraining.config.imageUNet, config.imageUNet)
        XCTAssertEqual(pretraining.config.vae, source.vae.config)
        XCTAssertEqual(pretraining.config.textEncoder.vocabSize, source.tokenizer.vocabulary.count)
        pretraining.saveModelAtCheckpoints = true
        var stages: [PretrainingStage] = []
        var savedAtCheckpoint: String?
        pretraining.onStageStart = { stage, _, _ in stages.append(stage) }
        pretraining.onStep = { stage, report in
            // model/ saved at the image stage's checkpoint 2 is the image U-Net's folder.
            if stage == .unet, report.step == 3 {
                savedAtCheckpoint = try? TextToVideoPipeline.load(folder: "\(whole)/model").unet.className
            }
        }
        let model = try TextToVideoPipeline.load(folder: pretraining.run())
        XCTAssertEqual(stages, [.textEncoderWarmup, .unet, .motion])
        XCTAssertEqual(savedAtCheckpoint, "UNet2DConditionModel")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(whole)/vae"))
        let unet = try XCTUnwrap(model.unet as? UNetMotionModel)
        XCTAssertEqual(try unet.imageUNet().config.blockOutChannels, config.imageUNet.blockOutChannels)
        XCTAssertEqual(unet.config.motionMaxSeqLength, config.motionAdapter.motionMaxSeqLength)
        XCTAssertEqual(model.tokenizer.vocabulary, source.tokenizer.vocabulary)
        // The autoencoder is the folder's, as it was.
        let vae = Dictionary(uniqueKeysWithValues: model.vae.stateDict())
        for (key, exact) in source.vae.stateDict() { assertCloseToF16(try XCTUnwrap(vae[key], key), exact, "vae.\(key)") }
        // The warm-up trained only its head on the folder's frozen encoder.
        let warmup = try tensors(XCTUnwrap(TrainerCheckpoint.latest(in: "\(whole)/text_encoder_warmup")).path)
        XCTAssertFalse(warmup.isEmpty)
        XCTAssertTrue(warmup.keys.allSatisfy { $0.hasPrefix("head.") }, "\(warmup.keys.sorted())")
        // The image stage started from a fresh draw, not the folder's weights: its first checkpoint
        // trains an image U-Net (no 3-D layers) and the text encoder that started as the folder's.
        let image = try TrainerCheckpoint.finalWeights(XCTUnwrap(TrainerCheckpoint.latest(in: "\(whole)/unet")).path)
        XCTAssertFalse(image.keys.contains { $0.contains("temp_") || $0.contains("motion_modules.") })
        XCTAssertTrue(image.keys.contains { $0.hasPrefix("text_encoder.") })

        struct Killed: Error {}
        let wholeBytes = try Data(contentsOf: URL(fileURLWithPath: "\(whole)/model/unet/diffusion_pytorch_model.safetensors"))
        for killedStage in [PretrainingStage.unet, .motion] {
            let run = TinyPretraining.temporaryFolder("pretrain-ad-from-3d-killed")
            defer { try? FileManager.default.removeItem(atPath: run) }
            let killed = try Pretraining(newRunIn: run, config: config, data: data, startingFrom: fixture)
            killed.onLog = { stage, _, records in
                if stage == killedStage, records.count == 3 { throw Killed() }
            }
            XCTAssertThrowsError(try killed.run()) { XCTAssertTrue($0 is Killed, "\($0)") }
            let resumed = try Pretraining(resumingIn: run, data: data)
            XCTAssertTrue(resumed.drawsFreshDenoiser)
            var starts: [(PretrainingStage, Int)] = []
            resumed.onStageStart = { stage, done, _ in starts.append((stage, done)) }
            try resumed.run()
            XCTAssertEqual(starts.first?.0, killedStage)
            XCTAssertEqual(starts.first?.1, 2, "at most one checkpoint interval lost")
            for stage in ["unet", "motion"] {
                let (got, expected) = (try XCTUnwrap(TrainerCheckpoint.latest(in: "\(run)/\(stage)")),
                                       try XCTUnwrap(TrainerCheckpoint.latest(in: "\(whole)/\(stage)")))
                for file in [TrainerCheckpoint.modelFile, TrainerCheckpoint.emaFile, TrainerCheckpoint.optimizerFile] {
                    let (a, b) = (try tensors(got.path, file), try tensors(expected.path, file))
                    XCTAssertEqual(Set(a.keys), Set(b.keys), "\(killedStage): \(stage)/\(file)")
                    for (key, tensor) in b { XCTAssertEqual(a[key]?.values, tensor.values, "\(killedStage): \(stage)/\(file)/\(key)") }
                }
            }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(run)/model/unet/diffusion_pytorch_model.safetensors")), wholeBytes)
        }
    }

    /// Config files with unknown keys or values that cannot work are refused naming the key.
    func testBadConfigsAreRefusedNamingTheKey() throws {
        let file = TinyPretraining.temporaryFolder("ad-config") + ".json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        func refused(_ json: String, _ key: String, line: UInt = #line) throws {
            try Data(json.utf8).write(to: URL(fileURLWithPath: file))
            XCTAssertThrowsError(try PretrainConfig.load(path: file), line: line) { error in
                XCTAssertTrue("\(error)".contains(key), "\(error)", line: line)
            }
        }
        let imageUNet = #""block_out_channels": [48, 96, 96], "layers_per_block": 1, "norm_num_groups": 16, "attention_head_dim": 4, "sample_size": 16, "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]"#
        try refused(#"{"architecure": "animatediff"}"#, "architecure")
        try refused(#"{"architecture": "dit"}"#, "architecture")
        try refused(#"{"motion_training": {"clip_frame": 8}}"#, "motion_training.clip_frame")
        try refused(#"{"unet_training": {"trainer": {"max_steps": 8}}}"#, "unet_training.trainer.max_steps")
        try refused(#"{"preview": {"prompts": [{"prompt": "a red circle", "frame": 1}]}}"#, "preview.prompts[0].frame")
        try refused(#"{"architecture": "animatediff", "motion_training": {"trainable": "everything"}}"#, "motion_training.trainable")
        try refused(#"{"architecture": "animatediff", "motion_training": {"clip_batch_size": 0}}"#, "motion_training.clip_batch_size")
        try refused(#"{"architecture": "animatediff", "motion_training": {"clip_frames": 1}}"#, "motion_training.clip_frames")
        try refused(#"{"architecture": "animatediff", "motion_training": {"clip_frames": 40}}"#, "motion_training.clip_frames")
        try refused(#"{"architecture": "animatediff", "motion_training": {"trainer": {"max_train_steps": -1}}}"#, "max_train_steps")
        try refused(#"{"architecture": "animatediff", "unet_training": {"image_batch_size": 0}}"#, "unet_training.image_batch_size")
        try refused(#"{"architecture": "animatediff", "unet_training": {"clip_fraction": 0.5}}"#, "unet_training.clip_fraction")
        try refused(#"{"architecture": "animatediff", "image_unet": {\#(imageUNet), "cross_attention_dim": 32}}"#, "image_unet.cross_attention_dim")
        try refused(#"{"architecture": "animatediff", "motion_adapter": {"block_out_channels": [48, 96], "motion_norm_num_groups": 16, "motion_num_attention_heads": 4, "motion_layers_per_block": 1}}"#,
                    "block_out_channels")
        try refused(#"{"architecture": "animatediff", "motion_adapter": {"block_out_channels": [48, 96, 96], "motion_norm_num_groups": 16, "motion_num_attention_heads": 4, "motion_layers_per_block": 2}}"#,
                    "motion_layers_per_block")
        try refused(#"{"architecture": "animatediff", "preview": {"prompts": [{"prompt": "a red circle", "frames": 48}]}}"#, "preview.prompts[0].frames")
        try refused(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "late"}}"#, "motion_training.timestep_bias_strategy")
        try refused(#"{"architecture": "animatediff", "motion_training": {"object_weight": -1}}"#, "motion_training.object_weight")
        try refused(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "later", "timestep_bias_multiplier": 0}}"#,
                    "motion_training.timestep_bias_multiplier")
        try refused(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "later", "timestep_bias_multiplier": 2, "timestep_bias_portion": 1.5}}"#,
                    "motion_training.timestep_bias_portion")
        try refused(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "range", "timestep_bias_multiplier": 2, "timestep_bias_begin": 900, "timestep_bias_end": 1200}}"#,
                    "motion_training.timestep_bias_end")
        try refused(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "range", "timestep_bias_multiplier": 2, "timestep_bias_begin": 900, "timestep_bias_end": 900}}"#,
                    "motion_training.timestep_bias_begin")

        // The built-in AnimateDiff base: an image-only U-Net stage by default, saved form reads back equal.
        try Data(#"{"architecture": "animatediff", "motion_training": {"trainable": "motion_modules+cross_attention"}}"#.utf8)
            .write(to: URL(fileURLWithPath: file))
        let config = try PretrainConfig.load(path: file)
        XCTAssertEqual(config.unetTraining.clipFraction, 0)
        XCTAssertEqual(config.motionTraining.trainable, .motionModulesAndCrossAttention)
        XCTAssertEqual(config.imageUNet, PretrainConfig.animateDiff().imageUNet)
        XCTAssertEqual(try JSONDecoder().decode(PretrainConfig.self, from: config.encoded()), config)
        XCTAssertEqual(PretrainConfig().architecture, .unet3d)
        XCTAssertEqual(PretrainConfig().unetTraining.clipFraction, 0.5)
        XCTAssertFalse(String(decoding: try PretrainConfig.animateDiff().encoded(), as: UTF8.self).contains("timestep_bias"))

        // A timestep bias reads, validates and writes back under diffusers' names.
        try Data(#"{"architecture": "animatediff", "motion_training": {"timestep_bias_strategy": "later", "timestep_bias_multiplier": 3, "timestep_bias_portion": 0.3}}"#.utf8)
            .write(to: URL(fileURLWithPath: file))
        let biased = try PretrainConfig.load(path: file)
        XCTAssertEqual(biased.motionTraining.timestepBias, TimestepBias(strategy: .later, multiplier: 3, portion: 0.3))
        XCTAssertEqual(try JSONDecoder().decode(PretrainConfig.self, from: biased.encoded()), biased)
    }

    /// The motion stage draws its timesteps with `motion_training`'s bias: the same run with all
    /// the weight on the noisiest ten timesteps logs another first-step loss, and the same bias
    /// twice the same loss.
    func testTheMotionStageDrawsTimestepsWithItsBias() throws {
        func firstMotionLoss(_ bias: TimestepBias, objectWeight: Float? = nil) throws -> String {
            let run = TinyPretraining.temporaryFolder("pretrain-ad-bias")
            defer { try? FileManager.default.removeItem(atPath: run) }
            var config = Self.config()
            config.motionTraining.timestepBias = bias
            config.motionTraining.objectWeight = objectWeight
            _ = try Pretraining(newRunIn: run, config: config, data: TinyPretraining.PatternData()).run()
            let lines = try String(contentsOfFile: "\(run)/motion/loss.csv", encoding: .utf8).split(separator: "\n")
            return String(lines[1].split(separator: ",")[1])
        }
        let noisiest = TimestepBias(strategy: .range, multiplier: 1e6, begin: 990, end: 1000)
        let plain = try firstMotionLoss(TimestepBias()), biased = try firstMotionLoss(noisiest)
        XCTAssertNotEqual(plain, biased)
        XCTAssertEqual(try firstMotionLoss(noisiest), biased)
        // motion_training.object_weight weighs the object's cells: another loss from the same draws.
        XCTAssertNotEqual(try firstMotionLoss(TimestepBias(), objectWeight: 4), plain)
    }

    /// `motion_training.focus`: the motion stage's first `steps` steps draw from the part of the data
    /// the focus names, the later ones from all of it; a focus the data cannot use is refused
    /// before any training, naming its key.
    func testTheMotionStageStartsOnTheFocusedPart() throws {
        let run = TinyPretraining.temporaryFolder("pretrain-ad-focus")
        defer { try? FileManager.default.removeItem(atPath: run) }
        var config = Self.config()
        config.motionTraining.trainer.steps = 3
        config.motionTraining.focus = .init(steps: 2, colours: ["white"])
        let data = TinyPretraining.FocusablePatternData()
        _ = try Pretraining(newRunIn: run, config: config, data: data).run()
        XCTAssertEqual(data.log.served.map(\.index), [0, 1], "steps 0 and 1 of 3 from the part")
        XCTAssertTrue(data.log.served.allSatisfy { $0.frames == config.motionTraining.clipFrames })

        func refusal(_ focus: PretrainConfig.MotionTraining.Focus, data: PretrainingData) -> String {
            var config = Self.config()
            config.motionTraining.focus = focus
            let folder = TinyPretraining.temporaryFolder("pretrain-ad-focus-bad")
            defer { try? FileManager.default.removeItem(atPath: folder) }
            do { _ = try Pretraining(newRunIn: folder, config: config, data: data) } catch {
                XCTAssertFalse(FileManager.default.fileExists(atPath: folder), "a refused focus writes nothing: \(error)")
                return "\(error)"
            }
            return "accepted"
        }
        XCTAssertTrue(refusal(.init(steps: 1, colours: ["red"]), data: data).contains("motion_training.focus.colours"))
        XCTAssertTrue(refusal(.init(steps: 1), data: TinyPretraining.PatternData()).contains("motion_training.focus"))
        XCTAssertTrue(refusal(.init(steps: 3), data: data).contains("motion_training.focus.steps"), "more steps than the stage has")
        XCTAssertTrue(refusal(.init(steps: 0), data: data).contains("motion_training.focus.steps"))
        // A leg without a motion stage keeps its focus for a later leg.
        var imageOnly = Self.config()
        imageOnly.motionTraining.trainer.steps = 0
        imageOnly.motionTraining.focus = .init(steps: 500, colours: ["white"])
        XCTAssertNoThrow(try imageOnly.validate(file: "image-only"))

        // The key reads, writes back, and an unknown key inside it is named.
        let file = TinyPretraining.temporaryFolder("focus-config") + ".json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        XCTAssertEqual(try JSONDecoder().decode(PretrainConfig.self, from: config.encoded()), config)
        try Data(#"{"architecture": "animatediff", "motion_training": {"focus": {"steps": 5, "colour": ["red"]}}}"#.utf8)
            .write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try PretrainConfig.load(path: file)) { XCTAssertTrue("\($0)".contains("motion_training.focus.colour")) }
    }

    /// diffusers' `generate_timestep_weights`: the biased timesteps weigh `multiplier`, the rest 1,
    /// and draws follow the weights.
    func testTimestepBiasWeighsTheChosenTimesteps() throws {
        XCTAssertNil(TimestepBias().cumulativeWeights(timesteps: 1000))
        XCTAssertNil(TimestepBias(strategy: .later, multiplier: 1).cumulativeWeights(timesteps: 1000))
        let later = try XCTUnwrap(TimestepBias(strategy: .later, multiplier: 3, portion: 0.25).cumulativeWeights(timesteps: 1000))
        // 750 timesteps weigh 1 and 250 weigh 3: a total of 1500.
        XCTAssertEqual(later[0], 1.0 / 1500, accuracy: 1e-12)
        XCTAssertEqual(later[749], 750.0 / 1500, accuracy: 1e-12)
        XCTAssertEqual(later[750], 753.0 / 1500, accuracy: 1e-12)
        XCTAssertEqual(later[999], 1, accuracy: 1e-12)
        let earlier = try XCTUnwrap(TimestepBias(strategy: .earlier, multiplier: 2, portion: 0.1).cumulativeWeights(timesteps: 1000))
        XCTAssertEqual(earlier[99], 200.0 / 1100, accuracy: 1e-12)
        // Python's int(0.251 * 1000) is 251: the portion is counted in Double.
        let odd = try XCTUnwrap(TimestepBias(strategy: .later, multiplier: 2, portion: 0.251).cumulativeWeights(timesteps: 1000))
        XCTAssertEqual(odd[748], 749.0 / 1251, accuracy: 1e-12)
        XCTAssertEqual(odd[749], 751.0 / 1251, accuracy: 1e-12)
        let range = try XCTUnwrap(TimestepBias(strategy: .range, multiplier: 1e6, begin: 900, end: 1000).cumulativeWeights(timesteps: 1000))
        var random = RandomGenerator(seed: 4)
        let draws = TimestepBias.draw(cumulative: range, uniforms: random.uniformValues(count: 4000))
        XCTAssertGreaterThan(draws.filter { $0 >= 900 }.count, 3990)
        XCTAssertTrue(draws.allSatisfy { (0..<1000).contains($0) })
        let laterDraws = TimestepBias.draw(cumulative: later, uniforms: random.uniformValues(count: 20000))
        // Half of the weight lies on the last quarter: about 10 000 of 20 000 draws.
        XCTAssertEqual(Double(laterDraws.filter { $0 >= 750 }.count) / 20000, 0.5, accuracy: 0.02)
        XCTAssertEqual(TimestepBias.draw(cumulative: later, uniforms: [0]), [0])
    }

    func testTheDefaultAnimateDiffBaseIsThePilotsSizeAndFitsFortyMegabytes() throws {
        var config = PretrainConfig.animateDiff()
        config.textEncoder.vocabSize = 600
        try config.validate(file: "default")
        let image = try UNet2DConditionModel(config: config.imageUNet)
        let motion = try MotionAdapter(config: config.motionAdapter)
        // The PyTorch pilot's image U-Net has about 3.5 M parameters with its text encoder's width
        // (3.3 M here at 64) and its motion modules 1.6 M.
        XCTAssertEqual(Double(image.parameterCount) / 1e6, 3.5, accuracy: 0.3)
        XCTAssertEqual(Double(motion.parameterCount) / 1e6, 1.6, accuracy: 0.3)
        let total = try AutoencoderKL(config: config.vae).parameterCount + image.parameterCount + motion.parameterCount
            + CLIPTextModel(config: config.textEncoder).parameterCount
        XCTAssertLessThan(total * 2, 40_000_000, "\(total) parameters")
    }
}
