import Checkpoints
import Evaluation
import Foundation
import Models

/// The facts `inspect` adds for AnimateDiff's folders: what a pipeline with an image U-Net renders,
/// the U-Net's layout, its motion modules (AnimateDiff's, inside a `UNetMotionModel` or kept apart
/// in a `MotionAdapter` folder) and the parameters of each half. Configs are read through the
/// types the loader builds from, so absent keys take diffusers' defaults and a config customize
/// cannot build says why instead of being described as if it could.
/// UNet3D (`TextToVideoSDPipeline`) folders get none of these facts: their description is the
/// components' alone.
enum InspectUNet {
    static let imageUNetClass = "UNet2DConditionModel"
    static let motionUNetClass = "UNetMotionModel"
    static let motionAdapterClass = "MotionAdapter"
    /// The path part of every motion-module tensor, in a `UNetMotionModel` and a `MotionAdapter` alike.
    static let motionModulesPart = "motion_modules."

    // MARK: Pipelines

    /// A pipeline folder's summary when `unet/` is AnimateDiff's (`UNetMotionModel`) or an image
    /// U-Net, joined with `motion_adapter/` when the folder has one (as the loader does); empty for
    /// other U-Nets.
    static func pipeline(_ path: String, unetClass: String, hasMotionAdapter: Bool) -> [(String, Fact)] {
        guard unetClass == motionUNetClass || unetClass == imageUNetClass else { return [] }
        let unetFolder = join(path, "unet")
        let configPath = join(unetFolder, "config.json")
        var facts: [(String, Fact)] = [("unet_class", .text(unetClass))]
        let renders: String
        do {
            if unetClass == motionUNetClass {
                let config = try UNetMotionConfig.load(path: configPath)
                facts += motionUNetFacts(config, folder: unetFolder)
                renders = "video of 1 to \(config.motionMaxSeqLength) frames (motion_max_seq_length); one frame is the image U-Net's picture"
            } else {
                let config = try UNet2DConditionConfig.load(path: configPath)
                facts.append(("layout", layoutFact(config.layout, down: config.downBlockTypes, up: config.upBlockTypes)))
                var split: [(String, Fact)] = []
                if let image = parameters(in: unetFolder) { split.append(("image_unet", .integer(image.image + image.motion))) }
                if hasMotionAdapter {
                    let adapterFolder = join(path, "motion_adapter")
                    let adapter = try motionAdapterConfig(adapterFolder)
                    try adapter.checkFits(config, file: join(adapterFolder, "config.json"))
                    facts.append(("motion_modules", adapterMotionFact(adapter)))
                    if let motion = parameters(in: adapterFolder) { split.append(("motion_modules", .integer(motion.motion))) }
                    renders = "video of 1 to \(adapter.motionMaxSeqLength) frames (motion_max_seq_length): the image U-Net joined "
                        + "with motion_adapter/; one frame is the image U-Net's picture"
                } else {
                    renders = "pictures only (render --frames 1); to render video add AnimateDiff's motion modules with "
                        + "--motion-adapter DIR (a MotionAdapter folder)"
                }
                if !split.isEmpty { facts.append(("parameters", .record(split))) }
            }
        } catch {
            renders = "nothing: customize cannot load this U-Net (\(describe(error)))"
        }
        return [("renders", .text(renders))] + facts
    }

    /// A `UNetMotionModel`'s layout, motion modules and the parameters of each half.
    static func motionUNetFacts(_ config: UNetMotionConfig, folder: String) -> [(String, Fact)] {
        let layout = config.layout
        var facts: [(String, Fact)] = [
            ("layout", layoutFact(layout, down: config.downBlockTypes, up: config.upBlockTypes)),
            ("motion_modules", motionFact(layout.motion!, channels: layout.blockOutChannels,
                                          modulesPerBlock: layout.layersPerBlock, midModules: layout.midBlockLayers)),
        ]
        if let split = parameters(in: folder) {
            facts.append(("parameters", .record([("image_unet", .integer(split.image)), ("motion_modules", .integer(split.motion))])))
        }
        return facts
    }

    // MARK: Component folders

    /// A component folder on its own: an AnimateDiff or image U-Net's layout, motion modules and
    /// parameters, or a `MotionAdapter`'s modules and how to use them; empty for other classes.
    static func component(_ folder: String, className: String) -> [(String, Fact)] {
        let configPath = join(folder, "config.json")
        do {
            switch className {
            case motionAdapterClass:
                let config = try motionAdapterConfig(folder)
                var facts: [(String, Fact)] = [("motion_modules", adapterMotionFact(config))]
                if let split = parameters(in: folder) {
                    facts.append(("parameters", .record([("motion_modules", .integer(split.motion))])))
                }
                // What checkFits asks of the image U-Net.
                let count = config.blockOutChannels.count
                facts.append(("fits", .text("an image U-Net (UNet2DConditionModel) with block_out_channels \(list(config.blockOutChannels)) "
                                            + "and layers_per_block \(list(config.motionLayersPerBlock.perBlock(count)))")))
                facts.append(("use", .text("render --model DIR --motion-adapter \(folder) --frames N (N up to \(config.motionMaxSeqLength))")))
                return facts
            case motionUNetClass:
                return motionUNetFacts(try UNetMotionConfig.load(path: configPath), folder: folder)
            case imageUNetClass:
                let config = try UNet2DConditionConfig.load(path: configPath)
                var facts: [(String, Fact)] = [("layout", layoutFact(config.layout, down: config.downBlockTypes, up: config.upBlockTypes))]
                if let split = parameters(in: folder) { facts.append(("parameters", .record([("image_unet", .integer(split.image + split.motion))]))) }
                return facts
            default:
                return []
            }
        } catch {
            return [("problem", .text("customize cannot build this \(className): \(describe(error))"))]
        }
    }

    // MARK: Facts

    /// Per-block values in down-block order, as the config keys give them.
    static func layoutFact(_ layout: ImageUNetLayout, down: [String], up: [String]) -> Fact {
        .record([
            ("block_out_channels", integers(layout.blockOutChannels)),
            ("down_blocks", .list(down.map(Fact.text))),
            ("up_blocks", .list(up.map(Fact.text))),
            ("layers_per_block", integers(layout.layersPerBlock)),
            ("transformer_layers_per_block", integers(layout.transformerLayersPerBlock)),
            ("attention_heads", integers(layout.attentionHeads)),
            ("cross_attention_dim", .integer(layout.crossAttentionDim)),
        ])
    }

    /// Motion modules: down block i holds `modulesPerBlock[i]`, its up partner one more, and the
    /// middle block `midModules` when it has motion modules at all.
    static func motionFact(_ motion: MotionLayout, channels: [Int], modulesPerBlock: [Int], midModules: Int) -> Fact {
        let down = modulesPerBlock.reduce(0, +)
        let up = modulesPerBlock.reduce(0) { $0 + $1 + 1 }
        let mid = motion.useMidBlock ? midModules : 0
        var parts: [(String, Fact)] = [("down", .integer(down))]
        if motion.useMidBlock { parts.append(("mid", .integer(mid))) }
        parts.append(("up", .integer(up)))
        var pairs: [(String, Fact)] = [
            ("count", .integer(down + mid + up)),
            ("in_blocks", .record(parts)),
            ("block_out_channels", integers(channels)),
            ("layers_per_block", integers(modulesPerBlock)),
            ("transformer_layers_per_block", integers(motion.layersPerBlock)),
            ("attention_heads", integers(motion.heads)),
            ("max_frames", .integer(motion.maxSequenceLength)),
            ("mid_block", .flag(motion.useMidBlock)),
        ]
        if motion.useMidBlock { pairs.append(("mid_block_transformer_layers", .integer(motion.layersPerMidBlock))) }
        return .record(pairs)
    }

    static func adapterMotionFact(_ config: MotionAdapterConfig) -> Fact {
        motionFact(config.motionLayout, channels: config.blockOutChannels,
                   modulesPerBlock: config.motionLayersPerBlock.perBlock(config.blockOutChannels.count),
                   midModules: config.motionMidBlockLayersPerBlock)
    }

    // MARK: Files

    /// A MotionAdapter folder's config, validated, refusing another class.
    static func motionAdapterConfig(_ folder: String) throws -> MotionAdapterConfig {
        let file = join(folder, "config.json")
        let config = try MotionAdapterConfig.load(path: file)
        guard config.className == motionAdapterClass else {
            throw InspectFailure(path: file, reason: "_class_name \"\(config.className)\" is not a \(motionAdapterClass)")
        }
        return config
    }

    /// Parameters of the folder's diffusers weights (or their fp16 variant) outside and inside motion
    /// modules; nil when there are none or they cannot be read (the weights listing reports that).
    static func parameters(in folder: String) -> (image: Int, motion: Int)? {
        let name = DiffusersFolder.diffusersWeightsFile
        let variant = (name as NSString).deletingPathExtension + ".fp16.safetensors"
        guard let file = [name, variant].lazy.compactMap({ try? SafeTensorsFile(path: join(folder, $0)) }).first else { return nil }
        var image = 0, motion = 0
        for (tensor, entry) in file.entries {
            if tensor.contains(motionModulesPart) { motion += entry.elementCount } else { image += entry.elementCount }
        }
        return (image, motion)
    }

    private static func integers(_ values: [Int]) -> Fact { .list(values.map(Fact.integer)) }

    private static func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ", ") }

    private static func join(_ folder: String, _ name: String) -> String {
        folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }
}
