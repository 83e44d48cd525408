import Checkpoints
import Models
import Tensor

/// What loading a LoRA file did.
public struct LoRALoadReport: Sendable {
    public let adapter: String
    public let file: String
    /// Key formats seen among the loaded tensors.
    public let formats: [LoRAKeyFormat]
    /// Module paths that received a LoRA, in the tree's order.
    public let modulePaths: [String]
    /// Problems skipped because of `allowPartial` (empty otherwise: problems throw).
    public let skipped: [LoRAFileProblem]
    /// Tensors for another component of the pipeline (a text encoder's, when loading onto the U-Net).
    public let otherComponentTensors: [String]
    /// Where alpha came from: `alpha tensors`, `lora_adapter_metadata`, `metadata alpha`, or
    /// `rank (no alpha stored)`; several when modules differ.
    public let alphaSources: [String]
    public let metadata: LoRAFileMetadata
    /// Set when the file names a base model other than the expected one.
    public let baseModelMismatch: String?
}

/// Reading LoRA files in PEFT, diffusers and kohya key formats onto an `AdapterSet`'s model.
///
/// Everything is checked before anything is attached: a module the model lacks, a module that is
/// not a Linear/Conv2d/temporal Conv3d, a missing `lora_A` or `lora_B`, factors whose ranks differ,
/// shapes that do not fit the layer, an unrecognised tensor name, a non-scalar alpha. All problems
/// are reported together in one `AdapterError.incompatibleFile`, unless `allowPartial` is set, which
/// loads the modules that fit and lists the rest in the report.
extension AdapterSet {
    @discardableResult
    public func load(_ path: String, as name: String, multiplier: Float = 1, allowPartial: Bool = false,
                     expectedBaseModel: BaseModelIdentity? = nil) throws -> LoRALoadReport {
        guard !entries.contains(where: { $0.name == name }) else { throw AdapterError.duplicateAdapter(name) }
        let file = try SafeTensorsFile(path: path)
        let metadata = LoRAFileMetadata(raw: file.metadata)
        var problems: [LoRAFileProblem] = []
        var otherComponent: [String] = []

        // 1. Names → (module path, role).
        struct Factors {
            var down: String?, up: String?, alpha: String?
            var formats: Set<LoRAKeyFormat> = []
        }
        var factorsByPath: [String: Factors] = [:]
        let allModules = model.namedModules()
        let kohyaNames = KohyaNames(paths: allModules.map(\.path).filter { !$0.isEmpty })
        for tensorName in file.names {
            guard let key = LoRAKey.parse(tensorName) else {
                problems.append(LoRAFileProblem(key: tensorName, reason:
                    "not a LoRA tensor name (expected <module>.lora_A.weight / .lora_B.weight, <module>.lora.down.weight / .lora.up.weight, " +
                    "or kohya's lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha)"))
                continue
            }
            if let keyComponent = key.component, keyComponent != component {
                otherComponent.append(tensorName)
                continue
            }
            var modulePath = key.module
            if key.format == .kohya {
                switch kohyaNames.resolve(key.module) {
                case let .path(resolved): modulePath = resolved
                case .unknown:
                    problems.append(LoRAFileProblem(key: tensorName, reason: "no module of the \(component) is named \(key.module) with dots for underscores"))
                    continue
                case let .ambiguous(paths):
                    problems.append(LoRAFileProblem(key: tensorName, reason: "kohya name \(key.module) fits several modules: \(paths.joined(separator: ", "))"))
                    continue
                }
            }
            var factors = factorsByPath[modulePath] ?? Factors()
            let previous: String?
            switch key.role {
            case .down: previous = factors.down; factors.down = tensorName
            case .up: previous = factors.up; factors.up = tensorName
            case .alpha: previous = factors.alpha; factors.alpha = tensorName
            }
            if let previous {
                problems.append(LoRAFileProblem(key: tensorName, reason: "same module and role as \(previous)"))
                continue
            }
            factors.formats.insert(key.format)
            factorsByPath[modulePath] = factors
        }
        if factorsByPath.isEmpty && problems.isEmpty {
            problems.append(LoRAFileProblem(key: path, reason: otherComponent.isEmpty
                ? "holds no tensors" : "holds no tensors for the \(component) (only \(otherComponent.count) for other components)"))
        }

        // 2. Alpha and rsLoRA settings stored as metadata.
        let alphaSettings = AlphaSettings(metadata: metadata, component: component, problems: &problems)

        // 3. Each module's factors against its layer.
        var loras: [LoRA] = []
        var alphaSources: Set<String> = []
        var formats: Set<LoRAKeyFormat> = []
        let typeByPath = Dictionary(allModules.map { ($0.path, String(describing: type(of: $0.module))) }, uniquingKeysWith: { a, _ in a })
        for (modulePath, factors) in factorsByPath.sorted(by: { $0.key < $1.key }) {
            guard let layer = layerByPath[modulePath] else {
                let reason = typeByPath[modulePath].map { "the module is a \($0), not a Linear, Conv2d or temporal Conv3d" }
                    ?? "the \(component) has no module at this path" + LoRAFileProblem.layoutHint(modulePath)
                problems.append(LoRAFileProblem(key: modulePath, reason: reason))
                continue
            }
            guard let downName = factors.down, let upName = factors.up else {
                let reason: String
                switch (factors.down, factors.up) {
                case (nil, nil): reason = "alpha without lora_A (down) and lora_B (up)"
                case (nil, _): reason = "lora_B (up) without lora_A (down)"
                default: reason = "lora_A (down) without lora_B (up)"
                }
                problems.append(LoRAFileProblem(key: modulePath, reason: reason))
                continue
            }
            let downEntry = try file.entry(downName), upEntry = try file.entry(upName)
            let geometry = layer.geometry
            let rank = downEntry.shape.first ?? 0
            let upRank = upEntry.shape.count >= 2 ? upEntry.shape[1] : 0
            guard rank >= 1, rank == upRank else {
                problems.append(LoRAFileProblem(key: modulePath,
                    reason: "rank mismatch: lora_A \(downEntry.shape) has rank \(rank), lora_B \(upEntry.shape) has rank \(upRank)"))
                continue
            }
            let downShape = geometry.downShape(rank: rank), upShape = geometry.upShape(rank: rank)
            guard Self.fits(downEntry.shape, downShape), Self.fits(upEntry.shape, upShape) else {
                problems.append(LoRAFileProblem(key: modulePath,
                    reason: "shapes do not fit \(geometry): file has lora_A \(downEntry.shape), lora_B \(upEntry.shape); expected \(downShape), \(upShape)"))
                continue
            }
            var alpha: Float
            if let alphaName = factors.alpha {
                let alphaEntry = try file.entry(alphaName)
                guard alphaEntry.elementCount == 1 else {
                    problems.append(LoRAFileProblem(key: alphaName, reason: "alpha must hold one value, found shape \(alphaEntry.shape)"))
                    continue
                }
                alpha = try file.floats(alphaName)[0]
                alphaSources.insert("alpha tensors")
            } else {
                let resolved = alphaSettings.alpha(for: modulePath, rank: rank)
                alpha = resolved.alpha
                alphaSources.insert(resolved.source)
            }
            let down = Tensor(uninitialized: downShape), up = Tensor(uninitialized: upShape)
            try file.read(downName, into: down.data, count: down.count)
            try file.read(upName, into: up.data, count: up.count)
            do {
                loras.append(try LoRA(adapterName: name, modulePath: modulePath, geometry: geometry, alpha: alpha,
                                      useRSLoRA: alphaSettings.useRSLoRA, down: down, up: up))
                formats.formUnion(factors.formats)
            } catch let error as AdapterError {
                problems.append(LoRAFileProblem(key: modulePath, reason: error.description))
            }
        }

        if !problems.isEmpty && !allowPartial { throw AdapterError.incompatibleFile(file: path, problems: problems) }
        if !problems.isEmpty && loras.isEmpty { throw AdapterError.nothingFits(file: path, problems: problems) }
        try add(name, loras: loras, multiplier: multiplier)
        var mismatch: String?
        if let expectedBaseModel, let stored = metadata.baseModel, stored != expectedBaseModel {
            mismatch = "made for \(stored.name) (U-Net config \(stored.unetConfigSHA256.prefix(12))), " +
                "loaded onto \(expectedBaseModel.name) (U-Net config \(expectedBaseModel.unetConfigSHA256.prefix(12)))"
        }
        return LoRALoadReport(adapter: name, file: path,
                              formats: LoRAKeyFormat.allCases.filter(formats.contains),
                              modulePaths: try self.loras(of: name).map(\.modulePath), skipped: problems,
                              otherComponentTensors: otherComponent, alphaSources: alphaSources.sorted(),
                              metadata: metadata, baseModelMismatch: mismatch)
    }

    /// `load` for one component of a pipeline: under `allowPartial` a component with nothing that
    /// fits is not an error but returns nil, its problems added to `skipped`, so a file can adapt
    /// the U-Net while its text-encoder keys are skipped (or the other way round). The caller
    /// throws `nothingFits` when no component loaded anything (`PipelineLoRAFile`).
    func loadPart(_ path: String, as name: String, multiplier: Float, allowPartial: Bool,
                         skipped: inout [LoRAFileProblem]) throws -> LoRALoadReport? {
        do {
            let report = try load(path, as: name, multiplier: multiplier, allowPartial: allowPartial)
            skipped += report.skipped
            return report
        } catch AdapterError.nothingFits(_, let problems) where allowPartial {
            skipped += problems
            return nil
        }
    }

    /// The stored shape fits the expected one exactly, or up to trailing 1s (a 1×1 convolution's
    /// factor stored as a matrix, or a linear factor stored as a 1×1 convolution).
    static func fits(_ stored: [Int], _ expected: [Int]) -> Bool {
        func trimmed(_ shape: [Int]) -> ArraySlice<Int> {
            var result = shape[...]
            while result.count > 2, result.last == 1 { result = result.dropLast() }
            return result
        }
        return stored == expected || trimmed(stored) == trimmed(expected)
    }
}

/// Alpha and rsLoRA as a file's metadata states them, for modules without an `.alpha` tensor:
/// diffusers' `lora_adapter_metadata` (`<component>.lora_alpha`, `.alpha_pattern`, `.use_rslora`, or
/// unprefixed as PEFT's `save_pretrained` writes), else our `alpha` entry, else alpha = rank (scale 1,
/// diffusers' convention for files that store no alpha).
struct AlphaSettings {
    var defaultAlpha: Float?
    var defaultSource = ""
    var patterns: [(pattern: String, alpha: Float)] = []
    var useRSLoRA = false

    init(metadata: LoRAFileMetadata, component: String, problems: inout [LoRAFileProblem]) {
        if let text = metadata.raw[LoRAFileMetadata.Key.adapterMetadata] {
            guard let fields = JSONValue.decode(text)?.object else {
                problems.append(LoRAFileProblem(key: "__metadata__.\(LoRAFileMetadata.Key.adapterMetadata)", reason: "not a JSON object"))
                return
            }
            func field(_ name: String) -> JSONValue? { fields["\(component).\(name)"] ?? fields[name] }
            if let alpha = field("lora_alpha")?.double {
                defaultAlpha = Float(alpha)
                defaultSource = LoRAFileMetadata.Key.adapterMetadata
            }
            for (pattern, value) in field("alpha_pattern")?.object ?? [:] {
                if let alpha = value.double { patterns.append((pattern, Float(alpha))) }
            }
            // Longest pattern first: the most specific one wins.
            patterns.sort { $0.pattern.count > $1.pattern.count }
            useRSLoRA = field("use_rslora")?.bool ?? false
        }
        if defaultAlpha == nil, let alpha = metadata.alpha {
            defaultAlpha = alpha
            defaultSource = "metadata alpha"
        }
    }

    func alpha(for path: String, rank: Int) -> (alpha: Float, source: String) {
        for (pattern, alpha) in patterns where Self.patternMatches(pattern, path) {
            return (alpha, LoRAFileMetadata.Key.adapterMetadata)
        }
        if let defaultAlpha { return (defaultAlpha, defaultSource) }
        return (Float(rank), "rank (no alpha stored)")
    }

    /// PEFT's `get_pattern_key`: `re.match(rf"(.*\.)?({key})$", path)`, for the literal keys diffusers
    /// writes (a module path, optionally anchored with `^`, dots optionally escaped).
    static func patternMatches(_ pattern: String, _ path: String) -> Bool {
        var literal = pattern.replacingOccurrences(of: "\\.", with: ".")
        if literal.hasSuffix("$") { literal.removeLast() }
        if literal.hasPrefix("^") { return path == String(literal.dropFirst()) }
        return path == literal || path.hasSuffix("." + literal)
    }

}

extension LoRAFileProblem {
    /// Which denoiser layout a module path belongs to, when it names one: the hint that tells a
    /// user a LoRA was made for the other layout.
    static func layoutHint(_ modulePath: String) -> String {
        let parts = Set(modulePath.split(separator: ".").map(String.init))
        if parts.contains("motion_modules") { return " (a motion module: the LoRA is for AnimateDiff's UNetMotionModel)" }
        if !parts.isDisjoint(with: ["temp_attentions", "temp_convs", "transformer_in"]) {
            return " (a temporal layer of UNet3DConditionModel: the LoRA is for that layout)"
        }
        return ""
    }
}
