import Checkpoints
import Foundation

/// A diffusers pipeline folder as `DiffusionPipeline.save_pretrained` lays it out and
/// `from_pretrained` reads it: `model_index.json` naming the components, and one subfolder per
/// component with its config (`config.json`; `scheduler_config.json` for the scheduler; the
/// tokenizer's files) and weights (`diffusion_pytorch_model.safetensors` for diffusers models,
/// `model.safetensors` for transformers models), stored as F32, F16 or BF16 and read as Float32.
///
/// Reading checks what it needs as it goes: a component missing from the index or from the disk,
/// or a missing file, is `ModelError.missingComponent`; a component class or config value this
/// implementation cannot build is `badConfig` naming the file and key; weights that do not fit
/// are one `weightsMismatch` listing every problem. Writing is `DiffusersFolderWriter`.
public struct DiffusersFolder {
    public static let indexFile = "model_index.json"
    public static let diffusersWeightsFile = "diffusion_pytorch_model.safetensors"
    public static let transformersWeightsFile = "model.safetensors"
    public static let schedulerConfigFile = "scheduler_config.json"
    /// The component classes each role accepts.
    public static let unetClasses = ["UNet3DConditionModel", "UNetMotionModel", "UNet2DConditionModel"]
    public static let motionAdapterClasses = ["MotionAdapter"]

    /// The diffusers pipeline that runs `unet`: model_index.json's `_class_name` when saving.
    public static func pipelineClass(for unet: any Denoiser) -> String {
        switch unet.className {
        case "UNetMotionModel": return "AnimateDiffPipeline"
        case "UNet2DConditionModel": return "StableDiffusionPipeline"
        default: return "TextToVideoSDPipeline"
        }
    }
    public static let vaeClasses = ["AutoencoderKL"]
    public static let textEncoderClasses = ["CLIPTextModel"]
    public static let tokenizerClasses = ["CLIPTokenizer", "CLIPTokenizerFast"]

    public let path: String
    public let index: ModelIndex

    /// Opens the folder at `path` and reads its model_index.json.
    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.missingComponent(folder: path, component: "\(Self.indexFile) (there is no folder at this path)")
        }
        let indexPath = Self.join(path, Self.indexFile)
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw ModelError.missingComponent(folder: path, component: Self.indexFile)
        }
        index = try ModelIndex.decode(data, file: indexPath)
    }

    /// The folder of component `name`, after checking that model_index.json lists it with one of
    /// `classes` and that the folder exists.
    public func componentFolder(_ name: String, classes: [String]) throws -> String {
        guard let component = index.components[name] else {
            throw ModelError.missingComponent(folder: path, component: "\(name) (not listed in \(Self.indexFile))")
        }
        guard classes.contains(component.className) else {
            throw ModelError.badConfig(file: Self.join(path, Self.indexFile), key: name,
                                       reason: "unsupported class \"\(component.className)\" (supported: \(classes.joined(separator: ", ")))")
        }
        let folder = Self.join(path, name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.missingComponent(folder: path, component: "\(name)/ (listed in \(Self.indexFile))")
        }
        return folder
    }

    /// `unet/`: config.json and diffusion_pytorch_model.safetensors; model_index.json's class decides
    /// the model. An image U-Net (`UNet2DConditionModel`) is joined with AnimateDiff's motion modules
    /// when `motionAdapter` (a `MotionAdapter` folder) is given or the folder has `motion_adapter/`
    /// (as `AnimateDiffPipeline` does with `from_unet2d`); a `UNetMotionModel`'s own modules are
    /// replaced by `motionAdapter`'s. An adapter that does not fit the U-Net is refused, naming its
    /// config key, before any weights are read.
    public func loadUNet(motionAdapter: String? = nil) throws -> any Denoiser {
        let folder = try componentFolder("unet", classes: Self.unetClasses)
        let configPath = try requireFile(folder, "config.json")
        switch index.components["unet"]!.className {
        case "UNetMotionModel":
            let model = try UNetMotionModel(config: UNetMotionConfig.load(path: configPath), file: configPath)
            try model.loadWeights(from: weights(folder, Self.diffusersWeightsFile))
            guard let motionAdapter else { return model }
            let (config, file) = try Self.motionAdapterConfig(folder: motionAdapter)
            let image = try model.imageUNet()
            try config.checkFits(image.config, file: file)
            return try UNetMotionModel(image: image, adapter: Self.loadMotionAdapter(folder: motionAdapter), adapterFile: file)
        case "UNet2DConditionModel":
            let image = try UNet2DConditionModel(config: UNet2DConditionConfig.load(path: configPath), file: configPath)
            let adapterFolder = try motionAdapter ?? index.components["motion_adapter"].map { _ in
                try componentFolder("motion_adapter", classes: Self.motionAdapterClasses)
            }
            guard let adapterFolder else {
                try image.loadWeights(from: weights(folder, Self.diffusersWeightsFile))
                return image
            }
            let (config, file) = try Self.motionAdapterConfig(folder: adapterFolder)
            try config.checkFits(image.config, file: file)
            try image.loadWeights(from: weights(folder, Self.diffusersWeightsFile))
            return try UNetMotionModel(image: image, adapter: Self.loadMotionAdapter(folder: adapterFolder), adapterFile: file)
        default:
            if let motionAdapter {
                throw ModelError.badInput("--motion-adapter \(motionAdapter): a motion adapter goes with an image U-Net (UNet2DConditionModel) or a UNetMotionModel, and \(path) has a UNet3DConditionModel")
            }
            let model = try UNet3DConditionModel(config: UNet3DConfig.load(path: configPath), file: configPath)
            try model.loadWeights(from: weights(folder, Self.diffusersWeightsFile))
            return model
        }
    }

    /// A `MotionAdapter` folder's config (validated) and the config file's path.
    static func motionAdapterConfig(folder: String) throws -> (MotionAdapterConfig, String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError.missingComponent(folder: folder, component: "config.json (there is no motion adapter folder at this path)")
        }
        let file = join(folder, "config.json")
        guard FileManager.default.fileExists(atPath: file) else { throw ModelError.missingComponent(folder: folder, component: "config.json") }
        let config = try MotionAdapterConfig.load(path: file)
        if config.className != "MotionAdapter" {
            throw ModelError.badConfig(file: file, key: "_class_name", reason: "\"\(config.className)\" is not a MotionAdapter")
        }
        return (config, file)
    }

    /// A `MotionAdapter` folder (config.json and diffusion_pytorch_model.safetensors), as
    /// `MotionAdapter.from_pretrained` reads it and `save_motion_modules` writes it.
    public static func loadMotionAdapter(folder: String) throws -> MotionAdapter {
        let (config, file) = try motionAdapterConfig(folder: folder)
        let adapter = try MotionAdapter(config: config, file: file)
        try adapter.loadWeights(from: reader(folder, diffusersWeightsFile))
        return adapter
    }

    /// `vae/`: config.json and diffusion_pytorch_model.safetensors.
    public func loadVAE() throws -> AutoencoderKL {
        let folder = try componentFolder("vae", classes: Self.vaeClasses)
        let configPath = try requireFile(folder, "config.json")
        let model = try AutoencoderKL(config: AutoencoderKLConfig.load(path: configPath), file: configPath)
        try model.loadWeights(from: weights(folder, Self.diffusersWeightsFile))
        return model
    }

    /// `text_encoder/`: config.json and model.safetensors.
    public func loadTextEncoder() throws -> CLIPTextModel {
        let folder = try componentFolder("text_encoder", classes: Self.textEncoderClasses)
        let configPath = try requireFile(folder, "config.json")
        let model = try CLIPTextModel(config: CLIPTextConfig.load(path: configPath), file: configPath)
        try model.loadCheckpoint(from: weights(folder, Self.transformersWeightsFile))
        return model
    }

    /// `tokenizer/`: vocab.json and merges.txt (+ tokenizer_config.json, special_tokens_map.json).
    public func loadTokenizer() throws -> CLIPTokenizer {
        try CLIPTokenizer(folder: componentFolder("tokenizer", classes: Self.tokenizerClasses))
    }

    /// Every file of `tokenizer/` by name, to save the tokenizer again unchanged.
    public func tokenizerFiles() throws -> [String: Data] {
        let folder = try componentFolder("tokenizer", classes: Self.tokenizerClasses)
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasPrefix(".") {
            var isDirectory: ObjCBool = false
            let file = Self.join(folder, name)
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ModelError.badTokenizer(file: file, reason: "cannot read the file")
            }
            files[name] = data
        }
        return files
    }

    /// The path of `scheduler/scheduler_config.json` (decoded by Diffusion's `SchedulerConfig`) and
    /// the class model_index.json names for it.
    public func schedulerConfig() throws -> (path: String, className: String) {
        guard let component = index.components["scheduler"] else {
            throw ModelError.missingComponent(folder: path, component: "scheduler (not listed in \(Self.indexFile))")
        }
        let folder = try componentFolder("scheduler", classes: [component.className])
        return (try requireFile(folder, Self.schedulerConfigFile), component.className)
    }

    // MARK: Files

    func requireFile(_ folder: String, _ name: String) throws -> String {
        let file = Self.join(folder, name)
        guard FileManager.default.fileExists(atPath: file) else {
            throw ModelError.missingComponent(folder: folder, component: name)
        }
        return file
    }

    /// The component's weights: `name`, or its fp16 variant (`diffusion_pytorch_model.fp16.safetensors`)
    /// when only that was saved.
    func weights(_ folder: String, _ name: String) throws -> SafeTensorsFile {
        try Self.reader(folder, name)
    }

    static func reader(_ folder: String, _ name: String) throws -> SafeTensorsFile {
        let variant = (name as NSString).deletingPathExtension + ".fp16.safetensors"
        for candidate in [name, variant] where FileManager.default.fileExists(atPath: Self.join(folder, candidate)) {
            return try SafeTensorsFile(path: Self.join(folder, candidate))
        }
        if FileManager.default.fileExists(atPath: Self.join(folder, name + ".index.json")) {
            throw ModelError.missingComponent(folder: folder, component: "\(name) (weights sharded with an index file are not supported)")
        }
        throw ModelError.missingComponent(folder: folder, component: name)
    }

    static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
