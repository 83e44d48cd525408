import Foundation

/// Where the shipped samples (the base model, LoRAs, motions, clips) are found, so that every
/// `--model` default and sample search path works from any working directory:
/// `samples/<item>` when the working directory has it (the repository root, where README's commands
/// run), else `<root>/samples/<item>` for the nearest folder above the executable's real path that
/// holds it (`.build/release/customize` resolves to `.build/<triple>/release/customize`, three levels
/// below the repository root), else the
/// relative path, which the command's error then names.
public enum SamplesFolder {
    public static func path(_ item: String) -> String {
        resolve(item, workingDirectory: FileManager.default.currentDirectoryPath, executable: executablePath())
    }

    public static func resolve(_ item: String, workingDirectory: String, executable: String?) -> String {
        let relative = "samples/" + item
        let manager = FileManager.default
        if manager.fileExists(atPath: (workingDirectory as NSString).appendingPathComponent(relative)) { return relative }
        guard let executable else { return relative }
        var folder = (executable as NSString).deletingLastPathComponent
        for _ in 0 ..< 6 where folder.count > 1 {
            let candidate = (folder as NSString).appendingPathComponent(relative)
            if manager.fileExists(atPath: candidate) { return candidate }
            folder = (folder as NSString).deletingLastPathComponent
        }
        return relative
    }

    /// The running executable's real path, symbolic links resolved.
    public static func executablePath() -> String? {
        Bundle.main.executableURL?.resolvingSymlinksInPath().path
    }
}
