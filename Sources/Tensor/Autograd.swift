import Synchronization

/// Reverse-mode automatic differentiation.
///
/// Each operation that has an input taking part in gradient computation attaches a `GradNode` to
/// its result: the inputs plus a closure that maps the result's gradient to the inputs' gradients.
/// `backward()` walks these nodes in reverse topological order (the tape, read backwards),
/// releases each node as soon as it has run (so intermediate buffers go as early as possible), and
/// accumulates into the `grad` of every tensor that `requiresGrad`.
final class GradNode {
    let op: String
    var inputs: [Tensor]
    var backward: ((Tensor) throws -> [Tensor?])?
    /// The node's place in creation order: `Tensor.samplewise` tells its samples' own nodes from
    /// those recorded before it by this.
    let serial: Int

    private static let created = Atomic<Int>(0)
    /// The serial the next node will get.
    static var nextSerial: Int { created.load(ordering: .relaxed) }

    init(op: String, inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]) {
        self.serial = GradNode.created.wrappingAdd(1, ordering: .relaxed).oldValue
        self.op = op
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether operations record gradient history. The engine's only global state.
public enum GradMode {
    @TaskLocal public static var isEnabled = true
}

extension Tensor {
    /// Runs `body` without recording gradient history (inference, optimizer updates, backward itself).
    public static func withoutGrad<T>(_ body: () throws -> T) rethrows -> T {
        try GradMode.$isEnabled.withValue(false) { try body() }
    }

    /// Whether an op on `inputs` records a gradient node (`record`): gradients are recorded and an
    /// input needs one. Ops that keep state only their backward pass reads skip it otherwise.
    @usableFromInline
    static func records(_ inputs: [Tensor]) -> Bool {
        GradMode.isEnabled && inputs.contains(where: { $0.needsGrad })
    }

    /// Attaches a gradient node to `output` when gradients are recorded and an input needs one.
    /// `backward` receives the gradient of `output` and returns one gradient (or nil) per input,
    /// each of that input's shape.
    @usableFromInline
    static func record(_ output: Tensor, op: String, inputs: [Tensor],
                       backward: @escaping (Tensor) throws -> [Tensor?]) -> Tensor {
        guard records(inputs) else { return output }
        output.node = GradNode(op: op, inputs: inputs, backward: backward)
        return output
    }

    /// `record` for an op whose backward reads its own output: the closure gets a storage-sharing
    /// alias of it, never `output` itself. A node holding its own output would be a cycle, and a graph
    /// that backward never consumes (a branch the loss does not reach, as in latent guidance) would
    /// then never be freed.
    @usableFromInline
    static func record(_ output: Tensor, op: String, inputs: [Tensor],
                       readingOutput backward: @escaping (_ gradient: Tensor, _ output: Tensor) throws -> [Tensor?]) -> Tensor {
        let alias = output.detached()
        return record(output, op: op, inputs: inputs) { gradient in try backward(gradient, alias) }
    }

    /// Back-propagates from this tensor. Without `gradient`, the tensor must hold one element (a loss)
    /// and its gradient is 1. Gradients accumulate into `grad` of every tensor that requires one;
    /// the graph is released as it is consumed, so call `backward()` once per forward pass.
    public func backward(gradient: Tensor? = nil) throws {
        guard needsGrad else {
            throw TensorError.noGraph(reason: "tensor of shape \(shape) has no gradient history "
                + "(no input requires a gradient, it was computed without grad, or backward already ran)")
        }
        let seed: Tensor
        if let gradient {
            guard gradient.shape == shape else {
                throw TensorError.shapeMismatch(op: "backward(gradient:)", lhs: shape, rhs: gradient.shape)
            }
            seed = gradient
        } else {
            guard count == 1 else {
                throw TensorError.noGraph(reason: "backward() without a gradient needs a scalar, got shape \(shape)")
            }
            seed = Tensor(repeating: 1, shape: shape)
        }

        let order = topologicalOrder()
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        // How often each gradient buffer was handed to an input. A leaf may keep a buffer handed out
        // once as its `grad`; one handed out twice (x + x, views of one gradient) or the caller's
        // seed is copied first, so later accumulation never writes into a buffer someone else holds.
        var handOuts: [ObjectIdentifier: Int] = [:]
        let seedStorage = ObjectIdentifier(seed.storage)
        try Tensor.withoutGrad {
            for tensor in order.reversed() {
                guard let gradient = pending.removeValue(forKey: ObjectIdentifier(tensor)) else { continue }
                if tensor.requiresGrad {
                    let storage = ObjectIdentifier(gradient.storage)
                    try tensor.accumulateGrad(gradient, owned: storage != seedStorage && handOuts[storage, default: 0] <= 1)
                }
                guard let node = tensor.node, let backward = node.backward else { continue }
                let inputGrads = try backward(gradient)
                for (input, inputGrad) in zip(node.inputs, inputGrads) {
                    guard let inputGrad, input.needsGrad else { continue }
                    guard inputGrad.shape == input.shape else {
                        throw TensorError.shapeMismatch(op: "\(node.op) backward", lhs: input.shape, rhs: inputGrad.shape)
                    }
                    handOuts[ObjectIdentifier(inputGrad.storage), default: 0] += 1
                    let key = ObjectIdentifier(input)
                    if let existing = pending[key] {
                        pending[key] = try existing + inputGrad
                    } else {
                        pending[key] = inputGrad
                    }
                }
                // Release the closure and its captured buffers now, not when the whole pass ends.
                node.backward = nil
                node.inputs = []
                tensor.node = nil
            }
        }
    }

    /// Adds `gradient` (masked) into `grad`. On first use the gradient becomes `grad` itself when
    /// `owned` (no one else holds its buffer), else a copy, so gradients never alias.
    /// Inside a samplewise pass's backward (`GradientSink.current` set) the gradient goes to that
    /// sample's sink instead, unmasked: the pass hands the samples' sum back through its own node,
    /// and the leaf's accumulation then applies the mask once.
    func accumulateGrad(_ gradient: Tensor, owned: Bool = false) throws {
        if let sink = GradientSink.current {
            sink.add(gradient, for: self, owned: owned)
            return
        }
        var incoming = gradient
        if let mask = gradMask { incoming = try incoming * mask }
        if let grad {
            grad.add(incoming)
        } else {
            grad = incoming === gradient && !owned ? gradient.copy() : incoming
        }
    }

    /// Adds `other` (the same count) into this tensor's elements in place, no gradient.
    func add(_ other: Tensor) {
        let g = data, x = other.data
        Parallel.forRanges(count: count) { range in
            for i in range { g[i] += x[i] }
        }
    }

    /// Tensors reachable from this one through gradient nodes, each after all of its inputs.
    func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        // Iterative depth-first search: a U-Net's graph is deep enough to make recursion risky.
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (tensor, expanded) = stack.popLast() {
            if expanded { order.append(tensor); continue }
            guard visited.insert(ObjectIdentifier(tensor)).inserted else { continue }
            stack.append((tensor, true))
            for input in tensor.node?.inputs ?? [] where input.needsGrad && !visited.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }
        return order
    }

    /// Throws `.nonFinite` naming `what` when any element is NaN or infinite (losses, gradients).
    public func checkFinite(_ what: String) throws {
        let x = data
        for i in 0..<count where !x[i].isFinite {
            throw TensorError.nonFinite(what: what)
        }
    }
}
