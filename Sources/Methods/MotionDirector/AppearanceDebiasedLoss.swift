import Tensor

/// MotionDirector's temporal objective (`MotionDirector_train.py`, `finetune_unet`):
///
///     L = MSE(ε̂, ε) + MSE(φ(ε̂), φ(ε)),   φ(e) = sqrt(β² + 1)·e − β·e[:, :, anchor]
///
/// over predictions and targets `[B, C, F, H, W]`, with `anchor` a frame of the same clip. Subtracting
/// one frame from every frame removes what all frames share (the look), so the debiased term weighs
/// the change between frames; sqrt(β² + 1) keeps the per-frame noise at unit variance. With β = 0,
/// φ is the identity and the debiased term is plain MSE.
public enum AppearanceDebiasedLoss {
    /// φ(e) = sqrt(β² + 1)·e − β·e[:, :, anchor] (the anchor frame broadcast over the frame axis).
    public static func debias(_ e: Tensor, beta: Float, anchor: Int) throws -> Tensor {
        guard e.rank == 5, (0..<e.shape[2]).contains(anchor) else {
            throw TensorError.invalidArgument(op: "AppearanceDebiasedLoss.debias",
                reason: "needs [batch, channels, frames, height, width] and an anchor frame among them, got \(e.shape) and anchor \(anchor)")
        }
        let anchorFrame = try e.slice(axis: 2, anchor ..< anchor + 1)
        return try e * (beta * beta + 1).squareRoot() - anchorFrame * beta
    }

    /// The debiased term alone: MSE(φ(prediction), φ(target)).
    public static func debiasedTerm(prediction: Tensor, target: Tensor, beta: Float, anchor: Int) throws -> Tensor {
        try Tensor.mseLoss(debias(prediction, beta: beta, anchor: anchor), debias(target, beta: beta, anchor: anchor))
    }

    /// The whole temporal loss: MSE(prediction, target) + MSE(φ(prediction), φ(target)).
    public static func temporalLoss(prediction: Tensor, target: Tensor, beta: Float, anchor: Int) throws -> Tensor {
        try Tensor.mseLoss(prediction, target) + debiasedTerm(prediction: prediction, target: target, beta: beta, anchor: anchor)
    }
}
