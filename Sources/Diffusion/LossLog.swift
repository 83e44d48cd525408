import Foundation

/// One optimizer step as the loss log records it.
public struct LossRecord: Equatable, Sendable {
    public var step: Int
    public var loss: Float
    public var learningRate: Float
    public var gradientNorm: Float
    public var seconds: Double

    public init(step: Int, loss: Float, learningRate: Float, gradientNorm: Float, seconds: Double) {
        self.step = step
        self.loss = loss
        self.learningRate = learningRate
        self.gradientNorm = gradientNorm
        self.seconds = seconds
    }
}

/// loss.csv beside the checkpoints: `step,loss,learning_rate,grad_norm,seconds`, one row per step
/// (the columns of diffusers' trackers, which log loss and lr per step). Rewritten whole and
/// atomically, so a killed run leaves a readable file; on resume rows after the checkpoint's step
/// are dropped, since those steps run again.
public enum LossLog {
    public static let fileName = "loss.csv"
    static let header = "step,loss,learning_rate,grad_norm,seconds"

    public static func write(_ records: [LossRecord], to path: String) throws {
        var text = header + "\n"
        text.reserveCapacity(records.count * 48)
        for record in records {
            text += "\(record.step),\(record.loss),\(record.learningRate),\(record.gradientNorm),\(String(format: "%.4f", record.seconds))\n"
        }
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TrainingError.checkpoint(path: path, reason: "cannot write the loss log: \(error.localizedDescription)")
        }
    }

    /// The records of `path` up to and including `step`; an absent file gives none.
    public static func read(_ path: String, upTo step: Int) throws -> [LossRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TrainingError.checkpoint(path: path, reason: "cannot read the loss log: \(error.localizedDescription)")
        }
        var records: [LossRecord] = []
        for (index, line) in text.split(separator: "\n").enumerated() where index > 0 {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count == 5, let recordStep = Int(fields[0]), let loss = Float(fields[1]),
                  let rate = Float(fields[2]), let norm = Float(fields[3]), let seconds = Double(fields[4]) else {
                throw TrainingError.checkpoint(path: path, reason: "line \(index + 1): expected \(header), got \"\(line)\"")
            }
            if recordStep <= step {
                records.append(LossRecord(step: recordStep, loss: loss, learningRate: rate, gradientNorm: norm, seconds: seconds))
            }
        }
        return records
    }
}
