import Foundation

/// A run's JSON record (pretty, sorted keys, written atomically), as the other methods keep theirs.
enum RunRecordFile {
    static func write<Record: Encodable>(_ record: Record, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do { try encoder.encode(record).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw MethodError.badRun(folder: path, reason: "cannot write the run record: \(error.localizedDescription)")
        }
    }

    static func read<Record: Decodable>(_ path: String, folder: String, what: String) throws -> Record {
        guard FileManager.default.fileExists(atPath: path) else {
            throw MethodError.badRun(folder: folder, reason: "holds no \(what) to resume (no \((path as NSString).lastPathComponent))")
        }
        do { return try JSONDecoder().decode(Record.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw MethodError.badRun(folder: path, reason: "cannot read the run record: \(error)")
        }
    }
}

extension BreakForMakeConfig {
    /// The settings a resumed run goes on with: `adjust` may change the step count and the intervals,
    /// nothing else (the adapter, data and seed are the run's).
    func adjustedForResume(folder: String, adjust: (inout BreakForMakeConfig) -> Void) throws -> BreakForMakeConfig {
        var config = self
        adjust(&config)
        var comparable = config
        comparable.maxTrainSteps = maxTrainSteps
        comparable.checkpointingSteps = checkpointingSteps
        comparable.validationSteps = validationSteps
        guard comparable == self else {
            throw MethodError.badRun(folder: folder, reason: "a resumed run keeps its adapter, data and seed; only the step count and intervals may change")
        }
        return config
    }
}
