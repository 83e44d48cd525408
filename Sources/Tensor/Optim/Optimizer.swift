import Foundation

/// Parameters that share a learning rate and weight decay (torch.optim's `param_groups`): e.g. the
/// spatial and temporal LoRAs of MotionDirector, each trained at its own rate.
public struct ParameterGroup {
    public var parameters: [Tensor]
    /// The rate the next `step()` uses; a schedule overwrites it from `initialLearningRate`.
    public var learningRate: Float
    /// The rate the group was created with (torch's `initial_lr`), which schedules scale.
    public let initialLearningRate: Float
    /// This group's weight decay; nil uses the optimizer's default.
    public var weightDecay: Float?

    public init(parameters: [Tensor], learningRate: Float, weightDecay: Float? = nil) {
        self.parameters = parameters
        self.learningRate = learningRate
        self.initialLearningRate = learningRate
        self.weightDecay = weightDecay
    }
}

/// An optimizer over parameter groups, updating parameters in place from their `grad`.
///
/// Every optimizer honours, per parameter: `gradHook` (transforms the gradient before any state is
/// updated) and `gradMask` (the whole update, weight decay included, is multiplied by the mask, so
/// entries masked with 0 never change, bit for bit). Parameters without a gradient are skipped.
/// State (moments, per-parameter step counts, the step count) exports as named tensors keyed by
/// parameter name, for a trainer to save in safetensors and restore on resume.
public protocol Optimizer: AnyObject {
    var groups: [ParameterGroup] { get set }
    /// Completed `step()` calls (the step a learning-rate schedule reads).
    var stepCount: Int { get }
    /// Updates every parameter that has a gradient.
    func step() throws
    /// The optimizer's state as named tensors (see each optimizer for the keys).
    func exportState() throws -> [String: Tensor]
    /// Restores state written by `exportState()`; throws naming any key or shape that does not fit.
    func importState(_ state: [String: Tensor]) throws
}

extension Optimizer {
    public var parameters: [Tensor] { groups.flatMap(\.parameters) }

    /// Drops every parameter's gradient (torch's `zero_grad(set_to_none=True)`).
    public func zeroGrad() {
        for parameter in parameters { parameter.grad = nil }
    }

    /// Sets each group's learning rate from `schedule` at `step` (default: the completed step count).
    public func applySchedule(_ schedule: LearningRateSchedule, step: Int? = nil) {
        for index in groups.indices {
            groups[index].learningRate = schedule.learningRate(base: groups[index].initialLearningRate,
                                                               step: step ?? stepCount)
        }
    }
}

/// What the optimizers share: state keys, hooked gradients, masked writes, state import checks.
enum OptimizerSupport {
    static let stepCountKey = "step_count"

    /// The shared walk of an optimizer step: every parameter that has a gradient, with its state key,
    /// its gradient (hook applied), its mask (checked), and its group's learning rate and weight decay.
    static func forEachUpdate(_ groups: [ParameterGroup], defaultWeightDecay: Float, op: String,
                              _ update: (_ parameter: Tensor, _ gradient: Tensor, _ mask: UnsafeMutablePointer<Float>?,
                                         _ learningRate: Float, _ weightDecay: Float) throws -> Void) throws {
        let keyed = try keyedParameters(groups, op: op)
        var index = 0
        for group in groups {
            let lr = group.learningRate, decay = group.weightDecay ?? defaultWeightDecay
            for parameter in group.parameters {
                let key = keyed[index].key
                index += 1
                guard let gradient = try gradient(of: parameter, key: key) else { continue }
                try update(parameter, gradient, try checkMask(of: parameter, key: key), lr, decay)
            }
        }
    }

    /// Each parameter with its state key: its `name`, or "groups.G.I" when unnamed. Throws on duplicates.
    static func keyedParameters(_ groups: [ParameterGroup], op: String) throws -> [(key: String, parameter: Tensor)] {
        var seen = Set<String>(), seenTensors = Set<ObjectIdentifier>()
        var result: [(key: String, parameter: Tensor)] = []
        for (g, group) in groups.enumerated() {
            for (i, parameter) in group.parameters.enumerated() {
                guard seenTensors.insert(ObjectIdentifier(parameter)).inserted else {
                    throw TensorError.invalidArgument(op: op,
                        reason: "parameter \(parameter.name ?? "groups.\(g).\(i)") appears in more than one place")
                }
                let key = parameter.name ?? "groups.\(g).\(i)"
                guard seen.insert(key).inserted else {
                    throw TensorError.invalidArgument(op: op, reason: "two parameters share the name \(key)")
                }
                result.append((key, parameter))
            }
        }
        return result
    }

    /// The gradient the update reads: `grad` through `gradHook`; nil when the parameter has none.
    static func gradient(of parameter: Tensor, key: String) throws -> Tensor? {
        guard let grad = parameter.grad else { return nil }
        guard let hook = parameter.gradHook else { return grad }
        let transformed = try Tensor.withoutGrad { try hook(grad) }
        guard transformed.shape == parameter.shape else {
            throw TensorError.invalidArgument(op: "gradHook",
                reason: "hook of \(key) returned shape \(transformed.shape), expected \(parameter.shape)")
        }
        return transformed
    }

    static func checkMask(of parameter: Tensor, key: String) throws -> UnsafeMutablePointer<Float>? {
        guard let mask = parameter.gradMask else { return nil }
        guard mask.shape == parameter.shape else {
            throw TensorError.invalidArgument(op: "optimizer",
                reason: "gradMask of \(key) has shape \(mask.shape), expected \(parameter.shape)")
        }
        return mask.data
    }

    /// The parameter's next value under its mask: unchanged where the mask is 0 (even if the
    /// update is not finite), the full update where it is 1, the scaled update otherwise.
    @inline(__always)
    static func masked(old: Float, new: Float, mask: Float) -> Float {
        mask == 1 ? new : (mask == 0 ? old : old + mask * (new - old))
    }

    /// A state tensor for `key`, checked against `shape`.
    static func stateTensor(_ state: [String: Tensor], _ key: String, shape: [Int]) throws -> Tensor? {
        guard let tensor = state[key] else { return nil }
        guard tensor.shape == shape else {
            throw TensorError.invalidArgument(op: "importState", reason: "\(key) has shape \(tensor.shape), expected \(shape)")
        }
        return tensor.copy()
    }

    /// A step count stored as a scalar (exact up to 2^24 steps).
    static func count(_ state: [String: Tensor], _ key: String) throws -> Int? {
        guard let tensor = state[key] else { return nil }
        guard tensor.count == 1, tensor.data[0] >= 0, tensor.data[0] == tensor.data[0].rounded() else {
            throw TensorError.invalidArgument(op: "importState", reason: "\(key) must be one non-negative whole number, got \(tensor)")
        }
        return Int(tensor.data[0])
    }

    static func countTensor(_ value: Int) -> Tensor { Tensor(scalar: Float(value)) }

    /// Throws when `state` holds a key no parameter claims (a renamed or foreign parameter).
    static func rejectUnknownKeys(_ state: [String: Tensor], known: Set<String>) throws {
        if let unknown = state.keys.sorted().first(where: { !known.contains($0) }) {
            throw TensorError.invalidArgument(op: "importState", reason: "state key \(unknown) matches no parameter of this optimizer")
        }
    }
}
