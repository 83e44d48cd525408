import Foundation

/// The inference timesteps of diffusers' `set_timesteps` for each `timestep_spacing` (Table 2 of
/// "Common Diffusion Noise Schedules and Sample Steps are Flawed"), reproducing NumPy's
/// `arange`, `linspace` and `round` (half to even) so the values match bit for bit.
enum TimestepSpacingMath {
    /// `(np.arange(0, n) * (T // n)).round()[::-1] + steps_offset`.
    static func leading(steps: Int, trainSteps: Int, offset: Int) -> [Double] {
        let ratio = trainSteps / steps
        return (0 ..< steps).reversed().map { Double($0 * ratio + offset) }
    }

    /// `np.round(np.arange(T, 0, -T / n)) - 1`.
    static func trailing(steps: Int, trainSteps: Int) -> [Double] {
        numpyArange(start: Double(trainSteps), stop: 0, step: -Double(trainSteps) / Double(steps))
            .map { $0.rounded(.toNearestOrEven) - 1 }
    }

    /// `np.linspace(0, T - 1, n)[::-1]`, unrounded (Euler keeps these as float32).
    static func linspace(steps: Int, trainSteps: Int) -> [Double] {
        numpyLinspace(start: 0, stop: Double(trainSteps - 1), count: steps).reversed()
    }

    /// `np.arange(start, stop, step)` for doubles: the length is `ceil((stop - start) / step)`, and
    /// values after the second are `start + i * ((start + step) - start)`, as NumPy's fill does.
    static func numpyArange(start: Double, stop: Double, step: Double) -> [Double] {
        let length = max(0, Int(((stop - start) / step).rounded(.up)))
        guard length > 0 else { return [] }
        let second = start + step
        let delta = second - start
        return (0 ..< length).map { index in
            index == 0 ? start : (index == 1 ? second : start + Double(index) * delta)
        }
    }

    /// `np.linspace(start, stop, count)` with the endpoint: `i * step + start`, the last value exactly `stop`.
    static func numpyLinspace(start: Double, stop: Double, count: Int) -> [Double] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let delta = stop - start
        let step = delta / Double(count - 1)
        var values = (0 ..< count).map { step == 0 ? Double($0) / Double(count - 1) * delta + start : Double($0) * step + start }
        values[count - 1] = stop
        return values
    }

    /// `np.interp(x, arange(len(values)), values)` for x inside [0, len - 1].
    static func interpolate(_ values: [Double], at x: Double) -> Double {
        if x <= 0 { return values[0] }
        if x >= Double(values.count - 1) { return values[values.count - 1] }
        let low = Int(x.rounded(.down))
        let slope = (values[low + 1] - values[low]) / 1.0
        return slope * (x - Double(low)) + values[low]
    }
}
