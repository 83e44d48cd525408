import XCTest
@testable import Tensor

final class OptimizerTests: XCTestCase {
    private func parameter(_ values: [Float], name: String? = nil) throws -> Tensor {
        let p = try Tensor(shape: [values.count], values: values)
        p.requiresGrad = true
        p.name = name
        return p
    }

    /// Three AdamW steps against torch.optim.AdamW's update written out in Double.
    func testAdamWMatchesReference() throws {
        let start: [Double] = [0.5, -1, 2, 0]
        let gradients: [[Double]] = [[0.1, -0.2, 0.3, 0], [0.05, 0.4, -0.1, 1e-3], [-0.3, 0.1, 0.2, -2]]
        let lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8
        var p = start, m = [Double](repeating: 0, count: 4), v = m
        for (t, g) in gradients.enumerated() {
            let step = Double(t + 1)
            for i in 0..<4 {
                p[i] *= 1 - lr * wd
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let denom = (v[i].squareRoot() / (1 - Foundation.pow(b2, step)).squareRoot()) + eps
                p[i] -= lr / (1 - Foundation.pow(b1, step)) * m[i] / denom
            }
        }
        let weight = try parameter(start.map(Float.init))
        let optimizer = try AdamW(parameters: [weight], learningRate: Float(lr), weightDecay: Float(wd))
        XCTAssertEqual(optimizer.beta1, 0.9)
        XCTAssertEqual(optimizer.epsilon, 1e-8)
        for g in gradients {
            weight.grad = try Tensor(shape: [4], values: g.map(Float.init))
            try optimizer.step()
        }
        for (actual, expected) in zip(weight.values, p) { XCTAssertEqual(Double(actual), expected, accuracy: 1e-6) }
        XCTAssertEqual(optimizer.stepCount, 3)
        // The defaults are torch's.
        let defaults = try AdamW(parameters: [])
        XCTAssertEqual(defaults.weightDecay, 1e-2)
        XCTAssertEqual(defaults.beta2, 0.999)
        XCTAssertThrowsError(try AdamW(parameters: [], betas: (1, 0.9)))
    }

    func testSGDMomentumAndNesterov() throws {
        let plain = try parameter([1])
        let sgd = try SGD(parameters: [plain], learningRate: 0.1, momentum: 0.9)
        var expected: [Float] = []
        for _ in 0..<3 {
            plain.grad = Tensor(repeating: 1, shape: [1])
            try sgd.step()
            expected.append(plain.values[0])
        }
        // b = 1, 1.9, 2.71; p = 1 − 0.1 Σ b.
        XCTAssertEqual(expected[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(expected[1], 0.71, accuracy: 1e-6)
        XCTAssertEqual(expected[2], 0.439, accuracy: 1e-6)

        let nesterov = try parameter([1])
        let nesterovSGD = try SGD(parameters: [nesterov], learningRate: 0.1, momentum: 0.9, nesterov: true)
        for _ in 0..<2 {
            nesterov.grad = Tensor(repeating: 1, shape: [1])
            try nesterovSGD.step()
        }
        // d = 1 + 0.9·1 = 1.9, then 1 + 0.9·1.9 = 2.71.
        XCTAssertEqual(nesterov.values[0], 1 - 0.19 - 0.271, accuracy: 1e-6)

        let decayed = try parameter([2])
        let decaySGD = try SGD(parameters: [decayed], learningRate: 0.5, weightDecay: 0.1)
        decayed.grad = Tensor(repeating: 1, shape: [1])
        try decaySGD.step()
        XCTAssertEqual(decayed.values[0], 2 - 0.5 * (1 + 0.2), accuracy: 1e-6)
        XCTAssertThrowsError(try SGD(parameters: [], learningRate: 0.1, nesterov: true))
    }

    /// Masked entries stay bit-identical through several steps with weight decay, momentum and a hook
    /// that writes into masked positions; unmasked ones move.
    func testMasksFreezeEntriesUnderEveryOptimizer() throws {
        let makers: [(Tensor) throws -> Optimizer] = [
            { try AdamW(parameters: [$0], learningRate: 0.05, weightDecay: 0.5) },
            { try SGD(parameters: [$0], learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.5) },
        ]
        for make in makers {
            let weight = try parameter([0.3, -0.7, 1.1, 2.5, -1.9, 0.6])
            let initial = weight.values
            weight.gradMask = try Tensor(shape: [6], values: [1, 0, 1, 0, 0, 1])
            weight.gradHook = { g in g + 0.25 }
            let optimizer = try make(weight)
            let target = try Tensor(shape: [6], values: [1, 1, 1, 1, 1, 1])
            for _ in 0..<5 {
                optimizer.zeroGrad()
                try Tensor.mseLoss(weight, target).backward()
                try optimizer.step()
            }
            for i in [1, 3, 4] { XCTAssertEqual(weight.values[i].bitPattern, initial[i].bitPattern, "\(optimizer) entry \(i)") }
            for i in [0, 2, 5] { XCTAssertNotEqual(weight.values[i], initial[i], "\(optimizer) entry \(i)") }
        }
    }

    func testGradientHookRunsBeforeMoments() throws {
        let weight = try parameter([1, 1], name: "lora_A")
        weight.gradHook = { g in g * 3 }
        let optimizer = try AdamW(parameters: [weight], learningRate: 0.1, weightDecay: 0)
        weight.grad = try Tensor(shape: [2], values: [1, -2])
        try optimizer.step()
        let state = try optimizer.exportState()
        XCTAssertEqual(state["lora_A.exp_avg"]!.values[0], 0.3, accuracy: 1e-6)
        XCTAssertEqual(state["lora_A.exp_avg_sq"]!.values[1], 0.001 * 36, accuracy: 1e-6)

        let sgdWeight = try parameter([1])
        sgdWeight.gradHook = { g in g * 2 }
        let sgd = try SGD(parameters: [sgdWeight], learningRate: 0.1)
        sgdWeight.grad = Tensor(repeating: 1, shape: [1])
        try sgd.step()
        XCTAssertEqual(sgdWeight.values[0], 0.8, accuracy: 1e-6)

        sgdWeight.gradHook = { _ in Tensor(zeros: [3]) }
        XCTAssertThrowsError(try sgd.step()) { XCTAssertTrue("\($0)".contains("[3]")) }
    }

    func testParameterGroupsAndSkippedParameters() throws {
        let fast = try parameter([1], name: "temporal"), slow = try parameter([1], name: "spatial")
        let idle = try parameter([1], name: "idle")
        let optimizer = try SGD(groups: [ParameterGroup(parameters: [fast], learningRate: 0.5),
                                         ParameterGroup(parameters: [slow, idle], learningRate: 0.1, weightDecay: 1)])
        fast.grad = Tensor(repeating: 1, shape: [1])
        slow.grad = Tensor(repeating: 1, shape: [1])
        try optimizer.step()
        XCTAssertEqual(fast.values[0], 0.5, accuracy: 1e-6)
        XCTAssertEqual(slow.values[0], 1 - 0.1 * 2, accuracy: 1e-6)
        XCTAssertEqual(idle.values[0], 1)

        optimizer.applySchedule(.linearWarmup(steps: 4))
        XCTAssertEqual(optimizer.groups[0].learningRate, 0.125, accuracy: 1e-7)
        XCTAssertEqual(optimizer.groups[1].learningRate, 0.025, accuracy: 1e-7)
        XCTAssertThrowsError(try SGD(groups: [ParameterGroup(parameters: [fast, fast], learningRate: 1)]))
        let twin = try parameter([1], name: "temporal")
        XCTAssertThrowsError(try SGD(groups: [ParameterGroup(parameters: [fast, twin], learningRate: 1)])) {
            XCTAssertTrue("\($0)".contains("temporal"))
        }
    }

    func testClipGradNorm() throws {
        let a = try parameter([0, 0]), b = try parameter([0]), none = try parameter([5])
        a.grad = try Tensor(shape: [2], values: [3, 4])
        b.grad = try Tensor(shape: [1], values: [12])
        XCTAssertEqual(try clipGradNorm([a, b, none], maxNorm: 20), 13)
        XCTAssertEqual(a.grad?.values, [3, 4])
        XCTAssertEqual(try clipGradNorm([a, b, none], maxNorm: 6.5), 13)
        let factor: Float = 6.5 / (13 + 1e-6)
        XCTAssertEqual(a.grad!.values[1], 4 * factor, accuracy: 1e-6)
        XCTAssertEqual(b.grad!.values[0], 12 * factor, accuracy: 1e-6)
        XCTAssertEqual(try clipGradNorm([a, b], maxNorm: 100), 6.5, accuracy: 1e-5)
        XCTAssertThrowsError(try clipGradNorm([a], maxNorm: 0))
    }

    func testSchedules() {
        XCTAssertEqual(LearningRateSchedule.constant.learningRate(base: 0.3, step: 1000), 0.3)
        let warmup = LearningRateSchedule.linearWarmup(steps: 4)
        XCTAssertEqual((0...5).map { warmup.learningRate(base: 1, step: $0) }, [0, 0.25, 0.5, 0.75, 1, 1])
        let cosine = LearningRateSchedule.cosine(total: 10, warmup: 2, minLR: 0.1)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 0), 0)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 1), 0.5)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 2), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 6), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 4), Float(0.1 + 0.9 * 0.5 * (1 + Foundation.cos(Double.pi / 4))), accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 10), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(base: 1, step: 50), 0.1, accuracy: 1e-6)
    }

    func testEMA() throws {
        let weight = try parameter([1, 2], name: "w")
        let ema = try EMA(parameters: [weight], decay: 0.9999)
        XCTAssertEqual(ema.decay(atUpdate: 1), 0)
        XCTAssertEqual(ema.decay(atUpdate: 2), 2.0 / 11)
        XCTAssertEqual(ema.decay(atUpdate: 1_000_000), 0.9999)
        try weight.assign(Tensor(shape: [2], values: [3, 4]))
        try ema.update(from: [weight])
        XCTAssertEqual(ema.shadow[0].values, [3, 4])
        try weight.assign(Tensor(shape: [2], values: [14, 4]))
        try ema.update(from: [weight])
        XCTAssertEqual(ema.shadow[0].values[0], 3 + 9.0 / 11 * 11, accuracy: 1e-5)

        let constant = try EMA(parameters: [weight], decay: 0.5, warmup: false)
        try weight.assign(Tensor(shape: [2], values: [0, 0]))
        try constant.update(from: [weight])
        XCTAssertEqual(constant.shadow[0].values, [7, 2])

        // store → copy averages in → restore the training weights.
        try weight.assign(Tensor(shape: [2], values: [-1, -2]))
        try constant.store([weight])
        try constant.copy(to: [weight])
        XCTAssertEqual(weight.values, [7, 2])
        try constant.restore(to: [weight])
        XCTAssertEqual(weight.values, [-1, -2])
        XCTAssertThrowsError(try constant.restore(to: [weight]))
        XCTAssertThrowsError(try constant.update(from: [Tensor(zeros: [3])]))

        let state = ema.exportState()
        let resumed = try EMA(parameters: [weight], decay: 0.9999)
        try resumed.importState(state)
        XCTAssertEqual(resumed.optimizationStep, 2)
        XCTAssertEqual(resumed.shadow[0].values, ema.shadow[0].values)
        XCTAssertThrowsError(try resumed.importState(["optimization_step": Tensor(scalar: 1)]))
    }

    /// Export after three steps, import into a fresh optimizer over copied weights: both continue identically.
    func testStateRoundTripForResume() throws {
        func gradient(_ step: Int) throws -> Tensor { try Tensor(shape: [3], values: [Float(step) * 0.1, -0.2, 0.05 * Float(step * step)]) }
        for make in [{ (p: [Tensor]) throws -> Optimizer in try AdamW(parameters: p, learningRate: 0.01) },
                     { (p: [Tensor]) throws -> Optimizer in try SGD(parameters: p, learningRate: 0.01, momentum: 0.9) }] {
            let original = try parameter([0.2, 0.4, -0.6], name: "down.lora_B")
            let first = try make([original])
            for step in 0..<3 { original.grad = try gradient(step); try first.step() }
            let state = try first.exportState()
            XCTAssertEqual(state["step_count"]?.item, 3)

            let copy = original.copy()
            copy.requiresGrad = true
            copy.name = original.name
            let second = try make([copy])
            try second.importState(state)
            XCTAssertEqual(second.stepCount, 3)
            for step in 3..<5 {
                original.grad = try gradient(step); try first.step()
                copy.grad = try gradient(step); try second.step()
            }
            XCTAssertEqual(original.values.map(\.bitPattern), copy.values.map(\.bitPattern))

            var foreign = state
            foreign["up.lora_A.exp_avg"] = Tensor(zeros: [3])
            XCTAssertThrowsError(try second.importState(foreign)) { XCTAssertTrue("\($0)".contains("up.lora_A")) }
            var misshapen = state
            let key = state.keys.first { $0 != "step_count" && !$0.hasSuffix(".step") }!
            misshapen[key] = Tensor(zeros: [4])
            XCTAssertThrowsError(try second.importState(misshapen)) { XCTAssertTrue("\($0)".contains(key)) }
        }
    }
}
