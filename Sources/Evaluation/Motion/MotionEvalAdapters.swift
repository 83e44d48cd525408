import Adapters
import Diffusion
import Foundation
import Methods

/// The two adapters `eval motion` compares: MotionDirector's temporal LoRA and the plain LoRA
/// baseline, each taken from the user (`--motion-adapters`, `--plain-adapter`) or trained on the
/// clips into a run folder under `--out` (`motiondirector/`, `plain/`). A run folder found there is
/// continued rather than started again, so a rerun trains nothing and an interrupted one resumes.
struct MotionEvalAdapters {
    var temporal: String
    var plain: String

    static let motionDirectorFolder = "motiondirector"
    static let plainFolder = "plain"

    /// Gives both files, training what is not given. `sources` are the clips (sampled as `config`
    /// samples them); they are encoded only when a new run starts.
    static func prepare(motionAdapters: String?, plainAdapter: String?, out: String, config: MotionDirectorConfig,
                        sources: [MotionClipSource], model: String) throws -> MotionEvalAdapters {
        var temporal: String
        if let motionAdapters {
            temporal = (motionAdapters as NSString).appendingPathComponent(MotionDirectorTraining.temporalFile)
            try requireFile(temporal, option: "--motion-adapters", hint: "a train-motion run folder holds temporal.safetensors")
        } else {
            temporal = ""
        }
        var plain = plainAdapter ?? ""
        if let plainAdapter { try requireFile(plainAdapter, option: "--plain-adapter", hint: "train-motion --plain writes plain.safetensors") }

        var encoded: [MotionTrainingClip]?
        func clips(_ pipeline: TextToVideoPipeline) throws -> [MotionTrainingClip] {
            if let encoded { return encoded }
            let progress = ProgressReporter("eval motion: encoding clips", total: sources.count, unit: "clip")
            let clips = try MotionTrainingClip.encode(sources, pipeline: pipeline, flips: config.randomHorizontalFlip > 0,
                                                      seed: config.seed) { done, _ in progress.update(done) }
            encoded = clips
            return clips
        }

        if motionAdapters == nil {
            let folder = (out as NSString).appendingPathComponent(motionDirectorFolder)
            let (pipeline, baseModel) = try AdapterRun.loadModel(model)
            let training: MotionDirectorTraining
            if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(MotionDirectorTraining.runFile)) {
                training = try reopen(folder, steps: config.maxTrainSteps) { adjust in
                    try MotionDirectorTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel, adjust: adjust)
                }
                try checkSameRun(training.config, config, training.clips, sources, folder: folder)
            } else {
                training = try MotionDirectorTraining(newRunIn: folder, pipeline: pipeline, config: config,
                                                      clips: clips(pipeline), baseModel: baseModel)
            }
            try train(training.training, label: "eval motion: MotionDirector", folder: folder)
            try training.run()
            temporal = (folder as NSString).appendingPathComponent(MotionDirectorTraining.temporalFile)
        }
        if plainAdapter == nil {
            let folder = (out as NSString).appendingPathComponent(plainFolder)
            let (pipeline, baseModel) = try AdapterRun.loadModel(model)
            let training: PlainMotionLoRATraining
            if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent(PlainMotionLoRATraining.runFile)) {
                training = try reopen(folder, steps: config.maxTrainSteps) { adjust in
                    try PlainMotionLoRATraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel, adjust: adjust)
                }
                try checkSameRun(training.config, PlainMotionLoRATraining.plainConfig(config), training.clips, sources, folder: folder)
            } else {
                training = try PlainMotionLoRATraining(newRunIn: folder, pipeline: pipeline, config: config,
                                                       clips: clips(pipeline), baseModel: baseModel)
            }
            try train(training.training, label: "eval motion: plain LoRA", folder: folder)
            plain = try training.run()
        }
        return MotionEvalAdapters(temporal: temporal, plain: plain)
    }

    static func requireFile(_ path: String, option: String, hint: String) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue else {
            throw EvaluationError("\(option): no adapter file at '\(path)' (\(hint))")
        }
    }

    /// Opens a cached run for `steps` steps, with the error saying what to do when it cannot be.
    static func reopen<Run>(_ folder: String, steps: Int, open: ((inout MotionDirectorConfig) -> Void) throws -> Run) throws -> Run {
        let run: Run
        do {
            run = try open { config in
                config.maxTrainSteps = steps
                config.validationData.samplePreview = false
            }
        } catch let error as MethodError {
            throw EvaluationError("\(error) (it was cached by an earlier eval motion with other "
                                  + "settings; choose another --out, or delete '\(folder)' to train again)")
        }
        return run
    }

    /// A cached run must have been trained with the settings asked for, on the clips being evaluated.
    static func checkSameRun(_ cachedConfig: MotionDirectorConfig, _ config: MotionDirectorConfig, _ cached: [MotionTrainingClip],
                             _ sources: [MotionClipSource], folder: String) throws {
        guard cachedConfig.isSameRun(as: config) else {
            throw EvaluationError("'\(folder)' holds a run with other settings (rank \(cachedConfig.loraRank), "
                                  + "learning rate \(cachedConfig.learningRate), seed \(cachedConfig.seed), …); "
                                  + "choose another --out, or delete it to train again")
        }
        let cachedClips = cached.map { "\($0.name): \($0.caption)" }, current = sources.map { "\($0.name): \($0.caption)" }
        guard cachedClips == current else {
            throw EvaluationError("'\(folder)' holds a run on other clips (\(cached.map(\.name).joined(separator: ", "))); "
                                  + "choose another --out, or delete it to train again")
        }
    }

    /// Progress and loss curve for one training; says when the cached run is complete or resumed.
    static func train(_ training: AdapterTraining, label: String, folder: String) throws {
        if training.step > training.totalSteps {
            throw EvaluationError("'\(folder)' holds a run of \(training.step) steps, more than --train-steps "
                                  + "\(training.totalSteps); choose another --out, or delete it to train again")
        }
        guard training.step < training.totalSteps else {
            FileHandle.standardError.write("\(label): using the trained run in \(folder) (\(training.step) steps)\n")
            return
        }
        AdapterTrainingReport.attach(training, label: label)
    }
}
