import Tensor

/// NT-Xent (normalised temperature-scaled cross entropy) as CLoRA takes it from
/// pytorch_metric_learning's `NTXentLoss(temperature)` with its defaults: cosine similarity
/// (`F.normalize` then dot products), every ordered pair (a, p) of distinct embeddings with one
/// label is a positive pair, every pair with different labels a negative one, and the loss is the
/// mean over positive pairs of
///
///     −log( e^{s_ap/τ} / (e^{s_ap/τ} + Σ_{n: label n ≠ label a} e^{s_an/τ}) ).
///
/// (pytorch_metric_learning adds float32's smallest normal number inside the log; at the values
/// cosine similarities give that changes nothing and is left out.)
public enum NTXentLoss {
    /// The loss of `embeddings` `[n, D]` with one label per row, or nil when there is no positive
    /// or no negative pair (pytorch_metric_learning then returns a constant zero).
    public static func loss(_ embeddings: Tensor, labels: [Int], temperature: Float = 0.5) throws -> Tensor? {
        guard embeddings.rank == 2, embeddings.shape[0] == labels.count else {
            throw CompositionError.invalidSetting("NT-Xent: \(labels.count) labels for embeddings of shape \(embeddings.shape)")
        }
        guard temperature > 0, temperature.isFinite else {
            throw CompositionError.invalidSetting("NT-Xent: the temperature must be positive, got \(temperature)")
        }
        let count = labels.count
        var positive = [Float](repeating: 0, count: count * count), negative = positive
        for a in 0 ..< count {
            for b in 0 ..< count where a != b {
                if labels[a] == labels[b] { positive[a * count + b] = 1 } else { negative[a * count + b] = 1 }
            }
        }
        let pairs = positive.reduce(0, +)
        guard pairs > 0, negative.contains(1) else { return nil }
        // F.normalize: x / max(‖x‖, 1e-12); clamping the squared norm keeps the gradient finite.
        let norms = try (embeddings * embeddings).sum(axes: [1], keepDims: true).clamp(1e-24, .greatestFiniteMagnitude).sqrt()
        let unit = try embeddings / norms
        let logits = try unit.matmul(unit, transposeB: true) / temperature
        let exponentials = logits.exp()
        let negativeSums = try (exponentials * Tensor(shape: [count, count], values: negative)).sum(axes: [1], keepDims: true)
        let perPair = try (exponentials + negativeSums).log() - logits
        return try (perPair * Tensor(shape: [count, count], values: positive)).sum() / pairs
    }

    /// A map min-max normalised to [0, 1] (CLoRA's `(e − e.min()) / (e.max() − e.min())`); a
    /// constant map becomes zeros (ours: the reference divides by zero).
    public static func minMaxNormalised(_ map: Tensor) throws -> Tensor {
        let high = try map.max()
        let low = try -(-map).max()
        return try (map - low) / (high - low).clamp(1e-12, .greatestFiniteMagnitude)
    }
}
