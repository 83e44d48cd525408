import ArgumentParser
import Evaluation
import Foundation

/// `customize inspect PATH...`: what each file or folder is and what it holds, told by content.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say what files are: clips, PNG images, safetensors (LoRA) files, diffusers models, folders.",
        discussion: """
        Formats are recognised by their leading bytes, not by extension. A folder is described one \
        level deep: a diffusers model folder (model_index.json) by its components, configs and \
        weights; any other folder by each clip, image and safetensors file in it. For AnimateDiff \
        (UNetMotionModel) and image U-Net (StableDiffusionPipeline) folders and MotionAdapter \
        folders: what they render, the U-Net's layout, the motion modules (count, heads, most \
        frames) and the parameters of each. A LoRA file's targets are counted by kind (spatial, \
        motion, UNet3D temporal, text encoder), which tells the U-Net layout it is for.

        A path that cannot be read is reported on standard error and the rest are still described. \
        Exit status: 0 all described, 2 some failed, 1 all failed.

        Examples:
          customize inspect clip.mp4 frame_0001.png adapter.safetensors
          customize inspect samples/base --json
          customize inspect animatediff/ motion_adapter/ animatediff_lora.safetensors
        """)

    @Argument(help: "Files or folders to describe.")
    var paths: [String]

    @Flag(help: "Print one JSON array with an object per path (failed paths carry an \"error\").")
    var json = false

    func run() throws {
        let inspector = Inspector()
        let items = paths.map(inspector.inspectArgument)
        if json {
            print(Fact.list(items.map(\.fact)).json)
        } else {
            let described = items.filter { $0.error == nil }
            for (index, item) in described.enumerated() {
                if index > 0 { print("") }
                print(item.textLines().joined(separator: "\n"))
            }
        }
        if inspector.failed > 0 {
            throw ExitCode(inspector.succeeded == 0 ? ExitStatus.failure.rawValue : ExitStatus.partial.rawValue)
        }
    }
}

/// One described path: its kind, its facts, and for a plain folder the paths inside it.
struct InspectedItem {
    var path: String
    var kind: String
    var facts: [(String, Fact)] = []
    var entries: [InspectedItem] = []
    var error: String?

    var fact: Fact {
        var pairs: [(String, Fact)] = [("path", .text(path)), ("kind", .text(kind))]
        if let error { pairs.append(("error", .text(error))) }
        pairs += facts
        if kind == "folder" { pairs.append(("entries", .list(entries.map(\.fact)))) }
        return .record(pairs)
    }

    func textLines(indent: String = "") -> [String] {
        var lines = ["\(indent)\(path): \(kind)"]
        lines += Fact.record(facts).textLines(indent: indent + "  ")
        for entry in entries where entry.error == nil {
            lines += entry.textLines(indent: indent + "  ")
        }
        return lines
    }
}

/// Describes paths one by one, reporting each failure on standard error as it happens and
/// keeping count, so one bad file never stops the others.
final class Inspector {
    private(set) var succeeded = 0
    private(set) var failed = 0

    func inspectArgument(_ path: String) -> InspectedItem {
        let kind: InspectedKind
        do {
            kind = try InspectSniffer.kind(of: path)
        } catch {
            return failure(path: path, error)
        }
        guard kind == .folder else { return inspect(path, as: kind) }
        return inspectFolder(path)
    }

    /// A plain folder, one level deep: each clip, image, safetensors file and model folder in it is
    /// described; other files and folders are only listed.
    private func inspectFolder(_ path: String) -> InspectedItem {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
                .filter { !$0.hasPrefix(".") }.sorted(by: NaturalOrder.less)
        } catch {
            return failure(path: path, InspectFailure(path: path, reason: "cannot list the folder: \((error as NSError).localizedDescription)"))
        }
        var item = InspectedItem(path: path, kind: "folder")
        var otherFiles: [Fact] = [], subfolders: [Fact] = []
        for name in names {
            let child = path.hasSuffix("/") ? path + name : path + "/" + name
            let kind: InspectedKind
            do {
                kind = try InspectSniffer.kind(of: child)
            } catch {
                item.entries.append(failure(path: child, error))
                continue
            }
            switch kind {
            case .folder: subfolders.append(.text(name))
            case .unsupported, .unknown: otherFiles.append(.text(name))
            default: item.entries.append(inspect(child, as: kind))
            }
        }
        item.facts = [("described", .integer(item.entries.count)),
                      ("other_files", .list(otherFiles)), ("subfolders", .list(subfolders))]
        // A folder with files to describe counts as those files; an empty one as itself.
        if item.entries.isEmpty { succeeded += 1 }
        return item
    }

    private func inspect(_ path: String, as kind: InspectedKind) -> InspectedItem {
        do {
            switch kind {
            case .video:
                return success(InspectedItem(path: path, kind: "video", facts: try InspectMedia.video(path)))
            case .png:
                return success(InspectedItem(path: path, kind: "png", facts: try InspectMedia.png(path)))
            case .safetensors:
                return success(InspectedItem(path: path, kind: "safetensors", facts: try InspectSafeTensors.facts(path)))
            case .diffusersModel:
                let facts = try InspectDiffusers.model(path, report: report)
                return success(InspectedItem(path: path, kind: "diffusers model", facts: facts))
            case .diffusersComponent:
                let facts = InspectDiffusers.standaloneComponent(path, report: report)
                return success(InspectedItem(path: path, kind: "diffusers component", facts: facts))
            case .unsupported(let what):
                throw InspectFailure(path: path, reason: what)
            case .unknown:
                throw InspectFailure(path: path, reason: "unrecognised format (not a clip, PNG, safetensors file or folder; first bytes \(Self.leadingBytes(of: path)))")
            case .folder:
                return inspectFolder(path)
            }
        } catch {
            return failure(path: path, error)
        }
    }

    private func success(_ item: InspectedItem) -> InspectedItem {
        succeeded += 1
        return item
    }

    private func failure(path: String, _ error: Error) -> InspectedItem {
        let message = report(error, path: path)
        return InspectedItem(path: path, kind: "unreadable", error: message)
    }

    /// Reports a file inside a described item (a weight file of a model folder, say).
    private func report(_ error: Error) {
        _ = report(error, path: (error as? InspectFailure)?.path ?? "")
    }

    /// Prints the failure naming the path (library errors name it already) and counts it.
    @discardableResult
    private func report(_ error: Error, path: String) -> String {
        failed += 1
        var message = describe(error)
        if !path.isEmpty, !message.contains(path) { message = "'\(path)': \(message)" }
        FileHandle.standardError.write("customize: inspect: \(message)\n")
        return message
    }

    private static func leadingBytes(of path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "unreadable" }
        defer { try? handle.close() }
        let bytes = (try? handle.read(upToCount: 8)) ?? Data()
        return bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
    }
}
