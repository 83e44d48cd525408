import Checkpoints
import Evaluation
import Foundation

/// The facts `inspect` reports for a diffusers model folder, the layout `DiffusionPipeline.save_pretrained`
/// writes: `model_index.json` names the pipeline class and its components, and each component
/// folder holds a `config.json` (a `scheduler_config.json` for schedulers, tokenizer files for
/// tokenizers) and its weights.
enum InspectDiffusers {
    /// The config keys worth a glance, across the component classes (UNet, VAE, CLIP text
    /// encoder, schedulers, tokenizer); each is shown when the component's config has it.
    static let keyFacts = [
        "_class_name", "architectures", "model_type",
        // UNet2D/3DConditionModel, UNetMotionModel, AutoencoderKL
        "in_channels", "out_channels", "block_out_channels", "layers_per_block", "cross_attention_dim",
        "attention_head_dim", "num_attention_heads", "sample_size", "latent_channels", "scaling_factor",
        // UNetMotionModel, MotionAdapter
        "motion_layers_per_block", "motion_num_attention_heads", "motion_max_seq_length", "use_motion_mid_block",
        // CLIPTextModel
        "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "max_position_embeddings",
        "projection_dim",
        // schedulers
        "num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type", "timestep_spacing",
        // CLIPTokenizer
        "model_max_length",
    ]
    static let configFileNames = ["config.json", "scheduler_config.json", "tokenizer_config.json", "preprocessor_config.json"]
    static let tokenizerFileNames: Set<String> = ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                                                  "special_tokens_map.json", "added_tokens.json", "spiece.model"]

    /// `report` receives each file that could not be read; the rest of the folder is still described.
    static func model(_ path: String, report: (Error) -> Void) throws -> [(String, Fact)] {
        guard case .object(let index) = try JSONValue.read(path: path + "/model_index.json") else {
            throw InspectFailure(path: path + "/model_index.json", reason: "expected a JSON object")
        }
        var facts: [(String, Fact)] = [
            ("class_name", .text(index["_class_name"]?.string ?? "(not given)")),
        ]
        if let version = index["_diffusers_version"]?.string { facts.append(("diffusers_version", .text(version))) }
        // AnimateDiff's and image U-Nets: what the folder renders and the U-Net's shape, first.
        if let unetClass = componentClass(index["unet"]) {
            facts += InspectUNet.pipeline(path, unetClass: unetClass, hasMotionAdapter: componentClass(index["motion_adapter"]) != nil)
        }
        var components: [Fact] = []
        // Components are the entries of the form "name": [library, class]; [null, null] marks an absent one.
        for (name, value) in index.sorted(by: { $0.key < $1.key }) where !name.hasPrefix("_") {
            guard case .array(let pair) = value, pair.count == 2 else { continue }
            guard let library = pair[0].string, let className = pair[1].string else { continue }
            var component: [(String, Fact)] = [("name", .text(name)), ("library", .text(library)), ("class", .text(className))]
            let folder = path + "/" + name
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue {
                component += self.component(folder, report: report)
            } else {
                report(InspectFailure(path: folder, reason: "model_index.json lists component '\(name)' but its folder is missing"))
                component.append(("missing", .flag(true)))
            }
            components.append(.record(component))
        }
        facts.append(("components", .list(components)))
        return facts
    }

    /// The class of a model_index.json component entry `[library, class]`; nil for `[null, null]`.
    private static func componentClass(_ entry: JSONValue?) -> String? {
        guard case .array(let pair)? = entry, pair.count == 2, pair[0].string != nil else { return nil }
        return pair[1].string
    }

    /// A component folder on its own (no model_index.json): `component`'s facts, and after the
    /// config what `InspectUNet` tells of AnimateDiff's classes (a MotionAdapter, a UNetMotionModel,
    /// an image U-Net).
    static func standaloneComponent(_ folder: String, report: (Error) -> Void) -> [(String, Fact)] {
        var facts = component(folder, report: report)
        guard case .object(let config)? = try? JSONValue.read(path: folder + "/config.json"),
              let className = config["_class_name"]?.string else { return facts }
        let position = facts.firstIndex { $0.0 == "config" }.map { $0 + 1 } ?? 0
        facts.insert(contentsOf: InspectUNet.component(folder, className: className), at: position)
        return facts
    }

    /// One component folder: key config facts, tokenizer files, weight files.
    static func component(_ folder: String, report: (Error) -> Void) -> [(String, Fact)] {
        var facts: [(String, Fact)] = []
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted(by: NaturalOrder.less)
        if let configName = configFileNames.first(where: { names.contains($0) }) {
            do {
                guard case .object(let config) = try JSONValue.read(path: folder + "/" + configName) else {
                    throw InspectFailure(path: folder + "/" + configName, reason: "expected a JSON object")
                }
                facts.append(("config", .record(keyFacts.compactMap { key in config[key].map { (key, $0.fact) } })))
            } catch {
                report(error)
            }
        }
        let tokenizerFiles = names.filter { tokenizerFileNames.contains($0) }
        if !tokenizerFiles.isEmpty { facts.append(("tokenizer_files", .list(tokenizerFiles.map(Fact.text)))) }

        var weights: [Fact] = []
        for name in names {
            let file = folder + "/" + name
            let fileExtension = URL(fileURLWithPath: name).pathExtension.lowercased()
            if fileExtension == "safetensors" {
                do {
                    let weightFile = try SafeTensorsFile(path: file)
                    weights.append(.record([("file", .text(name))] + InspectSafeTensors.summary(of: weightFile)))
                } catch {
                    report(error)
                }
            } else if ["bin", "ckpt", "pt", "pth"].contains(fileExtension) {
                let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
                weights.append(.record([("file", .text(name)), ("size_bytes", .integer(size)),
                                        ("format", .text("pickle (not read; convert to safetensors)"))]))
            }
        }
        if !weights.isEmpty { facts.append(("weights", .list(weights))) }
        return facts
    }
}
