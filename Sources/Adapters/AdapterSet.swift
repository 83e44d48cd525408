import Models
import Tensor

/// The named adapters on one model component (the U-Net, or a text encoder): diffusers'
/// `PeftAdapterMixin` (`add_adapter`, `set_adapters`, `delete_adapters`, `fuse_lora`,
/// `unfuse_lora`) over our module tree.
///
/// Adapters wrap layers (principle 3): each LoRA is appended to its layer's `deltas`, so any number of
/// named adapters are active at once, each with its own strength. Layers are found by module-path
/// patterns over the diffusers key paths (principle 1).
public final class AdapterSet {
    public let model: Module
    /// The component's name in files: `unet`, `text_encoder`; PEFT keys are prefixed with it.
    public let component: String
    /// Every adaptable layer of the model with its path, in the tree's order.
    public let adaptableLayers: [(path: String, layer: AdaptableLayer)]
    let layerByPath: [String: AdaptableLayer]

    /// One named adapter: its LoRAs (in the tree's order) and its settings.
    final class Entry {
        let name: String
        var loras: [LoRA]
        /// The patterns it was injected with, or the module paths it was loaded onto.
        let targets: [String]
        let config: LoRAConfig?
        var multiplier: Float
        var isEnabled = true

        init(name: String, loras: [LoRA], targets: [String], config: LoRAConfig?, multiplier: Float) {
            self.name = name
            self.loras = loras
            self.targets = targets
            self.config = config
            self.multiplier = multiplier
        }
    }

    var entries: [Entry] = []
    /// Original weights of layers that have merged adapters, by path: restored bit for bit on unmerge.
    var originalWeights: [String: Tensor] = [:]
    /// Merged adapters, in the order they were folded in.
    var mergedNames: [String] = []

    public init(model: Module, component: String = "unet") {
        self.model = model
        self.component = component
        adaptableLayers = model.namedModules().compactMap { entry in
            AdaptableLayer(entry.module).map { (entry.path, $0) }
        }
        layerByPath = Dictionary(adaptableLayers.map { ($0.path, $0.layer) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: Listing

    /// Adapter names in the order they were added.
    public var adapterNames: [String] { entries.map(\.name) }

    /// What `list` shows about one adapter.
    public struct Summary: Equatable, Sendable {
        public let name: String
        public let modulePaths: [String]
        public let ranks: [Int]
        public let alphas: [Float]
        public let multiplier: Float
        public let isEnabled: Bool
        public let isMerged: Bool
        public let targets: [String]
        public let parameterCount: Int
    }

    public func summaries() -> [Summary] {
        entries.map { entry in
            Summary(name: entry.name, modulePaths: entry.loras.map(\.modulePath),
                    ranks: Array(Set(entry.loras.map(\.rank))).sorted(),
                    alphas: Array(Set(entry.loras.map(\.alpha))).sorted(),
                    multiplier: entry.multiplier, isEnabled: entry.isEnabled, isMerged: mergedNames.contains(entry.name),
                    targets: entry.targets, parameterCount: entry.loras.reduce(0) { $0 + $1.down.count + $1.up.count })
        }
    }

    /// The LoRAs of one adapter, in the tree's order.
    public func loras(of name: String) throws -> [LoRA] {
        try entry(name).loras
    }

    /// An adapter's parameters with their paths (`<module path>.lora_A.weight`, `.lora_B.weight`),
    /// in the tree's order: what an optimizer takes and a file stores.
    public func parameters(of name: String) throws -> [(path: String, tensor: Tensor)] {
        try entry(name).loras.flatMap { lora in
            lora.namedParameters.map { ("\(lora.modulePath).\($0.name)", $0.tensor) }
        }
    }

    /// The parameters of every adapter that is trainable.
    public func trainableParameters() -> [(adapter: String, path: String, tensor: Tensor)] {
        entries.flatMap { entry in
            entry.loras.filter(\.isTrainable).flatMap { lora in
                lora.namedParameters.map { (entry.name, "\(lora.modulePath).\($0.name)", $0.tensor) }
            }
        }
    }

    func entry(_ name: String) throws -> Entry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw AdapterError.unknownAdapter(name, known: adapterNames)
        }
        return entry
    }

    /// Adaptable layer paths that match any of `patterns` and none of `excluding`, in the tree's order.
    public func matchingPaths(_ patterns: [ModulePattern], excluding: [ModulePattern] = []) throws -> [String] {
        let include = try patterns.map { try $0.matcher() }
        let exclude = try excluding.map { try $0.matcher() }
        return adaptableLayers.map(\.path).filter { path in
            include.contains { $0(path) } && !exclude.contains { $0(path) }
        }
    }

    // MARK: Adding and removing

    /// Adds a new adapter `name` with a fresh LoRA (B = 0) on every adaptable layer the patterns
    /// select (PEFT's `inject_adapter`). The new adapter is enabled, at multiplier 1 and trainable.
    /// A layer's initial A depends only on (`generator`, `name`, its path): not on which other layers
    /// were chosen, nor on the thread count. Returns the adapted module paths.
    @discardableResult
    public func inject(_ name: String, config: LoRAConfig, targets: [ModulePattern], excluding: [ModulePattern] = [],
                       generator: RandomGenerator) throws -> [String] {
        guard !entries.contains(where: { $0.name == name }) else { throw AdapterError.duplicateAdapter(name) }
        try config.validate()
        let paths = try matchingPaths(targets, excluding: excluding)
        guard !paths.isEmpty else { throw AdapterError.noMatchingModules(adapter: name, patterns: targets.map(\.text)) }
        let adapterGenerator = generator.derived(name.hashStable)
        let loras = try paths.map { path -> LoRA in
            var layerGenerator = adapterGenerator.derived(path.hashStable)
            let lora = try LoRA(adapterName: name, modulePath: path, geometry: layerByPath[path]!.geometry,
                                config: config, generator: &layerGenerator)
            lora.isTrainable = true
            return lora
        }
        attach(Entry(name: name, loras: loras, targets: targets.map(\.text), config: config, multiplier: 1))
        return paths
    }

    /// Adds ready-made LoRAs (loaded from a file) as adapter `name`, frozen, at `multiplier`.
    public func add(_ name: String, loras: [LoRA], multiplier: Float = 1, config: LoRAConfig? = nil) throws {
        guard !entries.contains(where: { $0.name == name }) else { throw AdapterError.duplicateAdapter(name) }
        var seen: Set<String> = []
        for lora in loras {
            guard lora.adapterName == name else {
                throw AdapterError.invalidConfiguration("LoRA on \(lora.modulePath) belongs to adapter \"\(lora.adapterName)\", not \"\(name)\"")
            }
            guard let layer = layerByPath[lora.modulePath] else {
                throw AdapterError.invalidConfiguration("adapter \"\(name)\": no adaptable layer at \(lora.modulePath)")
            }
            guard layer.geometry == lora.geometry else {
                throw AdapterError.invalidConfiguration("adapter \"\(name)\": \(lora.modulePath) is \(layer.geometry), the LoRA was made for \(lora.geometry)")
            }
            guard seen.insert(lora.modulePath).inserted else {
                throw AdapterError.invalidConfiguration("adapter \"\(name)\": two LoRAs on \(lora.modulePath)")
            }
        }
        let order = Dictionary(uniqueKeysWithValues: adaptableLayers.enumerated().map { ($1.path, $0) })
        let sorted = loras.sorted { order[$0.modulePath]! < order[$1.modulePath]! }
        attach(Entry(name: name, loras: sorted, targets: sorted.map(\.modulePath), config: config, multiplier: multiplier))
    }

    private func attach(_ entry: Entry) {
        for lora in entry.loras {
            lora.multiplier = entry.multiplier
            layerByPath[lora.modulePath]!.deltas.append(lora)
        }
        entries.append(entry)
    }

    /// Removes adapter `name` from every layer (unmerging it first if it is merged).
    public func remove(_ name: String) throws {
        let entry = try entry(name)
        if mergedNames.contains(name) { try unmerge([name]) }
        for lora in entry.loras {
            let layer = layerByPath[lora.modulePath]!
            layer.deltas.removeAll { $0 === lora }
        }
        entries.removeAll { $0 === entry }
    }

    // MARK: Strength, switching, training

    /// Sets an adapter's multiplier (the user's `:scale`); a merged adapter is folded in again at the new strength.
    public func setMultiplier(_ multiplier: Float, for name: String) throws {
        guard multiplier.isFinite else { throw AdapterError.invalidConfiguration("adapter \"\(name)\": multiplier \(multiplier) must be finite") }
        let entry = try entry(name)
        let wasMerged = mergedNames
        if wasMerged.contains(name) { try unmerge() }
        entry.multiplier = multiplier
        for lora in entry.loras { lora.multiplier = multiplier }
        if !wasMerged.isEmpty { try merge(wasMerged) }
    }

    public func multiplier(of name: String) throws -> Float { try entry(name).multiplier }

    /// Switches an adapter on or off without removing it; switching a merged adapter off unmerges it.
    public func setEnabled(_ enabled: Bool, for name: String) throws {
        let entry = try entry(name)
        if !enabled, mergedNames.contains(name) { try unmerge([name]) }
        entry.isEnabled = enabled
        for lora in entry.loras { lora.isEnabled = enabled }
    }

    /// Marks an adapter's factors trainable (requiresGrad) or frozen. A merged adapter cannot train.
    public func setTrainable(_ trainable: Bool, for name: String) throws {
        let entry = try entry(name)
        if trainable, mergedNames.contains(name) {
            throw AdapterError.invalidState(adapter: name, reason: "merged into the base weights; unmerge it before training")
        }
        for lora in entry.loras { lora.isTrainable = trainable }
    }

    /// Turns LoRA dropout on (a generator) or off (nil) for the named adapters (all when nil). Each LoRA
    /// draws from its own stream derived from `generator` and its position, and advances it call by call;
    /// pass a step-derived generator each step when a run must resume bit-exactly.
    public func setTraining(generator: RandomGenerator?, adapters names: [String]? = nil) throws {
        let chosen = try names.map { try $0.map { try entry($0) } } ?? entries
        var index: UInt64 = 0
        for entry in entries {
            let active = chosen.contains { $0 === entry }
            for lora in entry.loras {
                if active { lora.dropoutGenerator = generator?.derived(index) }
                index += 1
            }
        }
    }
}

public extension String {
    /// FNV-1a over the UTF-8 bytes: a hash that is the same on every run (Swift's `hashValue` is seeded per process).
    var hashStable: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
