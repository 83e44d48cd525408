import Foundation

/// Stochastic gradient descent as torch.optim.SGD: d = g + wd·p; with momentum μ,
/// b = d on the first step, else μ b + (1 − dampening) d; d = d + μ b (Nesterov) or b; p ← p − lr·d.
///
/// State keys: "<name>.momentum_buffer" and "step_count".
public final class SGD: Optimizer {
    public var groups: [ParameterGroup]
    public let momentum: Float
    public let dampening: Float
    public let nesterov: Bool
    /// The weight decay of groups that do not set their own.
    public let weightDecay: Float
    public private(set) var stepCount = 0
    private var buffers: [ObjectIdentifier: Tensor] = [:]

    public init(groups: [ParameterGroup], momentum: Float = 0, dampening: Float = 0, nesterov: Bool = false,
                weightDecay: Float = 0) throws {
        guard momentum >= 0, weightDecay >= 0 else {
            throw TensorError.invalidArgument(op: "SGD", reason: "momentum \(momentum) and weight decay \(weightDecay) must not be negative")
        }
        guard !nesterov || (momentum > 0 && dampening == 0) else {
            throw TensorError.invalidArgument(op: "SGD", reason: "Nesterov momentum needs momentum > 0 and zero dampening")
        }
        for group in groups where group.learningRate < 0 || (group.weightDecay ?? 0) < 0 {
            throw TensorError.invalidArgument(op: "SGD",
                reason: "learning rate \(group.learningRate) and weight decay \(group.weightDecay ?? 0) must not be negative")
        }
        self.groups = groups
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        _ = try OptimizerSupport.keyedParameters(groups, op: "SGD")
    }

    public convenience init(parameters: [Tensor], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                            nesterov: Bool = false, weightDecay: Float = 0) throws {
        try self.init(groups: [ParameterGroup(parameters: parameters, learningRate: learningRate)],
                      momentum: momentum, dampening: dampening, nesterov: nesterov, weightDecay: weightDecay)
    }

    public func step() throws {
        try OptimizerSupport.forEachUpdate(groups, defaultWeightDecay: weightDecay, op: "SGD.step") { parameter, gradient, mask, lr, decay in
            let id = ObjectIdentifier(parameter)
            let first = buffers[id] == nil
            let buffer: Tensor? = momentum == 0 ? nil : (buffers[id] ?? Tensor(zeros: parameter.shape))
            if let buffer { buffers[id] = buffer }
            let p = parameter.data, g = gradient.data, b = buffer?.data
            let mu = momentum, keep = 1 - dampening, nesterov = nesterov
            Parallel.forRanges(count: parameter.count) { range in
                for i in range {
                    var d = g[i] + decay * p[i]
                    if let b {
                        let bi = first ? d : mu * b[i] + keep * d
                        b[i] = bi
                        d = nesterov ? d + mu * bi : bi
                    }
                    let next = p[i] - lr * d
                    p[i] = mask.map { OptimizerSupport.masked(old: p[i], new: next, mask: $0[i]) } ?? next
                }
            }
        }
        stepCount += 1
    }

    public func exportState() throws -> [String: Tensor] {
        var state: [String: Tensor] = [OptimizerSupport.stepCountKey: OptimizerSupport.countTensor(stepCount)]
        for (key, parameter) in try OptimizerSupport.keyedParameters(groups, op: "SGD.exportState") {
            if let buffer = buffers[ObjectIdentifier(parameter)] { state["\(key).momentum_buffer"] = buffer.copy() }
        }
        return state
    }

    public func importState(_ state: [String: Tensor]) throws {
        let keyed = try OptimizerSupport.keyedParameters(groups, op: "SGD.importState")
        var known: Set<String> = [OptimizerSupport.stepCountKey]
        var restored: [ObjectIdentifier: Tensor] = [:]
        for (key, parameter) in keyed {
            known.insert("\(key).momentum_buffer")
            if let buffer = try OptimizerSupport.stateTensor(state, "\(key).momentum_buffer", shape: parameter.shape) {
                restored[ObjectIdentifier(parameter)] = buffer
            }
        }
        try OptimizerSupport.rejectUnknownKeys(state, known: known)
        guard let count = try OptimizerSupport.count(state, OptimizerSupport.stepCountKey) else {
            throw TensorError.invalidArgument(op: "SGD.importState", reason: "missing \(OptimizerSupport.stepCountKey)")
        }
        buffers = restored
        stepCount = count
    }
}
