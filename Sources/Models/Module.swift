import Checkpoints
import Tensor

/// A node of a model's tree: named parameters and named child modules.
///
/// A parameter's path is the chain of names from the root, joined by dots, and it is exactly the
/// key diffusers and transformers use in their weight files
/// (`down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight`). Loading, saving, adapter
/// injection by path pattern and error messages all use these paths.
open class Module {
    public private(set) var ownParameters: [(name: String, tensor: Tensor)] = []
    public private(set) var children: [(name: String, module: Module)] = []
    /// Persistent state that is saved and loaded with the weights but never trained (torch's
    /// `register_buffer`, e.g. the motion modules' sinusoidal position table `pos_embed.pe`).
    public private(set) var ownBuffers: [(name: String, tensor: Tensor)] = []

    public init() {}

    /// Registers a parameter under `name` and returns it (for `let weight = parameter(...)` style).
    @discardableResult
    public func parameter(_ name: String, _ tensor: Tensor) -> Tensor {
        ownParameters.append((name, tensor))
        return tensor
    }

    /// Registers a buffer under `name` and returns it: in `stateDict()`, loaded when a file has it,
    /// never a parameter (optimisers, gradients and initialisation leave it alone).
    @discardableResult
    public func buffer(_ name: String, _ tensor: Tensor) -> Tensor {
        ownBuffers.append((name, tensor))
        return tensor
    }

    /// Every buffer in the subtree with its full path, in registration order.
    public func namedBuffers(prefix: String = "") -> [(path: String, tensor: Tensor)] {
        var result = ownBuffers.map { (prefix + $0.name, $0.tensor) }
        for (name, module) in children {
            result += module.namedBuffers(prefix: prefix + name + ".")
        }
        return result
    }

    /// Registers a child module under `name` and returns it.
    @discardableResult
    public func child<M: Module>(_ name: String, _ module: M) -> M {
        children.append((name, module))
        return module
    }

    /// Every parameter in the subtree with its full path, in registration order (deterministic).
    public func namedParameters(prefix: String = "") -> [(path: String, tensor: Tensor)] {
        var result = ownParameters.map { (prefix + $0.name, $0.tensor) }
        for (name, module) in children {
            result += module.namedParameters(prefix: prefix + name + ".")
        }
        return result
    }

    /// Every module in the subtree with its path ("" for this one), parents before children.
    public func namedModules(prefix: String = "") -> [(path: String, module: Module)] {
        var result: [(String, Module)] = [(prefix.isEmpty ? "" : String(prefix.dropLast()), self)]
        for (name, module) in children {
            result += module.namedModules(prefix: prefix + name + ".")
        }
        return result
    }

    /// The module at a dotted path below this one, or nil.
    public func module(at path: String) -> Module? {
        var current: Module = self
        for component in path.split(separator: ".") where !component.isEmpty {
            guard let next = current.children.first(where: { $0.name == component })?.module else { return nil }
            current = next
        }
        return current
    }

    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.tensor.count } }

    /// Marks every parameter as trainable or frozen.
    public func setRequiresGrad(_ flag: Bool) {
        for (_, tensor) in namedParameters() { tensor.requiresGrad = flag }
    }
}

/// Something that can be called on a tensor (layers with one input).
public protocol UnaryLayer: AnyObject {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}
