import Diffusion
import Foundation
import Media
import Methods
import World

/// `eval motion`: does a MotionDirector adapter carry the clips' motion to subjects that look
/// nothing like them, better than a plain LoRA and than the base model? MotionDirector's adapters
/// and the plain LoRA baseline are trained on the clips with the same settings into
/// `<out>/motiondirector` and `<out>/plain` (runs found there are continued), or taken from
/// `motionAdapters` and `plainAdapter`; then prompts whose colours and shape appear in none of the
/// clips are rendered with each and with the base model, and the probes read them.
public struct MotionEvaluation {
    /// The folder of training clips (captions in .txt files beside them).
    public var clips: String
    /// A diffusers text-to-video folder.
    public var model: String
    /// The shape classifier (default: `<model>/probes/shape-classifier.safetensors`).
    public var probe: String?
    /// A train-motion run folder to take temporal.safetensors (and its settings) from instead of training.
    public var motionAdapters: String?
    /// A plain LoRA file (train-motion --plain's plain.safetensors) instead of training one.
    public var plainAdapter: String?
    /// Training steps of both adapters (default: MotionDirector's, or the `motionAdapters` run's).
    public var trainSteps: Int?
    /// LoRA rank of both adapters (default: MotionDirector's, or the `motionAdapters` run's).
    public var rank: Int?
    /// Prompts to render (each three ways).
    public var prompts = 12
    /// Seed of the first prompt's noise (prompt i uses seed + i).
    public var seed: UInt64 = 0
    public var steps = 25
    public var guidance: Float = TextToVideoPipeline.defaultGuidance
    /// The motion words of the prompts (default: the clips' captions' most common).
    public var motionPhrase: String?
    /// Prompts in the core world's vocabulary (the shipped base's), the default; false: the full world's.
    public var core = true
    /// Where trained adapters, the sheet and report.json go (default motions/eval-<clips folder name>).
    public var out: String?

    public init(clips: String, model: String) {
        self.clips = clips
        self.model = model
    }

    /// Throws naming the first setting out of range.
    public func validate() throws {
        guard prompts >= 1 else { throw EvaluationError("--prompts must be at least 1, got \(prompts)") }
        guard steps >= 1 else { throw EvaluationError("--steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw EvaluationError("--guidance must be a number, got \(guidance)") }
        if let trainSteps, trainSteps < 1 { throw EvaluationError("--train-steps must be at least 1, got \(trainSteps)") }
        if let rank, rank < 1 { throw EvaluationError("--rank must be at least 1, got \(rank)") }
        if let motionPhrase, motionPhrase.trimmingCharacters(in: .whitespaces).isEmpty {
            throw EvaluationError("--motion-phrase must not be empty")
        }
    }

    /// `out`, else motions/eval-<clips folder name>.
    public var outputFolder: String {
        out ?? "motions/eval-" + URL(fileURLWithPath: clips).standardizedFileURL.lastPathComponent
    }

    /// MotionDirector's defaults, or the --motion-adapters run's recorded config, with --train-steps
    /// and --rank on top and previews off; the plain LoRA trains with the same.
    public func trainingConfig() throws -> MotionDirectorConfig {
        var config = MotionDirectorConfig()
        if let motionAdapters {
            let recorded = (motionAdapters as NSString).appendingPathComponent(MotionDirectorTraining.runFile)
            if FileManager.default.fileExists(atPath: recorded) {
                config = try MotionDirectorTraining.recordedConfig(in: motionAdapters)
            } else {
                FileHandle.standardError.write("eval motion: \(motionAdapters) has no \(MotionDirectorTraining.runFile); "
                                               + "the plain LoRA trains with MotionDirector's default settings\n")
            }
        }
        if let trainSteps { config.maxTrainSteps = trainSteps }
        if let rank { config.loraRank = rank }
        config.validationData.samplePreview = false
        try config.validate(file: "options")
        return config
    }

    /// A --motion-adapters run records the clips it trained on; comparing its motion with other
    /// clips' would measure nothing, so they must be the same files with the same captions.
    func checkRecordedClips(_ sources: [MotionClipSource]) throws {
        guard let motionAdapters,
              FileManager.default.fileExists(atPath: (motionAdapters as NSString).appendingPathComponent(MotionDirectorTraining.runFile))
        else { return }
        let recorded = try MotionDirectorTraining.recordedClips(in: motionAdapters)
        let given = sources.map { (name: $0.name, caption: $0.caption) }
        let differing = (0..<min(recorded.count, given.count)).first { recorded[$0] != given[$0] }
        guard differing != nil || recorded.count != given.count else { return }
        let difference: String
        if let index = differing {
            difference = "clip \(index + 1) is \(recorded[index].name) (\"\(recorded[index].caption)\") there and \(given[index].name) (\"\(given[index].caption)\") here"
        } else {
            difference = "it trained on \(recorded.count) clips, '\(clips)' holds \(given.count)"
        }
        throw EvaluationError("--motion-adapters \(motionAdapters) was trained on other clips than --clips '\(clips)': "
                              + difference + "; give the clips it was trained on, or leave --motion-adapters out to train on these")
    }

    /// Trains what is not given, renders every prompt three ways and reads them; writes
    /// `report.json` and `eval-motion.png` into the output folder. Progress and warnings go to standard error.
    public func run() throws -> EvaluationResult<MotionEvalReport> {
        try validate()
        let start = Date()
        let probes = try ProbeFile.worldProbes(probe: probe, model: model)
        let config = try trainingConfig()
        let pipeline = try TextToVideoPipeline.load(folder: model)
        let size = pipeline.pixelSize
        guard size.width == size.height else {
            throw EvaluationError("\(model) renders \(size.width)x\(size.height) frames; the probes read square frames")
        }
        // The clips are read as the training reads them (train_data.width/height, else the model's size).
        let side = config.trainData.width ?? size.width
        guard side == config.trainData.height ?? size.height, side % pipeline.vaeScaleFactor == 0 else {
            throw EvaluationError("the training frames must be square and a multiple of the VAE's "
                                  + "downsampling \(pipeline.vaeScaleFactor) for the probes, got train_data.width/height "
                                  + "\(side)x\(config.trainData.height ?? size.height)")
        }
        let frames = config.trainData.sampleFrames

        // The clips: the reference motion and the looks to avoid.
        let clipSet = try MotionEvalClips.read(clips, frames: frames, side: side, fps: config.trainData.fps,
                                               fallbackCaption: config.trainData.fallbackPrompt, probes: probes)
        TrainingMedia.warnSkipped(clipSet.skipped, command: "eval motion")
        for clip in clipSet.clips where clip.displacements == nil {
            FileHandle.standardError.write("customize eval motion: warning: the probes lost the object in '\(clip.source.name)'; "
                                           + "it is left out of the reference motion\n")
        }
        guard let phrase = motionPhrase ?? clipSet.motionPhrase else {
            throw EvaluationError("no caption in '\(clips)' names a motion in the world's grammar "
                                  + "(\"a <size> <colour> <shape> <motion> on a <colour> background\"); pass --motion-phrase")
        }
        let evaluationPrompts: [MotionEvaluationPrompt]
        do {
            evaluationPrompts = try MotionEvaluationPrompt.make(count: prompts, motionPhrase: phrase, size: clipSet.size,
                                                                avoidingColours: clipSet.colours, avoidingShapes: clipSet.shapes, core: core)
        } catch let error as MotionEvaluationPromptError {
            throw EvaluationError("'\(clips)': \(error)")
        }

        try checkRecordedClips(clipSet.clips.map(\.source))
        let folder = outputFolder
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let adapters = try MotionEvalAdapters.prepare(motionAdapters: motionAdapters, plainAdapter: plainAdapter, out: folder,
                                                      config: config, sources: clipSet.clips.map(\.source), model: model)

        // Render every prompt three ways; the adapters are merged once per row.
        let rows: [(name: String, label: String, choices: [LoRAChoice])] = [
            ("motiondirector", "MotionDirector", [LoRAChoice(name: adapters.temporal, path: adapters.temporal, scale: 1, role: .motion)]),
            ("plain_lora", "plain LoRA", [LoRAChoice(name: adapters.plain, path: adapters.plain, scale: 1, role: .lora)]),
            ("base", "base", []),
        ]
        let loras = PipelineLoRAs(pipeline)
        let clipColours = Set(clipSet.clips.flatMap { [$0.caption.colour, $0.reading.colour].compactMap { $0 } })
        let clipShapes = clipSet.shapes
        var outcomes: [[MotionEvalReport.Outcome]] = []
        var sheetRows: [RGBImage] = []
        let progress = ProgressReporter("eval motion: rendering", total: rows.count * prompts, unit: "clip")
        for (rowIndex, row) in rows.enumerated() {
            for warning in try loras.apply(row.choices) { FileHandle.standardError.write("customize eval motion: warning: \(warning)\n") }
            var rowOutcomes: [MotionEvalReport.Outcome] = []
            for (index, prompt) in evaluationPrompts.enumerated() {
                let started = Date()
                let video = try pipeline.generate(prompt: prompt.caption, frames: frames, steps: steps, guidance: guidance,
                                                  seed: seed &+ UInt64(index))
                let seconds = Date().timeIntervalSince(started)
                let images = try video.frames.map { try RGBImage(chwFloats: $0.values, width: $0.shape[2], height: $0.shape[1]) }
                let probeFrames = try images.map { try ProbeFrame(side: $0.width, pixels: $0.pixels) }
                let reading = probes.readMainObject(probeFrames)
                let colourLeaked = reading.colour.map { clipColours.contains($0) && $0 != prompt.colour } ?? false
                let shapeLeaked = reading.shape.map { clipShapes.contains($0) && $0 != prompt.shape } ?? false
                rowOutcomes.append(MotionEvalReport.Outcome(
                    found: reading.found, colour: reading.colour, shape: reading.shape,
                    fidelity: MotionFidelity.fidelity(MotionFidelity.mainObjectTrajectory(probeFrames), reference: clipSet.reference),
                    leaked: colourLeaked || shapeLeaked, adherent: reading.colour == prompt.colour && reading.shape == prompt.shape,
                    seconds: seconds))
                sheetRows.append(try RGBImage.contactSheet(images, spacing: 2))
                progress.update(rowIndex * prompts + index + 1)
            }
            outcomes.append(rowOutcomes)
        }
        try loras.removeAll()

        let reportRows = zip(rows, outcomes).map { row, rowOutcomes in
            MotionEvalReport.Row(name: row.name, label: row.label, adapter: row.choices.first?.path, outcomes: rowOutcomes)
        }
        let ownFidelities = clipSet.ownFidelities
        let report = MotionEvalReport(
            model: model, clipsFolder: clips,
            clips: zip(clipSet.clips, ownFidelities).map { clip, fidelity in
                MotionEvalReport.ClipSummary(name: clip.source.name, caption: clip.source.caption, colour: clip.reading.colour,
                                             shape: clip.reading.shape, fidelity: fidelity)
            },
            motionPhrase: phrase, prompts: prompts, seed: seed, steps: steps, guidance: guidance, frames: frames,
            trainSteps: config.maxTrainSteps, rank: config.loraRank, referenceDisplacements: clipSet.reference,
            trainingClipsFidelity: ownFidelities.reduce(0) { $0 + Double($1) } / Double(max(ownFidelities.count, 1)),
            rows: reportRows,
            samples: evaluationPrompts.enumerated().map { index, prompt in
                MotionEvalReport.Sample(prompt: prompt, seed: seed &+ UInt64(index),
                                        outcomes: Dictionary(uniqueKeysWithValues: zip(rows, outcomes).map { ($0.name, $1[index]) }))
            },
            seconds: Date().timeIntervalSince(start))

        // The sheet: for each row in turn, one line of frames per prompt.
        return try report.write(to: folder, sheetName: "eval-motion.png", sheetRows: sheetRows,
                                captions: rows.flatMap { row in evaluationPrompts.map { "\(row.label): \($0.caption)" } })
    }
}
