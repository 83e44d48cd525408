import Diffusion
import Foundation
import Methods
import Yams

/// `train-motion --config FILE`: a YAML file with the keys of showlab/MotionDirector's configs (read
/// with Yams), so a reference config works as it is. Keys the reference uses only for its GPU set-up
/// are reported as unused; keys neither side knows are reported as unknown (a typo would otherwise
/// silently train with a default).
enum MotionConfigFile {
    struct Loaded {
        var config: MotionDirectorConfig
        /// Reference keys read and not used here.
        var unused: [String]
        /// Keys no MotionDirector config has.
        var unknown: [String]
    }

    static func load(_ path: String) throws -> Loaded {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ExitStatus.Failure(status: .failure, message: "cannot read the config '\(path)': \(error.localizedDescription)")
        }
        let tree: Any?
        do { tree = try Yams.load(yaml: text) } catch {
            throw ExitStatus.Failure(status: .failure, message: "\(path): not valid YAML: \(error)")
        }
        guard let top = (tree ?? [String: Any]()) as? [String: Any] else {
            throw ExitStatus.Failure(status: .failure, message: "\(path): expected a mapping of keys to values at the top level")
        }
        let config: MotionDirectorConfig
        do {
            config = try YAMLDecoder().decode(MotionDirectorConfig.self, from: text)
        } catch let error as DecodingError {
            throw TrainingError.badOptions(file: path, key: keyPath(of: error), reason: reason(of: error))
        } catch {
            throw ExitStatus.Failure(status: .failure, message: "\(path): \(error)")
        }
        try config.validate(file: path)
        var unused: [String] = [], unknown: [String] = []
        for key in dottedKeys(top).sorted() {
            if MotionDirectorConfig.knownKeys.contains(key) { continue }
            if MotionDirectorConfig.ignoredReferenceKeys.contains(key)
                || MotionDirectorConfig.ignoredReferenceKeys.contains(String(key.prefix { $0 != "." })) {
                unused.append(key)
            } else {
                unknown.append(key)
            }
        }
        return Loaded(config: config, unused: unused, unknown: unknown)
    }

    /// Top-level keys, and `train_data.` / `validation_data.` keys one level down.
    static func dottedKeys(_ top: [String: Any]) -> [String] {
        top.flatMap { key, value -> [String] in
            if ["train_data", "validation_data"].contains(key), let nested = value as? [String: Any] {
                return nested.keys.map { "\(key).\($0)" }
            }
            return [key]
        }
    }

    static func keyPath(of error: DecodingError) -> String {
        let path: [CodingKey]
        switch error {
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context): path = context.codingPath
        case let .keyNotFound(key, context): path = context.codingPath + [key]
        @unknown default: path = []
        }
        return path.isEmpty ? "(top level)" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }

    static func reason(of error: DecodingError) -> String {
        switch error {
        case let .typeMismatch(type, _): return "expected a value of type \(type)"
        case let .valueNotFound(type, _): return "expected a value of type \(type)"
        case let .keyNotFound(key, _): return "missing key \(key.stringValue)"
        case let .dataCorrupted(context): return context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
