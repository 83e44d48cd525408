import Checkpoints
import Foundation
import Tensor

/// What `DiffusersFolderWriter` saves: a text-to-video (or text-to-image) pipeline's components.
public struct DiffusersFolderContents {
    /// model_index.json's `_class_name`: by default the diffusers pipeline that runs `unet`
    /// (`TextToVideoSDPipeline` for a UNet3D, `AnimateDiffPipeline` for a UNetMotionModel,
    /// `StableDiffusionPipeline` for an image U-Net).
    public var pipelineClassName: String
    public var unet: any Denoiser
    public var vae: AutoencoderKL
    public var textEncoder: CLIPTextModel
    /// The tokenizer folder's files by name (vocab.json, merges.txt, …), written unchanged.
    public var tokenizerFiles: [String: Data]
    /// The scheduler's `_class_name` and its scheduler_config.json as JSON (Diffusion encodes it).
    public var schedulerClassName: String
    public var schedulerConfigJSON: Data

    public init(pipelineClassName: String? = nil, unet: any Denoiser, vae: AutoencoderKL,
                textEncoder: CLIPTextModel, tokenizerFiles: [String: Data], schedulerClassName: String, schedulerConfigJSON: Data) {
        self.pipelineClassName = pipelineClassName ?? DiffusersFolder.pipelineClass(for: unet)
        self.unet = unet
        self.vae = vae
        self.textEncoder = textEncoder
        self.tokenizerFiles = tokenizerFiles
        self.schedulerClassName = schedulerClassName
        self.schedulerConfigJSON = schedulerConfigJSON
    }
}

/// Writes a diffusers pipeline folder (the layout of `DiffusionPipeline.save_pretrained`) that
/// `DiffusersFolder` and diffusers' `from_pretrained` read.
///
/// The folder is never seen half-written: everything is written into a hidden temporary sibling
/// folder, which is then renamed into place. An existing non-empty folder is replaced only when
/// `overwrite` is set (the old one is moved aside first and removed after the rename).
public enum DiffusersFolderWriter {
    /// The diffusers release whose layout and keys these files follow.
    public static let diffusersVersion = "0.42.1"
    /// The transformers release whose text-encoder config keys are written.
    public static let transformersVersion = "4.57.6"

    public static func write(_ contents: DiffusersFolderContents, to path: String, dtype: SafeTensors.DType = .f32,
                             overwrite: Bool = false) throws {
        guard SafeTensors.writableDTypes.contains(dtype) else {
            throw CheckpointError.cannotWrite(path: path, reason: "weights can be stored as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        let fileManager = FileManager.default
        let trimmed = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        let url = URL(fileURLWithPath: trimmed)
        let parent = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CheckpointError.cannotWrite(path: path, reason: "the folder '\(parent)' does not exist")
        }
        let exists = fileManager.fileExists(atPath: trimmed, isDirectory: &isDirectory)
        if exists {
            guard isDirectory.boolValue else {
                throw CheckpointError.cannotWrite(path: path, reason: "a file (not a folder) is in the way")
            }
            let isEmpty = ((try? fileManager.contentsOfDirectory(atPath: trimmed)) ?? ["?"]).isEmpty
            if !isEmpty && !overwrite {
                throw CheckpointError.cannotWrite(path: path, reason: "the folder exists and is not empty (overwriting it must be asked for)")
            }
        }

        let suffix = "\(getpid())-\(String(UInt32.random(in: 0 ... UInt32.max), radix: 16))"
        let temporary = parent + "/." + url.lastPathComponent + ".tmp-" + suffix
        do {
            try fileManager.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        } catch {
            throw CheckpointError.cannotWrite(path: path, reason: "cannot create \(temporary): \(error.localizedDescription)")
        }
        do {
            try writeComponents(contents, into: temporary, dtype: dtype)
        } catch {
            try? fileManager.removeItem(atPath: temporary)
            throw error
        }
        try moveIntoPlace(temporary, trimmed, replacing: exists)
    }

    static func writeComponents(_ contents: DiffusersFolderContents, into folder: String, dtype: SafeTensors.DType) throws {
        var entries: [String: ModelIndex.Component] = [
            "unet": .init(library: "diffusers", className: contents.unet.className),
            "vae": .init(library: "diffusers", className: "AutoencoderKL"),
            "text_encoder": .init(library: "transformers", className: "CLIPTextModel"),
            "tokenizer": .init(library: "transformers", className: "CLIPTokenizer"),
            "scheduler": .init(library: "diffusers", className: contents.schedulerClassName),
        ]
        // AnimateDiffPipeline.save_pretrained writes its motion modules twice: inside unet/ and as motion_adapter/.
        let motionAdapter = try (contents.unet as? UNetMotionModel)?.motionAdapter()
        if motionAdapter != nil { entries["motion_adapter"] = .init(library: "diffusers", className: "MotionAdapter") }
        // A StableDiffusionPipeline saved without a safety checker says so, as diffusers' own folders do.
        let flags = contents.pipelineClassName == "StableDiffusionPipeline" ? ["requires_safety_checker": false] : [:]
        let index = ModelIndex(className: contents.pipelineClassName, diffusersVersion: diffusersVersion, components: entries, flags: flags)
        try writeFile(index.encoded(), folder + "/" + DiffusersFolder.indexFile)

        var vaeConfig = contents.vae.config
        vaeConfig.diffusersVersion = diffusersVersion
        var textConfig = contents.textEncoder.config
        textConfig.transformersVersion = transformersVersion
        textConfig.architectures = ["CLIPTextModel"]
        var components: [(name: String, config: Data, configName: String, weights: [(String, Tensor)], weightsName: String)] = [
            ("unet", try contents.unet.configJSON(diffusersVersion: diffusersVersion), "config.json", contents.unet.stateDict(),
             DiffusersFolder.diffusersWeightsFile),
            ("vae", try JSONFiles.encode(vaeConfig), "config.json", contents.vae.stateDict(), DiffusersFolder.diffusersWeightsFile),
            ("text_encoder", try JSONFiles.encode(textConfig, decimalKeys: CLIPTextConfig.decimalKeys), "config.json", contents.textEncoder.stateDict(),
             DiffusersFolder.transformersWeightsFile),
        ]
        if let motionAdapter {
            components.append(("motion_adapter", try motionAdapter.config.fileJSON(diffusersVersion: diffusersVersion), "config.json",
                               motionAdapter.stateDict(),
                               DiffusersFolder.diffusersWeightsFile))
        }
        for component in components {
            let subfolder = folder + "/" + component.name
            try makeFolder(subfolder)
            try writeFile(component.config, subfolder + "/" + component.configName)
            try writeWeights(component.weights, to: subfolder + "/" + component.weightsName, dtype: dtype)
        }
        try makeFolder(folder + "/tokenizer")
        for (name, data) in contents.tokenizerFiles.sorted(by: { $0.key < $1.key }) {
            guard !name.contains("/"), !name.hasPrefix(".") else {
                throw CheckpointError.cannotWrite(path: folder + "/tokenizer", reason: "invalid tokenizer file name '\(name)'")
            }
            try writeFile(data, folder + "/tokenizer/" + name)
        }
        try makeFolder(folder + "/scheduler")
        try writeFile(contents.schedulerConfigJSON, folder + "/scheduler/" + DiffusersFolder.schedulerConfigFile)
    }

    /// A state dict as safetensors with the `{"format": "pt"}` metadata diffusers and transformers write.
    public static func writeWeights(_ weights: [(String, Tensor)], to path: String, dtype: SafeTensors.DType) throws {
        let tensors = weights.map { key, tensor in
            SafeTensors.TensorToWrite(name: key, shape: tensor.shape,
                                      borrowing: UnsafeBufferPointer(start: tensor.data, count: tensor.count), dtype: dtype)
        }
        try withExtendedLifetime(weights) {
            try SafeTensors.write(tensors, metadata: ["format": "pt"], to: path)
        }
    }

    static func makeFolder(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        } catch {
            throw CheckpointError.cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    static func writeFile(_ data: Data, _ path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw CheckpointError.cannotWrite(path: path, reason: error.localizedDescription)
        }
    }

    /// Renames the finished temporary folder to `destination`; an existing destination is moved
    /// aside first and restored if the rename fails.
    static func moveIntoPlace(_ temporary: String, _ destination: String, replacing: Bool) throws {
        let fileManager = FileManager.default
        var aside: String?
        if replacing {
            let url = URL(fileURLWithPath: destination)
            let moved = url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".old-\(getpid())-\(UInt32.random(in: 0 ... UInt32.max))"
            guard rename(destination, moved) == 0 else {
                let reason = String(cString: strerror(errno))
                try? fileManager.removeItem(atPath: temporary)
                throw CheckpointError.cannotWrite(path: destination, reason: "cannot move the existing folder aside: \(reason)")
            }
            aside = moved
        }
        guard rename(temporary, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            if let aside { _ = rename(aside, destination) }
            try? fileManager.removeItem(atPath: temporary)
            throw CheckpointError.cannotWrite(path: destination, reason: "rename from \(temporary): \(reason)")
        }
        if let aside { try? fileManager.removeItem(atPath: aside) }
    }
}
