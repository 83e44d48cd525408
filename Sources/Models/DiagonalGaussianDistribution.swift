import Tensor

/// diffusers' `DiagonalGaussianDistribution` (autoencoders/vae.py): the VAE posterior, its moments
/// split along channels, log-variance clamped to [-30, 20].
public struct DiagonalGaussianDistribution {
    public let mean: Tensor
    public let logvar: Tensor

    /// From the encoder's `[N, 2·latent, h, w]` moments.
    public init(moments: Tensor) throws {
        let halves = try moments.chunked(2, axis: 1)
        mean = halves[0]
        logvar = halves[1].clamp(-30, 20)
    }

    public init(mean: Tensor, logvar: Tensor) {
        self.mean = mean
        self.logvar = logvar.clamp(-30, 20)
    }

    public var std: Tensor { (logvar * 0.5).exp() }
    public var variance: Tensor { logvar.exp() }

    /// mean + std · noise, with `noise` a standard normal tensor of the mean's shape (drawn by the caller's seeded generator).
    public func sample(noise: Tensor) throws -> Tensor {
        guard noise.shape == mean.shape else {
            throw ModelError.badInput("posterior sample: noise shape \(noise.shape) differs from the latent shape \(mean.shape)")
        }
        return try mean + std * noise
    }

    /// The mode (diffusers' `mode()`): the mean.
    public var mode: Tensor { mean }

    /// KL divergence to the standard normal per sample, `[N]`: ½ Σ (μ² + σ² − 1 − log σ²).
    public func kl() throws -> Tensor {
        let terms = try (mean * mean + variance) - (logvar + 1)
        return try terms.sum(axes: [1, 2, 3]) * 0.5
    }
}
