/// Which training timesteps are drawn more often: diffusers' timestep bias
/// (`generate_timestep_weights` in its SDXL training scripts, `--timestep_bias_strategy`,
/// `--timestep_bias_multiplier`, `--timestep_bias_portion`, `--timestep_bias_begin`,
/// `--timestep_bias_end`). Every timestep weighs 1, the biased ones `multiplier`; the draw is
/// proportional to the weights. `later` biases the last `portion` of the timesteps (the noisiest,
/// where a clip's layout is decided), `earlier` the first, `range` the timesteps `begin..<end`;
/// `none` draws uniformly.
public struct TimestepBias: Equatable, Sendable {
    public enum Strategy: String, Codable, CaseIterable, Sendable {
        case none, later, earlier, range
    }

    public var strategy: Strategy
    public var multiplier: Float
    /// A Double, as diffusers' argument: `Int(portion · T)` counts the timesteps as Python does.
    public var portion: Double
    public var begin: Int
    public var end: Int

    /// diffusers' defaults: no bias; multiplier 1, portion 0.25, range 0..<1000.
    public init(strategy: Strategy = .none, multiplier: Float = 1, portion: Double = 0.25, begin: Int = 0, end: Int = 1000) {
        self.strategy = strategy
        self.multiplier = multiplier
        self.portion = portion
        self.begin = begin
        self.end = end
    }

    /// Whether the draw differs from a uniform one.
    public var isActive: Bool { strategy != .none && multiplier != 1 }

    /// What is wrong for `timesteps` training timesteps, as (key suffix, reason), or nil.
    public func problem(timesteps: Int) -> (key: String, reason: String)? {
        guard strategy != .none else { return nil }
        guard multiplier > 0, multiplier.isFinite else { return ("multiplier", "must be a positive number, got \(multiplier)") }
        switch strategy {
        case .later, .earlier:
            guard portion > 0, portion <= 1, Int(portion * Double(timesteps)) >= 1 else {
                return ("portion", "must lie in (0, 1] and cover at least one of the \(timesteps) timesteps, got \(portion)")
            }
        case .range:
            guard end <= timesteps else {
                return ("end", "must be at most the \(timesteps) training timesteps, got \(end)")
            }
            guard begin >= 0, begin < end else {
                return ("begin", "begin..<end must be a nonempty range inside 0..<\(timesteps), got \(begin)..<\(end)")
            }
        case .none: break
        }
        return nil
    }

    /// The draw's cumulative distribution over 0..<timesteps (the last entry 1), or nil when uniform.
    public func cumulativeWeights(timesteps: Int) -> [Double]? {
        guard isActive, problem(timesteps: timesteps) == nil else { return nil }
        var weights = [Double](repeating: 1, count: timesteps)
        let biased: Range<Int>
        switch strategy {
        case .later: biased = (timesteps - Int(portion * Double(timesteps)))..<timesteps
        case .earlier: biased = 0..<Int(portion * Double(timesteps))
        case .range: biased = begin..<end
        case .none: return nil
        }
        for index in biased { weights[index] = Double(multiplier) }
        var total = 0.0
        let cumulative = weights.map { weight -> Double in total += weight; return total }
        return cumulative.map { $0 / total }
    }

    /// `count` timesteps drawn from the cumulative distribution `cumulative` with `uniforms` in [0, 1).
    public static func draw(cumulative: [Double], uniforms: [Float]) -> [Int] {
        uniforms.map { u in
            let target = Double(u)
            var low = 0, high = cumulative.count - 1
            while low < high {
                let middle = (low + high) / 2
                if cumulative[middle] > target { high = middle } else { low = middle + 1 }
            }
            return low
        }
    }
}
