import Foundation

/// Learning-rate schedules as diffusers' `get_scheduler` builds them (diffusers/optimization.py),
/// as a pure function of the number of completed optimizer steps.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The base rate throughout.
    case constant
    /// `get_constant_schedule_with_warmup`: base · step / warmup for step < warmup, then the base rate.
    case linearWarmup(steps: Int)
    /// `get_cosine_schedule_with_warmup` (half a cosine) with a floor: linear warm-up, then
    /// minLR + (base − minLR) · ½(1 + cos(π · progress)), progress = (step − warmup) / (total − warmup),
    /// held at minLR after `total` steps.
    case cosine(total: Int, warmup: Int, minLR: Float)

    /// The learning rate after `step` completed optimizer steps.
    public func learningRate(base: Float, step: Int) -> Float {
        switch self {
        case .constant:
            return base
        case let .linearWarmup(warmup):
            return step < warmup ? base * Float(step) / Float(Swift.max(1, warmup)) : base
        case let .cosine(total, warmup, minLR):
            if step < warmup { return base * Float(step) / Float(Swift.max(1, warmup)) }
            let progress = Swift.min(1, Double(step - warmup) / Double(Swift.max(1, total - warmup)))
            let factor = 0.5 * (1 + Foundation.cos(Double.pi * progress))
            return minLR + (base - minLR) * Float(factor)
        }
    }
}
