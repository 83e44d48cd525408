import Foundation
import Models
import Tensor

/// The model-level benchmark, the same work as the PyTorch peer (../shared/peer/torch_baseline.py):
/// a U-Net training step and forward pass on 2 clips × 8 frames of 16×16 latents, VAE encoding of
/// 8 frames, and sampling one clip with 25 DDIM steps and classifier-free guidance then decoding it.
/// The U-Net is the peer's `--arch`: diffusers' `UNet3DConditionModel` (unet3d) or AnimateDiff's
/// `UNetMotionModel` (animatediff), reached through `Denoiser` so both run the same timed code.
/// Weights are random: these are speed figures.
public struct ModelBenchmark {
    /// The peer's `--arch`.
    public enum Architecture: String, Codable, CaseIterable, Sendable {
        /// diffusers' `UNet3DConditionModel` (TextToVideoSDPipeline's U-Net).
        case unet3d
        /// diffusers' `UNetMotionModel` (AnimateDiffPipeline's U-Net): an image U-Net plus motion modules.
        case animatediff
    }

    /// The U-Net to time, by its config; `build()` makes it with random weights.
    public enum UNet: Sendable {
        case unet3d(UNet3DConfig)
        case animatediff(UNetMotionConfig)

        public var architecture: Architecture {
            switch self {
            case .unet3d: return .unet3d
            case .animatediff: return .animatediff
            }
        }

        /// The model with every parameter drawn from N(0, 0.02²) (seed 1); buffers keep their values.
        public func build() throws -> any Denoiser {
            let unet: any Denoiser
            switch self {
            case .unet3d(let config): unet = try UNet3DConditionModel(config: config)
            case .animatediff(let config): unet = try UNetMotionModel(config: config)
            }
            ModelBenchmark.randomize(unet, seed: 1)
            return unet
        }
    }

    public struct Report: Codable, Sendable {
        public var arch: Architecture
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
        /// The CPU (`BLAS.cpuModel`).
        public var cpuModel: String
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
    /// The peer's `--arch animatediff` U-Net, `UNetMotionModel.from_unet2d(UNet2DConditionModel(**TINY_UNET2D),
    /// MotionAdapter(**TINY_MOTION))`: TINY_UNET's channels and blocks as an image U-Net. Its
    /// `attention_head_dim` 8 with no `num_attention_heads` is diffusers' quirk for 8 heads per block.
    public static let referenceImageUNet = """
    {"sample_size": 16, "in_channels": 4, "out_channels": 4,
     "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
     "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
     "block_out_channels": [64, 128, 128], "layers_per_block": 1, "cross_attention_dim": 128,
     "attention_head_dim": 8, "norm_num_groups": 32}
    """
    public static let referenceMotionAdapter = """
    {"block_out_channels": [64, 128, 128], "motion_layers_per_block": 1, "motion_mid_block_layers_per_block": 1,
     "motion_num_attention_heads": 4, "motion_norm_num_groups": 32, "motion_max_seq_length": 32, "use_motion_mid_block": true}
    """

    public var unet: UNet
    public var vaeConfig: AutoencoderKLConfig
    public var clips = 2
    public var frames = 8
    public var contextLength = 16
    public var steps = 25
    public var repeats = 5

    public init(unet: UNet, vaeConfig: AutoencoderKLConfig) {
        self.unet = unet
        self.vaeConfig = vaeConfig
    }

    public init(unetConfig: UNet3DConfig, vaeConfig: AutoencoderKLConfig) {
        self.init(unet: .unet3d(unetConfig), vaeConfig: vaeConfig)
    }

    /// The peer's reference configuration for `arch` (without `--model`).
    public static func reference(_ arch: Architecture = .unet3d) throws -> ModelBenchmark {
        try ModelBenchmark(unet: referenceUNet(arch), vaeConfig: JSONDecoder().decode(AutoencoderKLConfig.self, from: Data(referenceVAE.utf8)))
    }

    /// The peer's U-Net for `arch`: TINY_UNET, or from_unet2d's config of TINY_UNET2D and TINY_MOTION.
    public static func referenceUNet(_ arch: Architecture) throws -> UNet {
        let decoder = JSONDecoder()
        switch arch {
        case .unet3d:
            return .unet3d(try decoder.decode(UNet3DConfig.self, from: Data(referenceUNet.utf8)))
        case .animatediff:
            let image = try decoder.decode(UNet2DConditionConfig.self, from: Data(referenceImageUNet.utf8))
            let adapter = try decoder.decode(MotionAdapterConfig.self, from: Data(referenceMotionAdapter.utf8))
            try image.validate(file: "reference UNet2DConditionModel")
            try adapter.validate(file: "reference MotionAdapter")
            try adapter.checkFits(image, file: "reference MotionAdapter")
            return .animatediff(UNetMotionConfig(image: image, adapter: adapter))
        }
    }

    /// The configs of a diffusers folder: `vae/config.json`, and `unet/config.json` as `arch`'s U-Net
    /// (animatediff: a `UNetMotionModel` config, or a `UNet2DConditionModel` config joined with
    /// `motion_adapter/config.json` as from_unet2d joins them). A config of another class is refused.
    public static func load(folder: String, arch: Architecture) throws -> ModelBenchmark {
        try ModelBenchmark(unet: loadUNet(folder: folder, arch: arch), vaeConfig: AutoencoderKLConfig.load(path: folder + "/vae/config.json"))
    }

    static func loadUNet(folder: String, arch: Architecture) throws -> UNet {
        let unetPath = folder + "/unet/config.json"
        switch arch {
        case .unet3d:
            return .unet3d(try UNet3DConfig.load(path: unetPath))
        case .animatediff:
            struct ClassName: Decodable { var _class_name: String? }
            guard let data = FileManager.default.contents(atPath: unetPath) else {
                throw ModelError.missingComponent(folder: folder, component: "unet/config.json")
            }
            let className = (try? JSONDecoder().decode(ClassName.self, from: data))?._class_name
            switch className {
            case "UNetMotionModel":
                return .animatediff(try UNetMotionConfig.load(path: unetPath))
            case "UNet2DConditionModel":
                let adapterPath = folder + "/motion_adapter/config.json"
                guard FileManager.default.fileExists(atPath: adapterPath) else {
                    throw ModelError.missingComponent(folder: folder, component: "motion_adapter/config.json (--arch animatediff joins an image U-Net with a motion adapter)")
                }
                let image = try UNet2DConditionConfig.load(path: unetPath)
                let adapter = try MotionAdapterConfig.load(path: adapterPath)
                try adapter.checkFits(image, file: adapterPath)
                return .animatediff(UNetMotionConfig(image: image, adapter: adapter))
            default:
                throw ModelError.badConfig(file: unetPath, key: "_class_name",
                                           reason: "\(className.map { "\"\($0)\"" } ?? "absent") is not an AnimateDiff U-Net (--arch animatediff needs UNetMotionModel, or UNet2DConditionModel with motion_adapter/); use --arch unet3d for a UNet3DConditionModel")
            }
        }
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
        let unet = try self.unet.build()
        let vae = try AutoencoderKL(config: vaeConfig)
        ModelBenchmark.randomize(vae, seed: 2)
        let side = unet.sampleSize?.perBlock(1).first ?? 16
        let contextDim = unet.crossAttentionDim
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

        return Report(arch: self.unet.architecture, threads: Parallel.threadCount, clips: clips, frames: frames,
                      unetParamsM: (Double(unet.parameterCount) / 1e4).rounded() / 100,
                      unetTrainStepMs: trainMs, unetForwardMs: forwardMs, vaeEncodeFramesMs: encodeMs,
                      sampleClipMs: sampleMs, samplePeakMemoryMB: peakMB, cpuModel: BLAS.cpuModel(), openblasCore: BLAS.coreName,
                      openblasThreadTimeout: BLAS.threadTimeout)
    }

    /// Peak resident set size of this process (Linux reports ru_maxrss in kilobytes).
    static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
