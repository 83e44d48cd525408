import Tensor

/// diffusers' `AutoencoderKL` (autoencoders/autoencoder_kl.py): `encoder`, `decoder` and the 1×1
/// `quant_conv` / `post_quant_conv` (when `use_quant_conv` / `use_post_quant_conv`).
public final class AutoencoderKL: Module {
    public let config: AutoencoderKLConfig
    public let encoder: VAEEncoder
    public let decoder: VAEDecoder
    public let quantConv: Conv2d?
    public let postQuantConv: Conv2d?

    /// Builds the model with zero weights (load them with `loadWeights`); throws `badConfig` for
    /// layouts this implementation does not support.
    public init(config: AutoencoderKLConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        encoder = VAEEncoder(config: config)
        decoder = VAEDecoder(config: config)
        let latent = config.latentChannels
        quantConv = config.useQuantConv ? Conv2d(2 * latent, 2 * latent, kernelSize: 1) : nil
        postQuantConv = config.usePostQuantConv ? Conv2d(latent, latent, kernelSize: 1) : nil
        super.init()
        child("encoder", encoder)
        child("decoder", decoder)
        if let quantConv { child("quant_conv", quantConv) }
        if let postQuantConv { child("post_quant_conv", postQuantConv) }
        assignAttentionPaths()
    }

    /// Starts the posterior's log-variance at `value` everywhere: the half of the last moment-producing
    /// layer (`quant_conv`, or `encoder.conv_out` without it) that yields the log-variance gets zero
    /// weights and bias `value`. Freshly initialised, that half gives log-variances near 0, so a
    /// training autoencoder decodes latents buried in unit noise and can only shrink it at the
    /// optimizer's pace (about lr per step in the bias); starting near-deterministic (e.g. −10) lets
    /// the latents carry detail from the first step, and the KL term raises the variance where the
    /// decoder tolerates it.
    public func setInitialLogVariance(_ value: Float) {
        let layer = quantConv ?? encoder.convOut
        let latent = config.latentChannels
        precondition(layer.outChannels == 2 * latent, "the moments layer yields mean and log-variance, 2 × \(latent) channels")
        let rowCount = layer.weight.count / layer.outChannels
        (layer.weight.data + latent * rowCount).update(repeating: 0, count: latent * rowCount)
        if let bias = layer.bias { (bias.data + latent).update(repeating: value, count: latent) }
    }

    /// Images `[N, in_channels, H, W]` in [-1, 1] → the posterior's mean and (clamped) log-variance,
    /// each `[N, latent, H/2^(blocks-1), W/2^(blocks-1)]` (sides rounded up when not multiples).
    public func encode(_ images: Tensor) throws -> (mean: Tensor, logvar: Tensor) {
        let posterior = try encodeDistribution(images)
        return (posterior.mean, posterior.logvar)
    }

    /// The posterior as diffusers returns it (`encode(x).latent_dist`).
    public func encodeDistribution(_ images: Tensor, context: ForwardContext = ForwardContext()) throws -> DiagonalGaussianDistribution {
        guard images.rank == 4, images.shape[1] == config.inChannels else {
            throw ModelError.badInput("VAE encode: expected images [N, \(config.inChannels), H, W], got \(images.shape)")
        }
        let encode = { (images: Tensor) throws -> Tensor in
            let moments = try self.encoder(images, context: context)
            return try self.quantConv.map { try $0(moments) } ?? moments
        }
        // Inference runs its images in one group per engine thread (see `inferInGroups`).
        let moments = try inferInGroups(self, images: images, context: context, encode) ?? encode(images)
        return try DiagonalGaussianDistribution(moments: moments)
    }

    /// Latents `[N, latent, h, w]` (unscaled: divide by `scalingFactor` first, see `unscaleLatents`)
    /// → images `[N, out_channels, h·2^(blocks-1), w·2^(blocks-1)]`, nominally in [-1, 1].
    public func decode(_ latents: Tensor, context: ForwardContext = ForwardContext()) throws -> Tensor {
        guard latents.rank == 4, latents.shape[1] == config.latentChannels else {
            throw ModelError.badInput("VAE decode: expected latents [N, \(config.latentChannels), h, w], got \(latents.shape)")
        }
        let decode = { (latents: Tensor) throws -> Tensor in
            try self.decoder(self.postQuantConv.map { try $0(latents) } ?? latents, context: context)
        }
        return try inferInGroups(self, images: latents, context: context, decode) ?? decode(latents)
    }

    /// Latents as the diffusion model sees them: (z − shift_factor) · scaling_factor (pipelines' convention).
    public func scaleLatents(_ latents: Tensor) -> Tensor {
        let shift = config.shiftFactor ?? 0
        return latents.affine(scale: config.scalingFactor, shift: -shift * config.scalingFactor)
    }

    /// The inverse of `scaleLatents`: z / scaling_factor + shift_factor, ready for `decode`.
    public func unscaleLatents(_ latents: Tensor) -> Tensor {
        latents.affine(scale: 1 / config.scalingFactor, shift: config.shiftFactor ?? 0)
    }
}
