import Adapters
import Diffusion
import Foundation
import Tensor

/// The run folder of a training on cached clips, shared by MotionDirector and its plain-LoRA
/// baseline: a run record (the resolved config, the clips' names and captions, the base model) and
/// the latent cache, written when a run starts and checked when it is resumed. Only the step count,
/// the intervals and the previews may change on resume; the adapters, data and seed stay.
enum MotionRunFolder {
    /// Starts a run in `folder` (absent or empty): validates `config`, checks `clips`, writes the
    /// latent cache and `runFile`. `what` names the run in messages ("MotionDirector run").
    static func create(_ folder: String, runFile: String, what: String, record: MotionDirectorTraining.RunRecord,
                       clips: [MotionTrainingClip], pipeline: TextToVideoPipeline) throws {
        let fileManager = FileManager.default
        if let contents = try? fileManager.contentsOfDirectory(atPath: folder), !contents.isEmpty {
            let reason = contents.contains(runFile) ? "already holds a \(what)" : "is not empty"
            throw MethodError.badRun(folder: folder, reason: "\(reason); resume it or choose a new output folder")
        }
        try record.config.validate(file: "config")
        try MotionDirectorTraining.check(clips, config: record.config, pipeline: pipeline)
        do { try fileManager.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw MethodError.badRun(folder: folder, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        try MotionTrainingClip.writeCache(clips, to: path(folder, MotionDirectorTraining.cacheFile))
        try write(record, folder: folder, runFile: runFile)
    }

    /// Opens the run in `folder` to continue it: the record must be of `method` and made on
    /// `baseModel`'s U-Net; `adjust` may change only the step count, the intervals and the previews.
    /// Rewrites the record with the adjusted config and returns it with the cached clips.
    static func reopen(_ folder: String, runFile: String, what: String, method: String, pipeline: TextToVideoPipeline,
                       baseModel: BaseModelIdentity, adjust: (inout MotionDirectorConfig) -> Void)
        throws -> (record: MotionDirectorTraining.RunRecord, clips: [MotionTrainingClip]) {
        var record = try read(folder, runFile: runFile, what: what)
        guard record.method == method else {
            throw MethodError.badRun(folder: path(folder, runFile), reason: "records a \(record.method) run, not a \(what)")
        }
        try baseModel.requireSameModel(as: record.baseModel, folder: folder)
        var config = record.config
        adjust(&config)
        guard config.isSameRun(as: record.config) else {
            throw MethodError.badRun(folder: folder, reason: "a resumed run keeps its adapters, data and seed; only the step count, intervals and previews may change")
        }
        try config.validate(file: path(folder, runFile))
        let clips = try MotionTrainingClip.readCache(path(folder, MotionDirectorTraining.cacheFile))
        guard clips.map(\.name) == record.clips.map(\.name) else {
            throw MethodError.badRun(folder: folder, reason: "the latent cache's clips differ from the run record's")
        }
        try MotionDirectorTraining.check(clips, config: config, pipeline: pipeline)
        record.config = config
        try write(record, folder: folder, runFile: runFile)
        return (record, clips)
    }

    /// The record of the run in `folder`.
    static func read(_ folder: String, runFile: String, what: String) throws -> MotionDirectorTraining.RunRecord {
        let recordPath = path(folder, runFile)
        guard FileManager.default.fileExists(atPath: recordPath) else {
            throw MethodError.badRun(folder: folder, reason: "holds no \(what) to resume (no \(runFile))")
        }
        do {
            return try JSONDecoder().decode(MotionDirectorTraining.RunRecord.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath)))
        } catch {
            throw MethodError.badRun(folder: recordPath, reason: "cannot read the run record: \(error)")
        }
    }

    static func write(_ record: MotionDirectorTraining.RunRecord, folder: String, runFile: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let recordPath = path(folder, runFile)
        do { try encoder.encode(record).write(to: URL(fileURLWithPath: recordPath), options: .atomic) } catch {
            throw MethodError.badRun(folder: recordPath, reason: "cannot write the run record: \(error.localizedDescription)")
        }
    }

    /// The clip of step `step` over `count` clips: every epoch (one pass over the clips) visits each
    /// clip once, in an order shuffled from (seed, epoch) — the reference's shuffled data loader with
    /// batch size 1.
    static func clipOrder(step: Int, count: Int, seed: UInt64) -> Int {
        var generator = RandomGenerator(seed: seed).derived(0xC11_905).derived(UInt64(step / count))
        return generator.shuffled(Array(0..<count))[step % count]
    }

    static func path(_ folder: String, _ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
}
