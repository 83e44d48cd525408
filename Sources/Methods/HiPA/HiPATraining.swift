import Adapters
import Checkpoints
import Diffusion
import Foundation
import Models
import Tensor

/// HiPA: one-step generation through high-frequency-promoting adaptors. The frozen base model is the
/// teacher (`TeacherPair`, generated once and cached); the student is the same model with low-rank
/// adaptors (ours: rank 8 on every attention projection `to_q`, `to_k`, `to_v`, `to_out.0` and every
/// resnet convolution `conv1`, `conv2`) that predicts x₀ in one step from z_T at t = T
/// (`OneStepSampler`); the loss is the spatial plus high-frequency distance to the teacher's x₀*
/// (`HighFrequencyLoss`, on latents). Each step trains on one pair (every pair once per epoch).
///
/// The run folder (pairs.safetensors, onestep_run.json, checkpoints, loss.csv) sits beside the
/// output file; `resumingIn` continues it bit for bit, without generating the pairs again.
public final class HiPATraining {
    public static let runFile = "onestep_run.json"
    public static let pairsFile = "pairs.safetensors"
    public static let adapterName = "hipa"
    public static let targets: [ModulePattern] = ["*.to_q", "*.to_k", "*.to_v", "*.to_out.0", "*.resnets.*.conv1", "*.resnets.*.conv2"]

    public let folder: String
    public let pipeline: TextToVideoPipeline
    public let config: HiPAConfig
    public let pairs: [TeacherPair]
    public let baseModel: BaseModelIdentity
    public let adapters: AdapterSet
    public let training: AdapterTraining
    public let highFrequency: HighFrequencyLoss

    private let textStates: [Tensor]

    struct RunRecord: Codable {
        var method = "hipa"
        var config: HiPAConfig
        var prompts: [String]
        var baseModel: BaseModelIdentity

        enum CodingKeys: String, CodingKey {
            case method, config, prompts
            case baseModel = "base_model"
        }
    }

    /// Starts a new run in `folder` (absent or empty) on teacher `pairs` (see `TeacherPair.generate`).
    public convenience init(newRunIn folder: String, pipeline: TextToVideoPipeline, config: HiPAConfig, pairs: [TeacherPair],
                            baseModel: BaseModelIdentity) throws {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            let what = contents.contains(Self.runFile) ? "already holds a one-step run" : "is not empty"
            throw MethodError.badRun(folder: folder, reason: "\(what); resume it or choose another output")
        }
        try config.validate(file: "options")
        try Self.check(pairs, pipeline: pipeline, config: config)
        do { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MethodError.badRun(folder: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        try TeacherPair.write(pairs, to: MotionDirectorTraining.path(folder, Self.pairsFile))
        let record = RunRecord(config: config, prompts: pairs.map(\.prompt), baseModel: baseModel)
        try RunRecordFile.write(record, to: MotionDirectorTraining.path(folder, Self.runFile))
        try self.init(folder: folder, pipeline: pipeline, record: record, pairs: pairs)
    }

    /// Opens the run in `folder` to continue it; `adjust` may change the step count and interval.
    public convenience init(resumingIn folder: String, pipeline: TextToVideoPipeline, baseModel: BaseModelIdentity,
                            adjust: (inout HiPAConfig) -> Void = { _ in }) throws {
        let path = MotionDirectorTraining.path(folder, Self.runFile)
        var record: RunRecord = try RunRecordFile.read(path, folder: folder, what: "one-step run")
        try baseModel.requireSameModel(as: record.baseModel, folder: folder)
        record.config = try record.config.adjustedForResume(folder: folder, adjust: adjust)
        try record.config.validate(file: path)
        let pairs = try TeacherPair.read(MotionDirectorTraining.path(folder, Self.pairsFile))
        try Self.check(pairs, pipeline: pipeline, config: record.config)
        try RunRecordFile.write(record, to: path)
        try self.init(folder: folder, pipeline: pipeline, record: record, pairs: pairs)
    }

    private init(folder: String, pipeline: TextToVideoPipeline, record: RunRecord, pairs: [TeacherPair]) throws {
        self.folder = folder
        self.pipeline = pipeline
        config = record.config
        self.pairs = pairs
        baseModel = record.baseModel
        adapters = AdapterSet(model: pipeline.unet, component: "unet")
        try adapters.inject(Self.adapterName, config: LoRAConfig(rank: config.rank), targets: Self.targets,
                            generator: RandomGenerator(seed: config.seed).derived(0x41_9A))
        training = try AdapterTraining(folder: folder, adapters: adapters, trainedAdapters: [Self.adapterName],
                                       options: config.trainerOptions)
        let latentShape = pairs[0].target.shape
        highFrequency = try HighFrequencyLoss(height: latentShape[3], width: latentShape[4], cutoff: config.highPassCutoff,
                                              weight: config.highFrequencyWeight)
        textStates = try pairs.map { try pipeline.encodePrompt($0.prompt) }
        try training.resume()
    }

    /// Trains the remaining steps and writes the adaptors to `output`.
    public func run(output: String, dtype: SafeTensors.DType = .f32) throws {
        training.onCheckpoint = { [weak self] _ in try self?.save(to: output, dtype: dtype) }
        try training.run { [unowned self] step, random in try self.loss(step: step, random: &random) }
        try save(to: output, dtype: dtype)
    }

    /// Step `step`'s loss (0-based): one pair's one-step x̂₀ against the teacher's x₀*.
    func loss(step: Int, random: inout RandomGenerator) throws -> Tensor {
        var order = RandomGenerator(seed: config.seed).derived(0x9A1_25).derived(UInt64(step / pairs.count))
        let index = order.shuffled(Array(0..<pairs.count))[step % pairs.count]
        let pair = pairs[index]
        var dropout = random.derived(1)
        let output = try pipeline.unet(sample: pair.noise, timesteps: [Float(OneStepSampler.timestep(pipeline.schedulerConfig))],
                                       encoderHiddenStates: textStates[index], dropoutGenerator: &dropout)
        let prediction = try OneStepSampler.originalSample(output: output, noise: pair.noise, config: pipeline.schedulerConfig)
        return try highFrequency.loss(prediction: prediction, target: pair.target)
    }

    /// Writes the adaptors (PEFT keys, method "hipa-onestep"): render them with `--steps 1 --onestep`.
    public func save(to output: String, dtype: SafeTensors.DType = .f32) throws {
        let training: [String: JSONValue] = [
            "steps": .number(Double(self.training.step)), "max_train_steps": .number(Double(config.maxTrainSteps)),
            "rank": .number(Double(config.rank)), "learning_rate": .number(Double(config.learningRate)),
            "pairs": .number(Double(pairs.count)), "teacher_steps": .number(Double(config.teacherSteps)),
            "teacher_guidance": .number(Double(config.teacherGuidance)), "frames": .number(Double(config.frames)),
            "high_frequency_weight": .number(Double(config.highFrequencyWeight)), "high_pass_cutoff": .number(config.highPassCutoff),
            "seed": .number(Double(config.seed)),
        ]
        try adapters.save(Self.adapterName, to: output,
                          metadata: LoRAFileMetadata(method: "hipa-onestep", baseModel: baseModel, training: training), dtype: dtype)
    }

    static func check(_ pairs: [TeacherPair], pipeline: TextToVideoPipeline, config: HiPAConfig) throws {
        guard !pairs.isEmpty else { throw MethodError.noTrainingData(what: "one-step adaptors", reason: "no teacher pairs") }
        let shape = pipeline.latentShape(frames: config.frames)
        for (index, pair) in pairs.enumerated() where pair.noise.shape != shape || pair.target.shape != shape {
            throw MethodError.badItem(name: "teacher pair \(index)", reason: "noise \(pair.noise.shape) and target \(pair.target.shape) must both be \(shape)")
        }
    }
}
