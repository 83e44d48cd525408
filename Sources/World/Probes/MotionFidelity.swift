/// How closely a clip's motion follows a reference motion, read from the probes' trajectories:
/// the Pearson correlation of per-frame displacement sequences.
///
/// A trajectory's displacement sequence is (dx₁ … dx_{F−1}, dy₁ … dy_{F−1}), the centroid's steps
/// between consecutive frames, x's then y's, in canvas units. Correlation ignores scale, so a slow
/// and a fast zigzag agree, a path travelled the other way scores −1 against the first, and an
/// object that stays put (no variance) scores 0. The reference of several clips of one motion is
/// their mean displacement sequence.
///
/// Concatenating the axes makes the sequence's mean part of the signal: a steady drift to the right
/// correlates partly with a zigzag to the right (about 0.4), and paths whose ups and downs fall on
/// the same frames (a zigzag and a bounce, both with two swings) correlate highly. The score says
/// "moves like the reference frame by frame", not "is the same named motion".
public enum MotionFidelity {
    /// The displacement sequence of `trajectory`, or nil when the object was found in fewer than
    /// half of the frames (or in fewer than 2). Frames where it was lost take their centroid by linear
    /// interpolation between the nearest frames that found it (held at the ends), so one missed frame
    /// costs little and does not break the sequence.
    public static func displacements(_ trajectory: Trajectory) -> [Float]? {
        let frames = trajectory.centroids.count
        let found = trajectory.centroids.indices.filter { trajectory.centroids[$0] != nil }
        guard frames >= 2, found.count >= Swift.max(2, (frames + 1) / 2) else { return nil }
        var centroids: [SIMD2<Float>] = []
        for index in 0..<frames {
            if let centroid = trajectory.centroids[index] {
                centroids.append(centroid)
                continue
            }
            let before = found.last { $0 < index }, after = found.first { $0 > index }
            switch (before, after) {
            case let (before?, after?):
                let t = Float(index - before) / Float(after - before)
                centroids.append(trajectory.centroids[before]! * (1 - t) + trajectory.centroids[after]! * t)
            case let (before?, nil): centroids.append(trajectory.centroids[before]!)
            case let (nil, after?): centroids.append(trajectory.centroids[after]!)
            case (nil, nil): return nil
            }
        }
        let steps = zip(centroids.dropFirst(), centroids).map { $0 - $1 }
        return steps.map(\.x) + steps.map(\.y)
    }

    /// The mean of displacement sequences of one length (nil for none, or for sequences of different
    /// lengths).
    public static func reference(_ sequences: [[Float]]) -> [Float]? {
        guard let first = sequences.first, sequences.allSatisfy({ $0.count == first.count }) else { return nil }
        var sum = [Float](repeating: 0, count: first.count)
        for sequence in sequences {
            for index in sequence.indices { sum[index] += sequence[index] }
        }
        return sum.map { $0 / Float(sequences.count) }
    }

    /// Pearson's correlation of two sequences of one length; nil when the lengths differ, there are
    /// fewer than 2 values, or either sequence is constant.
    public static func correlation(_ a: [Float], _ b: [Float]) -> Float? {
        guard a.count == b.count, a.count >= 2 else { return nil }
        // Doubles: displacements are small and nearly equal sums would lose their digits in Float.
        let meanA = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let meanB = b.reduce(0.0) { $0 + Double($1) } / Double(b.count)
        var covariance = 0.0, varianceA = 0.0, varianceB = 0.0
        for (x, y) in zip(a, b) {
            let dx = Double(x) - meanA, dy = Double(y) - meanB
            covariance += dx * dy
            varianceA += dx * dx
            varianceB += dy * dy
        }
        // Below this a sequence is a constant up to rounding (a still object read at one pixel).
        let tiny = 1e-12 * Double(a.count)
        guard varianceA > tiny, varianceB > tiny else { return nil }
        return Float(Swift.min(Swift.max(covariance / (varianceA * varianceB).squareRoot(), -1), 1))
    }

    /// The fidelity of one clip: the correlation of its displacements with `reference`; 0 when the
    /// object was not found (see `displacements`), when it did not move, or when the clip has another
    /// frame count than the reference.
    public static func fidelity(_ trajectory: Trajectory?, reference: [Float]) -> Float {
        guard let trajectory, let steps = displacements(trajectory) else { return 0 }
        return correlation(steps, reference) ?? 0
    }

    /// The path of the main object (the largest found in each frame) through `frames` — the object a
    /// one-object scene is about.
    public static func mainObjectTrajectory(_ frames: [ProbeFrame]) -> Trajectory {
        let objects = frames.map { FrameSegmentation($0).objects.first }
        return Trajectory(centroids: objects.map { $0?.centroid }, areas: objects.map { $0?.area })
    }
}
