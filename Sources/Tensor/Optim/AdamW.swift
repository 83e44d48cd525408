import Foundation

/// Adam with decoupled weight decay, step for step as torch.optim.AdamW (amsgrad off):
/// p ← p · (1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← β2 v + (1 − β2) g²;
/// p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε). The bias corrections use each
/// parameter's own step count, which advances only when it has a gradient.
///
/// State keys: "<name>.exp_avg", "<name>.exp_avg_sq", "<name>.step", and "step_count".
public final class AdamW: Optimizer {
    public var groups: [ParameterGroup]
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    /// The weight decay of groups that do not set their own.
    public let weightDecay: Float
    public private(set) var stepCount = 0

    private struct Moments {
        var first: Tensor
        var second: Tensor
        var steps: Int
    }
    private var moments: [ObjectIdentifier: Moments] = [:]

    public init(groups: [ParameterGroup], betas: (Float, Float) = (0.9, 0.999), epsilon: Float = 1e-8,
                weightDecay: Float = 1e-2) throws {
        guard (0..<1).contains(betas.0), (0..<1).contains(betas.1) else {
            throw TensorError.invalidArgument(op: "AdamW", reason: "betas \(betas) must lie in [0, 1)")
        }
        guard epsilon >= 0, weightDecay >= 0 else {
            throw TensorError.invalidArgument(op: "AdamW", reason: "epsilon \(epsilon) and weight decay \(weightDecay) must not be negative")
        }
        for group in groups where group.learningRate < 0 || (group.weightDecay ?? 0) < 0 {
            throw TensorError.invalidArgument(op: "AdamW",
                reason: "learning rate \(group.learningRate) and weight decay \(group.weightDecay ?? 0) must not be negative")
        }
        self.groups = groups
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        _ = try OptimizerSupport.keyedParameters(groups, op: "AdamW")
    }

    public convenience init(parameters: [Tensor], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            epsilon: Float = 1e-8, weightDecay: Float = 1e-2) throws {
        try self.init(groups: [ParameterGroup(parameters: parameters, learningRate: learningRate)],
                      betas: betas, epsilon: epsilon, weightDecay: weightDecay)
    }

    public func step() throws {
        try OptimizerSupport.forEachUpdate(groups, defaultWeightDecay: weightDecay, op: "AdamW.step") { parameter, gradient, mask, lr, decay in
            let id = ObjectIdentifier(parameter)
            var state = moments[id] ?? Moments(first: Tensor(zeros: parameter.shape), second: Tensor(zeros: parameter.shape), steps: 0)
            state.steps += 1
            moments[id] = state
            update(parameter, gradient: gradient, mask: mask, state: state, lr: lr, decay: decay)
        }
        stepCount += 1
    }

    private func update(_ parameter: Tensor, gradient: Tensor, mask: UnsafeMutablePointer<Float>?, state: Moments,
                        lr: Float, decay: Float) {
        let t = Double(state.steps)
        let stepSize = Float(Double(lr) / (1 - Foundation.pow(Double(beta1), t)))
        let correction2 = Float((1 - Foundation.pow(Double(beta2), t)).squareRoot())
        let shrink = 1 - lr * decay
        let b1 = beta1, b2 = beta2, eps = epsilon
        let p = parameter.data, g = gradient.data, m = state.first.data, v = state.second.data
        Parallel.forRanges(count: parameter.count) { range in
            // Two loops rather than a per-element optional check, so each one vectorises.
            if let mask {
                for i in range {
                    let gi = g[i]
                    let mi = m[i] + (1 - b1) * (gi - m[i])
                    let vi = b2 * v[i] + (1 - b2) * gi * gi
                    m[i] = mi
                    v[i] = vi
                    let next = p[i] * shrink - stepSize * (mi / (vi.squareRoot() / correction2 + eps))
                    p[i] = OptimizerSupport.masked(old: p[i], new: next, mask: mask[i])
                }
            } else {
                for i in range {
                    let gi = g[i]
                    let mi = m[i] + (1 - b1) * (gi - m[i])
                    let vi = b2 * v[i] + (1 - b2) * gi * gi
                    m[i] = mi
                    v[i] = vi
                    p[i] = p[i] * shrink - stepSize * (mi / (vi.squareRoot() / correction2 + eps))
                }
            }
        }
    }

    public func exportState() throws -> [String: Tensor] {
        var state: [String: Tensor] = [OptimizerSupport.stepCountKey: OptimizerSupport.countTensor(stepCount)]
        for (key, parameter) in try OptimizerSupport.keyedParameters(groups, op: "AdamW.exportState") {
            guard let entry = moments[ObjectIdentifier(parameter)] else { continue }
            state["\(key).exp_avg"] = entry.first.copy()
            state["\(key).exp_avg_sq"] = entry.second.copy()
            state["\(key).step"] = OptimizerSupport.countTensor(entry.steps)
        }
        return state
    }

    public func importState(_ state: [String: Tensor]) throws {
        let keyed = try OptimizerSupport.keyedParameters(groups, op: "AdamW.importState")
        var known: Set<String> = [OptimizerSupport.stepCountKey]
        var restored: [ObjectIdentifier: Moments] = [:]
        for (key, parameter) in keyed {
            known.formUnion(["\(key).exp_avg", "\(key).exp_avg_sq", "\(key).step"])
            let first = try OptimizerSupport.stateTensor(state, "\(key).exp_avg", shape: parameter.shape)
            let second = try OptimizerSupport.stateTensor(state, "\(key).exp_avg_sq", shape: parameter.shape)
            let steps = try OptimizerSupport.count(state, "\(key).step")
            switch (first, second, steps) {
            case let (first?, second?, steps?):
                restored[ObjectIdentifier(parameter)] = Moments(first: first, second: second, steps: steps)
            case (nil, nil, nil):
                continue
            default:
                throw TensorError.invalidArgument(op: "AdamW.importState",
                    reason: "state of \(key) is incomplete: needs \(key).exp_avg, \(key).exp_avg_sq and \(key).step")
            }
        }
        try OptimizerSupport.rejectUnknownKeys(state, known: known)
        guard let count = try OptimizerSupport.count(state, OptimizerSupport.stepCountKey) else {
            throw TensorError.invalidArgument(op: "AdamW.importState", reason: "missing \(OptimizerSupport.stepCountKey)")
        }
        moments = restored
        stepCount = count
    }
}
