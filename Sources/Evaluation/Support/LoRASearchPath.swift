import Adapters
import Checkpoints
import Foundation

/// Finding a LoRA by a bare name along a search path of folders (--lora-dir, default ./loras, then
/// the shipped samples/loras; every command that takes `--lora`): by file name first, then by the
/// token its metadata stores (`train-lora --token`).
extension LoRARequest {
    /// The shipped LoRAs (samples/loras of the working directory or of the checkout).
    public static let sampleLoRAs = SamplesFolder.path("loras")

    /// The file this request names, looked for in `folder` (`--lora-dir`), then in samples/loras.
    public func resolve(loraFolder folder: String) throws -> LoRAChoice {
        try resolve(searchFolders: folder == Self.sampleLoRAs ? [folder] : [folder, Self.sampleLoRAs])
    }

    /// The file this request names: `name` itself when it is an existing file; else, folder by
    /// folder, `<folder>/<name>.safetensors`, then a `.safetensors` file of the folder whose metadata
    /// stores `name` as its token (`training.token`, compared with and without its angle brackets, so
    /// `cat` finds a LoRA trained with `--token "<cat>"`). Two files of one folder with that token
    /// are an error naming both; the error for no match lists every place looked.
    public func resolve(searchFolders folders: [String]) throws -> LoRAChoice {
        if Self.isFile(name) { return LoRAChoice(name: name, path: name, scale: scale) }
        for folder in folders {
            let candidate = (folder as NSString).appendingPathComponent(name + ".safetensors")
            if Self.isFile(candidate) { return LoRAChoice(name: name, path: candidate, scale: scale) }
            let matches = Self.files(in: folder).filter { path in
                guard let token = LoRAFileFacts(path: path)?.token else { return false }
                return token == name || LoRAFileFacts.bare(token) == name
            }
            if matches.count > 1 {
                throw LoRARequestError(text: name, reason: "several LoRA files in '\(folder)' store the token \"\(name)\": "
                                       + matches.map { "'\($0)'" }.joined(separator: ", ") + "; give the file")
            }
            if let match = matches.first { return LoRAChoice(name: name, path: match, scale: scale) }
        }
        let places = [name] + folders.map { ($0 as NSString).appendingPathComponent(name + ".safetensors") }
        throw LoRARequestError(text: name, reason: "no LoRA file at " + places.map { "'\($0)'" }.joined(separator: " or ")
                               + (folders.isEmpty ? "" : ", and no LoRA in " + folders.map { "'\($0)'" }.joined(separator: ", ")
                                  + " stores the token \"\(name)\""))
    }

    public static func isFile(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && !isFolder.boolValue
    }

    /// The `.safetensors` files of `folder`, sorted; none when it does not exist.
    public static func files(in folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasSuffix(".safetensors") }.sorted()
            .map { (folder as NSString).appendingPathComponent($0) }
    }
}

/// What a LoRA file's metadata says about the concept it was trained on (`train-lora`'s
/// `training.token` and `training.class`).
public struct LoRAFileFacts {
    public var token: String?
    public var className: String?
    public var metadata: LoRAFileMetadata

    /// Nil when the file cannot be read as safetensors.
    public init?(path: String) {
        guard let file = try? SafeTensorsFile(path: path) else { return nil }
        metadata = LoRAFileMetadata(raw: file.metadata)
        token = metadata.training["token"]?.string
        className = metadata.training["class"]?.string
    }

    /// `<cat>` → `cat`.
    public static func bare(_ token: String) -> String {
        var text = token
        if text.hasPrefix("<") && text.hasSuffix(">") && text.count > 2 {
            text.removeFirst()
            text.removeLast()
        }
        return text
    }
}
