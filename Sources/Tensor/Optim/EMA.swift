import Foundation

/// An exponential moving average of weights (diffusers' `EMAModel`, training/ema).
///
/// After each optimizer step, `update(from:)` moves every shadow weight towards its parameter:
/// s ← s − (1 − d)(s − p). With `warmup` the decay ramps up as diffusers' default does:
/// d = 0 on the first update (the shadow becomes a copy), then min(decay, (1 + t) / (10 + t)) with
/// t the number of earlier updates; without it d is `decay` from the start.
/// `store`/`restore` keep the training weights aside while the averaged ones are evaluated.
///
/// State keys: "<name>" per shadow weight and "optimization_step".
public final class EMA {
    public let decay: Float
    public let warmup: Bool
    /// `update(from:)` calls so far.
    public private(set) var optimizationStep = 0
    /// The averaged weights, in the order of the parameters given at creation, named like them.
    public let shadow: [Tensor]
    private let keys: [String]
    private var stored: [Tensor]?

    public init(parameters: [Tensor], decay: Float = 0.9999, warmup: Bool = true) throws {
        guard decay >= 0, decay <= 1 else {
            throw TensorError.invalidArgument(op: "EMA", reason: "decay \(decay) must lie in [0, 1]")
        }
        keys = try OptimizerSupport.keyedParameters([ParameterGroup(parameters: parameters, learningRate: 0)], op: "EMA")
            .map { $0.parameter.name ?? "\($0.key)" }
        shadow = parameters.map { parameter in
            let copy = parameter.copy()
            copy.name = parameter.name
            return copy
        }
        self.decay = decay
        self.warmup = warmup
    }

    /// The decay the update number `step` (1-based) uses.
    public func decay(atUpdate step: Int) -> Float {
        guard warmup else { return decay }
        let t = step - 1
        if t <= 0 { return 0 }
        return Swift.min(decay, Float(1 + t) / Float(10 + t))
    }

    public func update(from parameters: [Tensor]) throws {
        try checkShapes(parameters, op: "EMA.update")
        optimizationStep += 1
        let rate = 1 - decay(atUpdate: optimizationStep)
        for (average, parameter) in zip(shadow, parameters) {
            let s = average.data, p = parameter.data
            Parallel.forRanges(count: average.count) { range in
                for i in range { s[i] -= rate * (s[i] - p[i]) }
            }
        }
    }

    /// Writes the averaged weights into `parameters` (to evaluate or save them).
    public func copy(to parameters: [Tensor]) throws {
        try checkShapes(parameters, op: "EMA.copy(to:)")
        for (average, parameter) in zip(shadow, parameters) { try parameter.assign(average) }
    }

    /// Keeps a copy of `parameters` for `restore(to:)`.
    public func store(_ parameters: [Tensor]) throws {
        try checkShapes(parameters, op: "EMA.store")
        stored = parameters.map { $0.copy() }
    }

    /// Puts back the weights kept by `store(_:)`.
    public func restore(to parameters: [Tensor]) throws {
        guard let stored else {
            throw TensorError.invalidArgument(op: "EMA.restore", reason: "nothing stored: call store(_:) first")
        }
        try checkShapes(parameters, op: "EMA.restore")
        for (saved, parameter) in zip(stored, parameters) { try parameter.assign(saved) }
        self.stored = nil
    }

    public func exportState() -> [String: Tensor] {
        var state = ["optimization_step": OptimizerSupport.countTensor(optimizationStep)]
        for (key, average) in zip(keys, shadow) { state[key] = average.copy() }
        return state
    }

    public func importState(_ state: [String: Tensor]) throws {
        guard let step = try OptimizerSupport.count(state, "optimization_step") else {
            throw TensorError.invalidArgument(op: "EMA.importState", reason: "missing optimization_step")
        }
        var restored: [Tensor] = []
        for (key, average) in zip(keys, shadow) {
            guard let value = try OptimizerSupport.stateTensor(state, key, shape: average.shape) else {
                throw TensorError.invalidArgument(op: "EMA.importState", reason: "missing averaged weight \(key)")
            }
            restored.append(value)
        }
        try OptimizerSupport.rejectUnknownKeys(state, known: Set(keys + ["optimization_step"]))
        for (average, value) in zip(shadow, restored) { try average.assign(value) }
        optimizationStep = step
    }

    private func checkShapes(_ parameters: [Tensor], op: String) throws {
        guard parameters.count == shadow.count else {
            throw TensorError.invalidArgument(op: op, reason: "expected \(shadow.count) parameters, got \(parameters.count)")
        }
        for (index, (average, parameter)) in zip(shadow, parameters).enumerated() where average.shape != parameter.shape {
            throw TensorError.invalidArgument(op: op,
                reason: "parameter \(parameter.name ?? "#\(index)") has shape \(parameter.shape), the average has \(average.shape)")
        }
    }
}
