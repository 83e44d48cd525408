import ArgumentParser
import Adapters
import Diffusion
import Evaluation
import Foundation
import Methods
import World

/// `customize train-onestep [--teacher-steps 25] [--pairs N] --out onestep.safetensors`: HiPA's
/// one-step adaptors (`HiPATraining`).
struct TrainOnestep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-onestep",
        abstract: "Train adaptors that let the model generate in one step (HiPA).",
        discussion: """
        The base model is the teacher: for each of --pairs prompts (the lines of --prompts, else \
        captions of the core world's training split, the shipped base's; --full: the full world's) it samples from seeded noise z_T with \
        --teacher-steps DDIM steps at --teacher-guidance, and the pairs (z_T, prompt, final latents) \
        are cached in the run folder. The student is the same model with rank-8 adaptors on every \
        attention projection and resnet convolution, predicting the final latents from z_T in one \
        step at the last timestep; the loss is the mean squared distance plus \
        --high-frequency-weight times the distances of an FFT high-pass and a Laplacian edge map of \
        both (on latents). The adaptors go to --out; the run to <out without extension>-run/, which \
        --resume continues without sampling the teacher again.

        Example:
          customize train-onestep --pairs 64 --steps 1000 --out onestep.safetensors
          customize render "a red star on a blue background" --steps 1 --onestep onestep.safetensors --frames 1 --out star.png
        """)

    @Option(help: "The adaptors file to write (.safetensors).") var out: String
    @Option(help: "Teacher pairs to generate (default 64).") var pairs: Int?
    @Option(name: .customLong("teacher-steps"), help: "The teacher's DDIM steps (default 25).") var teacherSteps: Int?
    @Option(name: .customLong("teacher-guidance"), help: "The teacher's guidance scale (default 5, the pipeline's).") var teacherGuidance: Float?
    @Option(help: "A file of prompts, one per line ('#' comments, blank lines skipped); default: world captions.") var prompts: String?
    /// Without --prompts, which world's training split captions the pairs (`--full`: the full world's).
    @OptionGroup var world: EvalWorldOption
    @Option(help: "Frames per pair (default 1).") var frames: Int?
    @Option(help: "Adaptor rank (default 8).") var rank: Int?
    @Option(help: "Training steps (default 1000).") var steps: Int?
    @Option(help: "Learning rate (default 1e-4).") var lr: Float?
    @Option(name: .customLong("high-frequency-weight"), help: "λ of the high-frequency term (default 1).") var highFrequencyWeight: Float?
    @Option(help: "A checkpoint every N steps (default 100).") var checkpointEvery: Int?
    @Option(help: "The seed of every random draw (default 0).") var seed: UInt64?
    @Option(help: "The run folder (default <out without extension>-run).") var runDir: String?
    @Option(help: "Store the adaptors as f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Continue the run from its newest checkpoint.") var resume = false
    @Option(help: "A diffusers text-to-video folder.") var model = SamplesFolder.path("base")
    @OptionGroup var threadOptions: ThreadOptions
    @OptionGroup var motionAdapterOption: MotionAdapterOption

    func validate() throws {
        for (name, value) in [("--pairs", pairs), ("--teacher-steps", teacherSteps), ("--frames", frames), ("--rank", rank),
                              ("--checkpoint-every", checkpointEvery)] {
            if let value, value < 1 { throw ValidationError("\(name) must be at least 1, got \(value)") }
        }
        if let steps, steps < 0 { throw ValidationError("--steps must not be negative, got \(steps)") }
        if let lr, !(lr.isFinite && lr >= 0) { throw ValidationError("--lr must be a number of 0 or more, got \(lr)") }
        if let highFrequencyWeight, !(highFrequencyWeight.isFinite && highFrequencyWeight >= 0) {
            throw ValidationError("--high-frequency-weight must be a number of 0 or more, got \(highFrequencyWeight)")
        }
        if world.full, prompts != nil {
            throw ValidationError("--full chooses the world the default prompts come from; --prompts gives them, so leave one out")
        }
        _ = try AdapterFileType.parse(dtype)
        guard (out as NSString).pathExtension.lowercased() == "safetensors" else {
            throw ValidationError("--out names the adaptors file to write, ending in .safetensors, got '\(out)'")
        }
        if resume, [pairs, teacherSteps, frames, rank].contains(where: { $0 != nil }) || teacherGuidance != nil || prompts != nil || world.full || world.core
            || lr != nil || highFrequencyWeight != nil || seed != nil {
            throw ValidationError("--resume continues with the run's own settings and pairs; only --steps and --checkpoint-every may change")
        }
    }

    func run() throws {
        try threadOptions.apply()
        try OutputFile.checkWritable(out, option: "--out")
        let folder = runDir ?? (out as NSString).deletingPathExtension + "-run"
        let pipeline = try motionAdapterOption.load(model)
        let baseModel = try BaseModelIdentity(modelFolder: model, pipeline: pipeline)
        let training: HiPATraining
        if resume {
            training = try HiPATraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { config in
                if let steps { config.maxTrainSteps = steps }
                if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
            }
        } else {
            try RunFolder.requireFresh(folder)
            var config = HiPAConfig()
            if let pairs { config.pairs = pairs }
            if let teacherSteps { config.teacherSteps = teacherSteps }
            if let teacherGuidance { config.teacherGuidance = teacherGuidance }
            if let frames { config.frames = frames }
            if let rank { config.rank = rank }
            if let steps { config.maxTrainSteps = steps }
            if let lr { config.learningRate = lr }
            if let highFrequencyWeight { config.highFrequencyWeight = highFrequencyWeight }
            if let checkpointEvery { config.checkpointingSteps = checkpointEvery }
            if let seed { config.seed = seed }
            let texts = try promptList(count: config.pairs, seed: config.seed)
            let progress = ProgressReporter("train-onestep: teacher pairs", total: texts.count, unit: "pair")
            let teacherPairs = try TeacherPair.generate(pipeline: pipeline, prompts: texts, config: config) { done, _ in progress.update(done) }
            training = try HiPATraining(newRunIn: folder, pipeline: pipeline, config: config, pairs: teacherPairs, baseModel: baseModel)
        }
        FileHandle.standardError.write("train-onestep: \(training.pairs.count) teacher pairs, \(training.config.maxTrainSteps) steps, rank \(training.config.rank)\n")
        AdapterTrainingReport.attach(training.training, label: "train-onestep")
        let started = Date()
        try training.run(output: out, dtype: AdapterFileType.parse(dtype))
        print("trained in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); wrote \(out) (run in \(folder))")
    }

    /// `count` prompts: the prompt file's lines in turn (repeated when fewer), else world captions.
    func promptList(count: Int, seed: UInt64) throws -> [String] {
        guard let prompts else {
            let sampler = WorldSampler(seed: seed, distribution: world.isCore ? .core : .full)
            return (0..<count).map { sampler.image(.train, index: $0).caption }
        }
        let text: String
        do { text = try String(contentsOfFile: prompts, encoding: .utf8) } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot read --prompts '\(prompts)': \(error.localizedDescription)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !lines.isEmpty else { throw ExitStatus.Failure(status: .failure, message: "--prompts '\(prompts)' holds no prompt") }
        return (0..<count).map { lines[$0 % lines.count] }
    }
}
