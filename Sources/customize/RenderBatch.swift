import Diffusion
import Evaluation
import Foundation
import Media

/// `render --prompts FILE`: every line of a prompt file rendered into one folder, with an index.
///
/// All lines are parsed and checked before the model loads (options, LoRA files, output names); a
/// bad line is reported with its line number and skipped, the others render. Each line goes through
/// the same `PromptRenderer` as a single render, with the LoRAs of the previous line taken out
/// exactly, so a line gives the same bytes alone or in a batch.
struct RenderBatch {
    let promptsPath: String
    let folder: String
    /// The command line's settings; `prompt` is unused, each line's options override the rest.
    let defaults: RenderSettings
    let loraFolder: String
    let model: String
    var motionAdapter: String?
    let fps: Double
    /// `--allow-partial`, for every line's LoRAs.
    var allowPartial = false

    /// One line of the file on its way through the batch.
    struct Item {
        var line: Int
        var prompt: String
        var settings: RenderSettings?
        var output: RenderOutput?
        var error: String?
        var rendered = false
    }

    func run() throws {
        var items = try plan()
        for item in items { if let error = item.error { report(item.line, error) } }
        var index = BatchIndex(folder: folder, entries: items.map(entry))
        var pending = items.indices.filter { items[$0].error == nil }
        if !pending.isEmpty {
            let renderer = PromptRenderer(pipeline: try TextToVideoPipeline.load(folder: model, motionAdapter: motionAdapter),
                                          model: MotionAdapterOption.label(model, motionAdapter: motionAdapter), fps: fps,
                                          allowPartial: allowPartial)
            checkLoRAs(&items, pending: pending, renderer: renderer)
            pending = pending.filter { items[$0].error == nil }
            index.entries = items.map(entry)
            try render(&items, pending: pending, renderer: renderer, index: &index)
        }
        try index.write()

        let failed = items.filter { $0.error != nil }
        let rendered = items.count - failed.count
        print("rendered \(rendered) of \(items.count) line\(items.count == 1 ? "" : "s") into \(folder)/"
              + " (index: \(folder)/\(BatchIndex.jsonName)\(index.tiles.isEmpty ? "" : ", \(folder)/\(BatchIndex.sheetName)"))")
        if !failed.isEmpty {
            throw ExitStatus.Failure(status: .partial, message: "\(failed.count) of \(items.count) line\(items.count == 1 ? "" : "s") failed: "
                                     + "\(promptsPath):" + failed.map { String($0.line) }.joined(separator: ","))
        }
    }

    // MARK: Before the model loads

    /// Reads and checks every line; creates the folder. Fails as a whole only for the file itself,
    /// the folder, or an index that would overwrite an input.
    func plan() throws -> [Item] {
        guard let data = FileManager.default.contents(atPath: promptsPath) else {
            throw ExitStatus.Failure(status: .failure, message: "--prompts '\(promptsPath)': cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ExitStatus.Failure(status: .failure, message: "--prompts '\(promptsPath)': not UTF-8 text")
        }
        let entries = PromptFile.parse(text)
        guard !entries.isEmpty else {
            throw ExitStatus.Failure(status: .failure, message: "--prompts '\(promptsPath)': no prompt lines (one prompt per line; '#' starts a comment)")
        }
        try createFolder()

        var items = entries.map { entry -> Item in
            switch entry {
            case let .line(line): return resolve(line)
            case let .error(error): return Item(line: error.number, prompt: error.prompt, error: error.message)
            }
        }
        let guardedInputs = InputGuard(paths: [promptsPath, model] + items.flatMap { $0.settings?.loras.map(\.path) ?? [] })
        for name in [BatchIndex.jsonName, BatchIndex.sheetName] {
            if let input = guardedInputs.conflict(folder + "/" + name) {
                throw ExitStatus.Failure(status: .failure, message: "--out '\(folder)': the index \(name) would overwrite the input '\(input)'")
            }
        }
        // Output names are claimed in file order; the index's names are taken from the start.
        var claimed = [BatchIndex.jsonName, BatchIndex.sheetName].reduce(into: [String: String]()) { $0[$1.lowercased()] = "the index" }
        for position in items.indices where items[position].error == nil {
            let output = items[position].output!
            let names = output.paths.map { ($0 as NSString).lastPathComponent }
            if let taken = names.first(where: { claimed[$0.lowercased()] != nil }) {
                items[position].error = "out=\(outputStem(output)): the output \(taken) is already used by \(claimed[taken.lowercased()]!)"
                continue
            }
            if let input = output.paths.lazy.compactMap(guardedInputs.conflict).first {
                items[position].error = "out=\(outputStem(output)): the output would overwrite the input '\(input)'"
                continue
            }
            for name in names { claimed[name.lowercased()] = "line \(items[position].line)" }
        }
        return items
    }

    /// A line's settings and output from the defaults and its options.
    func resolve(_ line: PromptLine) -> Item {
        var item = Item(line: line.number, prompt: line.prompt)
        let options = line.options
        var settings = defaults
        settings.prompt = line.prompt
        settings.negative = options.negative ?? defaults.negative
        settings.frames = options.frames ?? defaults.frames
        settings.steps = options.steps ?? defaults.steps
        settings.guidance = options.guidance ?? defaults.guidance
        settings.seed = options.seed ?? defaults.seed
        settings.scheduler = options.scheduler ?? defaults.scheduler
        if let requests = options.loras {
            do {
                // A line's lora= replaces the command line's --lora list; --motion and --spatial stay.
                settings.loras = try requests.map { try $0.resolve(loraFolder: loraFolder) } + settings.loras.filter { $0.role != .lora }
            } catch {
                item.error = "lora=\(describe(error))"
                return item
            }
        }
        item.settings = settings
        do {
            item.output = try RenderOutput(out: folder + "/" + outputFileName(options.out, line: line.number, frames: settings.frames),
                                           frames: settings.frames)
        } catch {
            item.error = describe(error)
        }
        return item
    }

    /// `line-007.png` / `line-007.mp4`, or the line's `out=` name with `.png` / `.mp4` added when it
    /// has none of the extensions render writes.
    func outputFileName(_ out: String?, line: Int, frames: Int) throws -> String {
        let name = out ?? String(format: "line-%03d", line)
        let fileExtension = (name as NSString).pathExtension.lowercased()
        let expected = frames == 1 ? ["png"] : RenderOutput.videoExtensions
        if out != nil, (["png"] + RenderOutput.videoExtensions).contains(fileExtension) {
            guard expected.contains(fileExtension) else {
                throw PromptOptionError(description: "out=\(name): \(frames == 1 ? "one frame is written as a .png" : "\(frames) frames are written as .mp4, .m4v or .gif")")
            }
            return name
        }
        return name + (frames == 1 ? ".png" : ".mp4")
    }

    private func outputStem(_ output: RenderOutput) -> String {
        ((output.out as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    private func createFolder() throws {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) {
            guard isFolder.boolValue else {
                throw ExitStatus.Failure(status: .failure, message: "--out '\(folder)' is a file; with --prompts it is the output folder")
            }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw ExitStatus.Failure(status: .failure, message: "--out '\(folder)': cannot create the folder: \(error.localizedDescription)")
            }
        }
        guard access(folder, W_OK) == 0 else {
            throw ExitStatus.Failure(status: .failure, message: "--out '\(folder)': the folder is not writable")
        }
    }

    // MARK: With the model

    /// Each LoRA file is loaded once onto the model and taken off again: a file that does not fit
    /// fails its lines before any rendering.
    private func checkLoRAs(_ items: inout [Item], pending: [Int], renderer: PromptRenderer) {
        var problems: [String: String] = [:]
        for position in pending {
            for choice in items[position].settings!.loras {
                if problems[choice.path] == nil {
                    do {
                        try renderer.loras.check(choice)
                        problems[choice.path] = ""
                    } catch {
                        problems[choice.path] = "lora=\(choice.name): \(describe(error))"
                    }
                }
                if let problem = problems[choice.path], !problem.isEmpty, items[position].error == nil {
                    items[position].error = problem
                    report(items[position].line, problem)
                }
            }
        }
    }

    private func render(_ items: inout [Item], pending: [Int], renderer: PromptRenderer, index: inout BatchIndex) throws {
        let totalUnits = pending.reduce(0) { $0 + items[$1].settings!.workUnits }
        var doneUnits = 0.0
        let start = Date()
        let fileName = (promptsPath as NSString).lastPathComponent
        try index.write()
        for (count, position) in pending.enumerated() {
            let line = items[position].line
            let settings = items[position].settings!
            var header = "render line \(count + 1)/\(pending.count) (line \(line) of \(fileName))"
            if doneUnits > 0 {
                let rate = doneUnits / Date().timeIntervalSince(start)
                header += ", batch ETA \(ProgressReporter.formatDuration((totalUnits - doneUnits) / rate))"
            }
            FileHandle.standardError.write(header + ": " + settings.prompt + "\n")
            do {
                let result = try renderer.render(settings, to: items[position].output!, context: "\(promptsPath):\(line): ")
                items[position].rendered = true
                let tile = result.images[settings.frames == 1 ? 0 : result.images.count / 2]
                index.tiles.append(.init(line: line, prompt: settings.prompt, image: tile))
                print("line \(line): wrote " + result.written.joined(separator: ", ")
                      + " (\(settings.frames) frame\(settings.frames == 1 ? "" : "s"), \(tile.width)x\(tile.height))")
            } catch {
                items[position].error = describe(error)
                report(line, describe(error))
            }
            doneUnits += settings.workUnits
            index.entries[position] = entry(items[position])
            try index.write()
        }
    }

    // MARK: Reporting

    private func report(_ line: Int, _ message: String) {
        FileHandle.standardError.write("customize: \(promptsPath):\(line): \(message)\n")
    }

    private func entry(_ item: Item) -> BatchIndex.Entry {
        let status: BatchIndex.Entry.Status = item.error != nil ? .error : item.rendered ? .ok : .pending
        let settings = item.settings.map { settings in
            BatchIndex.Entry.Settings(negative: settings.negative, frames: settings.frames, steps: settings.steps,
                                      guidance: settings.guidance, seed: settings.seed, scheduler: settings.scheduler,
                                      loras: settings.loras, model: model, fps: fps)
        }
        let outputs = item.output?.paths.map { path in
            String(path.dropFirst(folder.count + 1))
        } ?? []
        return BatchIndex.Entry(line: item.line, prompt: item.prompt, status: status, error: item.error,
                                settings: settings, outputs: status == .error ? [] : outputs)
    }
}

/// The files a batch reads (prompt file, model folder, LoRA files): no output may replace one of
/// them, nor a folder that holds one.
struct InputGuard {
    /// (as given, absolute forms: as written and with links resolved)
    private let inputs: [(shown: String, absolute: [String])]

    init(paths: [String]) {
        var seen: Set<String> = []
        inputs = paths.filter { seen.insert($0).inserted }.map { ($0, Self.absoluteForms($0)) }
    }

    /// The input `output` would replace, or nil.
    func conflict(_ output: String) -> String? {
        let outputForms = Self.absoluteForms(output)
        for input in inputs {
            for inputForm in input.absolute {
                for outputForm in outputForms where inputForm == outputForm || inputForm.hasPrefix(outputForm + "/") {
                    return input.shown
                }
            }
        }
        return nil
    }

    /// The path made absolute and standardized, and the same with links resolved (for a path that
    /// does not exist yet, with its folder's links resolved).
    static func absoluteForms(_ path: String) -> [String] {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        var forms = [absolute]
        let resolved: String?
        if let real = realpath(absolute, nil) {
            resolved = String(cString: real)
            free(real)
        } else if let realFolder = realpath((absolute as NSString).deletingLastPathComponent, nil) {
            resolved = String(cString: realFolder) + "/" + (absolute as NSString).lastPathComponent
            free(realFolder)
        } else {
            resolved = nil
        }
        if let resolved, resolved != absolute { forms.append(resolved) }
        return forms
    }
}
