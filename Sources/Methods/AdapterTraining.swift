import Adapters
import Diffusion
import Foundation
import Tensor

/// The adapter-training loop shared by MotionDirector (`customize train-motion`, `animate`) and
/// subject LoRAs (`customize train-lora`): diffusers' LoRA training scripts' loop over our `Trainer`,
/// with only adapter factors trained.
///
/// The run folder holds the trainer's `checkpoint-NNNNNN/` folders (the adapters' factors, AdamW's
/// moments and step counts, trainer_state.json) and loss.csv; `resume()` continues from the newest
/// complete checkpoint, so an interrupted run loses at most one checkpoint interval and then goes on
/// bit for bit as the uninterrupted run would (on the same thread count). Each step's LoRA dropout
/// draws from a stream derived from that step's generator, which is what makes this exact.
public final class AdapterTraining {
    public let folder: String
    public let adapters: AdapterSet
    public let trainedAdapters: [String]
    public let trainer: Trainer
    /// Called after each step; throwing stops the run (what is checkpointed stays).
    public var onStep: ((TrainingStepReport) throws -> Void)?
    /// Called when loss.csv has been rewritten, with the run folder and every record so far.
    public var onLog: ((String, [LossRecord]) throws -> Void)?
    /// Called after each checkpoint (save the adapter files here, so they follow the checkpoints).
    public var onCheckpoint: ((Int) throws -> Void)?
    /// Previews: `every` steps (and at the last), `preview(step)` renders with dropout off.
    public var previewEvery = 0
    public var preview: ((Int) throws -> Void)?

    /// The stream of each step's generator that LoRA dropout draws from.
    static let dropoutStream: UInt64 = 0x10_1A

    /// Trains the named adapters of `adapters` (each parameter keyed `<adapter>/<module path>.lora_A.weight`
    /// in checkpoints) with `options`; `learningRateMultiplier` scales the rate per checkpoint key.
    public init(folder: String, adapters: AdapterSet, trainedAdapters: [String], options: TrainerOptions,
                optionsFile: String = "config", learningRateMultiplier: (String) -> Float = { _ in 1 }) throws {
        self.folder = folder
        self.adapters = adapters
        self.trainedAdapters = trainedAdapters
        let parameters = try trainedAdapters.flatMap { name in
            try adapters.parameters(of: name).map { (path: "\(name)/\($0.path)", tensor: $0.tensor) }
        }
        trainer = try Trainer(folder: folder, parameters: parameters, options: options, optionsFile: optionsFile,
                              learningRateMultiplier: learningRateMultiplier)
    }

    public var step: Int { trainer.step }
    public var totalSteps: Int { trainer.options.steps }

    /// Restores the newest complete checkpoint; returns its step, or nil for a fresh run.
    @discardableResult
    public func resume() throws -> Int? { try trainer.resume() }

    /// Runs the remaining steps. `loss(step, random)` builds step `step`'s loss (0-based) drawing
    /// only from `random`; LoRA dropout is on during it.
    public func run(loss: @escaping (_ step: Int, _ random: inout RandomGenerator) throws -> Tensor) throws {
        trainer.afterStep = { [weak self] report in
            guard let self else { return }
            try self.onStep?(report)
            if self.previewEvery > 0, let preview = self.preview,
               report.step % self.previewEvery == 0 || report.step == report.totalSteps {
                try self.adapters.setTraining(generator: nil)
                try preview(report.step)
            }
        }
        trainer.afterLogWrite = { [weak self] records in
            guard let self else { return }
            try self.onLog?(self.folder, records)
        }
        trainer.afterCheckpoint = { [weak self] step, _ in
            try self?.onCheckpoint?(step)
        }
        defer { try? adapters.setTraining(generator: nil) }
        try trainer.train { [adapters, trainedAdapters] step, random in
            try adapters.setTraining(generator: random.derived(Self.dropoutStream), adapters: trainedAdapters)
            return try loss(step, &random)
        }
    }
}
