import Foundation
import Models
import Tensor

/// The model-level benchmark, the same work as the PyTorch peer (../shared/peer/torch_baseline.py):
/// a U-Net training step and forward pass on 2 clips × 8 frames of 16×16 latents, VAE encoding of
/// 8 frames, and sampling one clip with 25 DDIM steps and classifier-free guidance then decoding it.
/// Weights are random: these are speed figures.
public struct ModelBenchmark {
    public struct Report: Codable, Sendable {
        public var threads: Int
        public var clips: Int
        public var frames: Int
        public var unetParamsM: Double
        public var unetTrainStepMs: Double
        public var unetForwardMs: Double
        public var vaeEncodeFramesMs: Double
        public var sampleClipMs: Double
        /// Peak resident memory of the process after sampling (before training runs), in MB.
        public var samplePeakMemoryMB: Double
        public var openblasCore: String
        /// OPENBLAS_THREAD_TIMEOUT as the library read it (nil: unset, its default).
        public var openblasThreadTimeout: Int?
    }

    /// The peer's reference configuration (TINY_UNET / TINY_VAE).
    public static let referenceUNet = """
    {"sample_size": 16, "in_channels": 4, "out_channels": 4,
     "down_block_types": ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
     "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
     "block_out_channels": [64, 128, 128], "layers_per_block": 1, "cross_attention_dim": 128,
     "attention_head_dim": 32, "norm_num_groups": 32}
    """
    public static let referenceVAE = """
    {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
     "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "block_out_channels": [32, 64, 64],
     "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 32, "sample_size": 64}
    """

    public var unetConfig: UNet3DConfig
    public var vaeConfig: AutoencoderKLConfig
    public var clips = 2
    public var frames = 8
    public var contextLength = 16
    public var steps = 25
    public var repeats = 5

    public init(unetConfig: UNet3DConfig, vaeConfig: AutoencoderKLConfig) {
        self.unetConfig = unetConfig
        self.vaeConfig = vaeConfig
    }

    public static func reference() throws -> ModelBenchmark {
        ModelBenchmark(unetConfig: try JSONDecoder().decode(UNet3DConfig.self, from: Data(referenceUNet.utf8)),
                       vaeConfig: try JSONDecoder().decode(AutoencoderKLConfig.self, from: Data(referenceVAE.utf8)))
    }

    func medianMilliseconds(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        try EngineBenchmark.medianMilliseconds(repeats: repeats, body)
    }

    /// Fills every parameter with small normal values (zero weights would make the work degenerate).
    static func randomize(_ module: Module, seed: UInt64) {
        var generator = RandomGenerator(seed: seed)
        for (_, tensor) in module.namedParameters() {
            let values = generator.normal(tensor.shape, mean: 0, std: 0.02)
            tensor.data.update(from: values.data, count: tensor.count)
        }
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        let unet = try UNet3DConditionModel(config: unetConfig)
        let vae = try AutoencoderKL(config: vaeConfig)
        ModelBenchmark.randomize(unet, seed: 1)
        ModelBenchmark.randomize(vae, seed: 2)
        let side = unetConfig.sampleSize?.perBlock(1).first ?? 16
        let contextDim = unetConfig.crossAttentionDim
        var generator = RandomGenerator(seed: 0)

        // Sampling first, so the peak memory it reports is sampling's alone.
        progress("sample clip")
        var scheduler = DDIMScheduler(config: {
            var config = SchedulerConfig()
            config.betaSchedule = .scaledLinear
            config.betaStart = 0.00085
            config.betaEnd = 0.012
            return config
        }())
        let context2 = generator.normal([2, contextLength, contextDim])
        let scaling = vaeConfig.scalingFactor
        let sampleMs = try Tensor.withoutGrad {
            try medianMilliseconds(max(1, repeats / 2)) {
                try scheduler.setTimesteps(steps)
                var z = generator.normal([1, 4, frames, side, side])
                for t in scheduler.timesteps {
                    let e = try unet(sample: Tensor.concat([z, z], axis: 0), timesteps: [t, t], encoderHiddenStates: context2)
                    let halves = try e.chunked(2, axis: 0)
                    let guided = try halves[0] + (halves[1] - halves[0]) * 7.5
                    z = try scheduler.step(modelOutput: guided, timestep: t, sample: z, noise: nil).prevSample
                }
                let perFrame = try z.reshaped([4, frames, side, side]).permuted([1, 0, 2, 3]) * (1 / scaling)
                _ = try vae.decode(perFrame)
            }
        }
        let peakMB = ModelBenchmark.peakResidentMB()

        progress("unet train step")
        let x = generator.normal([clips, 4, frames, side, side])
        let context = generator.normal([clips, contextLength, contextDim])
        let timesteps = (0..<clips).map { Float(($0 * 397 + 101) % 1000) }
        unet.setRequiresGrad(true)
        let trainMs = try medianMilliseconds(repeats) {
            for (_, p) in unet.namedParameters() { p.grad = nil }
            let out = try unet(sample: x, timesteps: timesteps, encoderHiddenStates: context)
            try out.pow(2).mean().backward()
        }
        unet.setRequiresGrad(false)

        progress("unet forward")
        let forwardMs = try Tensor.withoutGrad {
            try medianMilliseconds(repeats) {
                _ = try unet(sample: x, timesteps: timesteps, encoderHiddenStates: context)
            }
        }

        progress("vae encode")
        let images = generator.normal([frames, 3, side * 4, side * 4])
        let encodeMs = try Tensor.withoutGrad {
            try medianMilliseconds(repeats) {
                let distribution = try vae.encodeDistribution(images)
                _ = try distribution.sample(noise: generator.normal(distribution.mean.shape))
            }
        }

        return Report(threads: Parallel.threadCount, clips: clips, frames: frames,
                      unetParamsM: (Double(unet.parameterCount) / 1e4).rounded() / 100,
                      unetTrainStepMs: trainMs, unetForwardMs: forwardMs, vaeEncodeFramesMs: encodeMs,
                      sampleClipMs: sampleMs, samplePeakMemoryMB: peakMB, openblasCore: BLAS.coreName,
                      openblasThreadTimeout: BLAS.threadTimeout)
    }

    /// Peak resident set size of this process (Linux reports ru_maxrss in kilobytes).
    static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
