import Checkpoints
import Foundation
import Models
import Tensor

/// What a checkpoint's trainer_state.json holds besides the tensors: enough to continue exactly
/// where the run stopped (accelerate's `save_state` layout, reduced to what this trainer needs).
public struct TrainerState: Codable, Equatable, Sendable {
    /// Completed optimizer steps.
    public var step: Int
    /// The seed of every draw; step s draws from `RandomGenerator(seed:).derived(s)`, so the random
    /// stream position is the step itself.
    public var seed: UInt64
    /// Batches drawn from the data stream so far (batch s is a pure function of (seed, s)).
    public var dataStreamPosition: Int
    /// Training time so far, in seconds (for the log's wall time, not for resuming).
    public var elapsedSeconds: Double
    /// The options the run was started with.
    public var options: TrainerOptions
    /// How many tensors were trained (a check that the model matches on resume).
    public var parameterCount: Int

    enum CodingKeys: String, CodingKey {
        case step, seed, options
        case dataStreamPosition = "data_stream_position"
        case elapsedSeconds = "elapsed_seconds"
        case parameterCount = "parameter_count"
    }
}

/// One checkpoint folder `checkpoint-NNNNNN/`: model.safetensors (the trained parameters, F32),
/// optimizer.safetensors (AdamW's moments and step counts), ema.safetensors (when an average is
/// kept) and trainer_state.json, written in that order.
///
/// Writing goes to a hidden sibling `.checkpoint-NNNNNN.tmp-PID` that is renamed into place only
/// when every file is complete, so a run killed mid-write leaves either the previous checkpoints or
/// the new one, never a torn folder under the real name; `latest(in:)` only looks at real names.
public enum TrainerCheckpoint {
    public static let modelFile = "model.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    public static let emaFile = "ema.safetensors"
    public static let stateFile = "trainer_state.json"
    static let prefix = "checkpoint-"

    public static func name(step: Int) -> String { prefix + String(format: "%06d", step) }

    /// Complete checkpoints in `folder`, oldest first (hidden temporary folders are not listed).
    public static func list(in folder: String) -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        var found: [(Int, String)] = []
        for name in names where name.hasPrefix(prefix) {
            guard let step = Int(name.dropFirst(prefix.count)), step >= 0 else { continue }
            let path = (folder as NSString).appendingPathComponent(name)
            // The state file is written last, inside the temporary folder: a listed folder without it was not ours.
            guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(stateFile)) else { continue }
            found.append((step, path))
        }
        return found.sorted { $0.0 < $1.0 }.map { (step: $0.0, path: $0.1) }
    }

    /// The newest complete checkpoint in `folder`, or nil.
    public static func latest(in folder: String) -> (step: Int, path: String)? { list(in: folder).last }

    /// Writes a checkpoint atomically and returns its path; then keeps only the newest `keep`.
    static func write(step: Int, in folder: String, parameters: [(path: String, tensor: Tensor)],
                      optimizerState: [String: Tensor], emaState: [String: Tensor]?, state: TrainerState, keep: Int) throws -> String {
        let fileManager = FileManager.default
        let final = (folder as NSString).appendingPathComponent(name(step: step))
        let temporary = (folder as NSString).appendingPathComponent(".\(name(step: step)).tmp-\(getpid())")
        do {
            try fileManager.createDirectory(atPath: folder, withIntermediateDirectories: true)
            if fileManager.fileExists(atPath: temporary) { try fileManager.removeItem(atPath: temporary) }
            try fileManager.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        } catch {
            throw TrainingError.checkpoint(path: temporary, reason: "cannot create the folder: \(error.localizedDescription)")
        }
        do {
            try writeTensors(parameters.map { ($0.path, $0.tensor) }, to: (temporary as NSString).appendingPathComponent(modelFile))
            try writeTensors(optimizerState.sorted { $0.key < $1.key }, to: (temporary as NSString).appendingPathComponent(optimizerFile))
            if let emaState {
                try writeTensors(emaState.sorted { $0.key < $1.key }, to: (temporary as NSString).appendingPathComponent(emaFile))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: URL(fileURLWithPath: (temporary as NSString).appendingPathComponent(stateFile)), options: .atomic)
            if fileManager.fileExists(atPath: final) { try fileManager.removeItem(atPath: final) }
            try fileManager.moveItem(atPath: temporary, toPath: final)
        } catch {
            try? fileManager.removeItem(atPath: temporary)
            if let error = error as? TrainingError { throw error }
            throw TrainingError.checkpoint(path: final, reason: "cannot write the checkpoint: \(error)")
        }
        syncDirectory(folder)
        for old in list(in: folder).dropLast(max(keep, 1)) { try? fileManager.removeItem(atPath: old.path) }
        return final
    }

    /// Removes temporary checkpoint folders left behind by a killed run.
    static func removeAbandoned(in folder: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in names where name.hasPrefix("." + prefix) && name.contains(".tmp-") {
            try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
        }
    }

    /// Reads a checkpoint's trainer_state.json.
    public static func readState(_ path: String) throws -> TrainerState {
        let file = (path as NSString).appendingPathComponent(stateFile)
        do {
            return try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw TrainingError.checkpoint(path: file, reason: "cannot read the trainer state: \(error)")
        }
    }

    /// Every tensor of a safetensors file by name.
    public static func readTensors(_ path: String) throws -> [String: Tensor] {
        let file = try SafeTensorsFile(path: path)
        var tensors: [String: Tensor] = [:]
        for name in file.names {
            let entry = try file.entry(name)
            let tensor = Tensor(uninitialized: entry.shape)
            try file.read(name, into: tensor.data, count: tensor.count)
            tensors[name] = tensor
        }
        return tensors
    }

    /// The weights a finished stage hands on: the moving average when one was kept, else the
    /// trained parameters, keyed by parameter path.
    public static func finalWeights(_ path: String) throws -> [String: Tensor] {
        let ema = (path as NSString).appendingPathComponent(emaFile)
        if FileManager.default.fileExists(atPath: ema) {
            var tensors = try readTensors(ema)
            tensors["optimization_step"] = nil
            return tensors
        }
        return try readTensors((path as NSString).appendingPathComponent(modelFile))
    }

    static func writeTensors(_ tensors: [(String, Tensor)], to path: String) throws {
        let entries = tensors.map { name, tensor in
            SafeTensors.TensorToWrite(name: name, shape: tensor.shape,
                                      borrowing: UnsafeBufferPointer(start: tensor.data, count: tensor.count))
        }
        try withExtendedLifetime(tensors) {
            try SafeTensors.write(entries, metadata: ["format": "pt"], to: path)
        }
    }

    /// fsync of the folder, so the rename survives a power cut (kill -9 does not need it).
    private static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY)
        if descriptor >= 0 {
            fsync(descriptor)
            close(descriptor)
        }
    }
}
