import Diffusion
import Tensor

/// Gradient accumulation (the reference's `gradient_accumulation_steps`): one optimizer step averages
/// the gradients of `count` micro-steps (each weighted 1/count). Micro-step m of step s is sample
/// s·count + m and draws from `random` itself (m = 0) or from `random.derived(0xACC0 + m)`, so one
/// micro-step per step is exactly the unaccumulated run.
enum GradientAccumulation {
    /// Runs `micro(sample, weight, &random)` `count` times. Every micro-step's loss but the last is
    /// back-propagated here (times `weight`); the last is returned weighted, with the others' values
    /// added as a constant: the trainer's backward completes the sum and it logs the mean.
    static func step(_ step: Int, count: Int, random: inout RandomGenerator,
                     micro: (_ sample: Int, _ weight: Float, _ random: inout RandomGenerator) throws -> Tensor) throws -> Tensor {
        guard count > 1 else { return try micro(step, 1, &random) }
        let weight = 1 / Float(count)
        var carried: Float = 0
        for m in 0..<(count - 1) {
            var microRandom = m == 0 ? random : random.derived(0xACC0 &+ UInt64(m))
            let loss = try micro(step * count + m, weight, &microRandom)
            let value = loss.item
            guard value.isFinite else { throw TrainingError.nonFiniteLoss(step: step, value: value) }
            try (loss * weight).backward()
            carried += value * weight
        }
        var lastRandom = random.derived(0xACC0 &+ UInt64(count - 1))
        return try micro(step * count + count - 1, weight, &lastRandom) * weight + carried
    }
}
