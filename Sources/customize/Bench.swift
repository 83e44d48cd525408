import ArgumentParser
import Evaluation
import Foundation
import Diffusion
import Methods
import Models
import Tensor

/// `customize bench …`: speed figures measured in one run, as ratios to baselines from the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed: the tensor engine's hot paths, and the model's training and sampling.",
        discussion: """
        Examples:
          customize bench engine --json
          customize bench model --threads 2 --json
          customize bench motion --json
        """,
        subcommands: [BenchEngine.self, BenchModel.self, BenchMotion.self])
}

struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads for the engine and OpenBLAS (default: all cores).")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
            Parallel.threadCount = threads
        } else {
            Parallel.threadCount = Parallel.threadCount
        }
    }
}

struct BenchEngine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "GFLOP/s and GB/s of sgemm, conv, attention, linear, element-wise and norm kernels.",
        discussion: "Example: customize bench engine --json")

    @OptionGroup var threadOptions: ThreadOptions
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per case (the median is reported).") var repeats = 5

    func run() throws {
        try threadOptions.apply()
        let benchmark = EngineBenchmark(repeats: max(1, repeats))
        let report = try benchmark.run { stage in
            if !json { FileHandle.standardError.write("bench engine: \(stage)…\n") }
        }
        if json { return try printJSON(report) }
        print("CPU: \(report.cpuModel)")
        print("OpenBLAS core: \(report.openblasCore)   \(threadTimeoutText(report.openblasThreadTimeout))   threads: \(report.threads)   "
              + "sgemm check: max rel. error \(report.sgemmMaxRelativeError)")
        print("case".padding(toLength: 68, withPad: " ", startingAt: 0) + "      ms   throughput   fraction   bar")
        for r in report.results {
            let fraction = r.fractionOfBaseline.map { String(format: "%5.2f", $0) } ?? "     "
            let bar = r.bar.map { String(format: "≥%.1f %@", $0, (r.fractionOfBaseline ?? 0) >= $0 ? "ok" : "MISSED") } ?? ""
            print(r.name.padding(toLength: 68, withPad: " ", startingAt: 0)
                  + String(format: "%8.3f  %7.1f %@  %@      %@", r.milliseconds, r.throughput, r.unit, fraction, bar))
        }
    }
}

struct BenchModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "U-Net training step and forward, VAE encoding and clip sampling, as the PyTorch peer measures them.",
        discussion: """
        The same work as ../shared/peer/torch_baseline.py: 2 clips × 8 frames of 16×16 latents through the \
        U-Net (block_out_channels [64,128,128], layers_per_block 1, cross_attention_dim 128), VAE encoding \
        of 8 frames, and one clip sampled with 25 DDIM steps and guidance, then decoded. Weights are \
        random. Run the peer with the same --arch in the same session to compare ratios.

        --arch unet3d (default): diffusers' UNet3DConditionModel, attention_head_dim 32. --arch animatediff: \
        AnimateDiff's UNetMotionModel, from_unet2d of an image UNet2DConditionModel with the same channels \
        and blocks (8 heads per block) and a MotionAdapter (one motion module per layer, 4 heads, a motion \
        mid block). With --model, --arch animatediff reads unet/config.json as a UNetMotionModel, or a \
        UNet2DConditionModel joined with motion_adapter/config.json.

        Examples:
          customize bench model --threads 2 --json
          customize bench model --arch animatediff --threads 2 --json
        """)

    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "The U-Net: unet3d (UNet3DConditionModel) or animatediff (UNetMotionModel), as the peer's --arch.",
            transform: { value in
                guard let arch = ModelBenchmark.Architecture(rawValue: value) else {
                    throw ValidationError("expected one of \(ModelBenchmark.Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return arch
            })
    var arch: ModelBenchmark.Architecture = .unet3d
    @Option(help: "A diffusers model folder whose unet/ and vae/ configs to use instead of the reference config.")
    var model: String?
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per case (the median is reported; sampling uses half).") var repeats = 5

    func run() throws {
        try threadOptions.apply()
        var benchmark = try ModelBenchmark.reference(arch)
        if let model {
            benchmark = try ModelBenchmark.load(folder: model, arch: arch)
        }
        benchmark.repeats = max(1, repeats)
        let report = try benchmark.run { stage in
            if !json { FileHandle.standardError.write("bench model: \(stage)…\n") }
        }
        if json { return try printJSON(report) }
        print("CPU: \(report.cpuModel)")
        print("arch: \(report.arch.rawValue)   OpenBLAS core: \(report.openblasCore)   \(threadTimeoutText(report.openblasThreadTimeout))   threads: \(report.threads)   U-Net parameters: \(report.unetParamsM) M")
        print(String(format: "unet_train_step_ms    %9.1f", report.unetTrainStepMs))
        print(String(format: "unet_forward_ms       %9.1f", report.unetForwardMs))
        print(String(format: "vae_encode_frames_ms  %9.1f", report.vaeEncodeFramesMs))
        print(String(format: "sample_clip_ms        %9.1f   (peak memory %.0f MB)", report.sampleClipMs, report.samplePeakMemoryMB))
    }
}

/// Prints a report as one JSON object with snake_case keys (the peer script's style).
func printJSON<Report: Encodable>(_ report: Report) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    print(String(decoding: try encoder.encode(report), as: UTF8.self))
}

struct BenchMotion: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "motion",
        abstract: "One step of each MotionDirector path (spatial, temporal) and a whole training step on the shipped-size model.",
        discussion: """
        The U-Net of --model (default samples/base) with its weights, or, when that folder is absent, the \
        built-in pretrain config's U-Net (customize pretrain --print-config) randomly initialised; one clip \
        of 8 latent frames at the U-Net's sample size; LoRAs of rank 32 with dropout 0.1. Each figure is a \
        forward pass, a backward pass and an AdamW update, the median of --repeats runs.

        Example: customize bench motion --threads 2 --json
        """)

    @OptionGroup var threadOptions: ThreadOptions
    @Option(help: "A diffusers folder whose U-Net to time (used when it exists).") var model = SamplesFolder.path("base")
    @Option(help: "Latent frames of the clip.") var frames = 8
    @Option(help: "LoRA rank.") var rank = 32
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Option(help: "Timed repeats per case (the median is reported).") var repeats = 3

    func validate() throws {
        guard frames >= 2 else { throw ValidationError("--frames must be at least 2, got \(frames)") }
        guard rank >= 1 else { throw ValidationError("--rank must be at least 1, got \(rank)") }
    }

    func run() throws {
        try threadOptions.apply()
        let unet: any Denoiser, scheduler: SchedulerConfig, trained: Bool
        if FileManager.default.fileExists(atPath: (model as NSString).appendingPathComponent("model_index.json")) {
            let pipeline = try TextToVideoPipeline.load(folder: model)
            (unet, scheduler, trained) = (pipeline.unet, pipeline.schedulerConfig, true)
        } else {
            let config = PretrainConfig()
            let fresh = try UNet3DConditionModel(config: config.unet)
            try fresh.initializeParameters(generator: RandomGenerator(seed: config.seed).derived(2))
            unet = fresh
            (scheduler, trained) = (config.scheduler, false)
            if !json { FileHandle.standardError.write("bench motion: \(model) is absent; timing the built-in config's U-Net, randomly initialised\n") }
        }
        var benchmark = MotionDirectorBenchmark(unet: unet, schedulerConfig: scheduler, trainedWeights: trained)
        benchmark.frames = frames
        benchmark.rank = rank
        benchmark.repeats = max(1, repeats)
        let report = try benchmark.run { stage in
            if !json { FileHandle.standardError.write("bench motion: \(stage)…\n") }
        }
        if json { return try printJSON(report) }
        print("threads: \(report.threads)   U-Net parameters: \(report.unetParamsM) M (\(report.trainedWeights ? "trained" : "random") weights)   "
              + "LoRA rank \(report.rank): temporal \(report.temporalLoraParamsM) M, spatial \(report.spatialLoraParamsM) M")
        print("clip: \(report.frames) frames of \(report.latentHeight)x\(report.latentWidth) latents")
        print(String(format: "spatial_step_ms    %9.1f", report.spatialStepMs))
        print(String(format: "temporal_step_ms   %9.1f", report.temporalStepMs))
        print(String(format: "training_step_ms   %9.1f", report.trainingStepMs))
    }
}

/// OPENBLAS_THREAD_TIMEOUT as a bench table prints it.
func threadTimeoutText(_ timeout: Int?) -> String {
    "idle spin: " + (timeout.map { "2^\($0) cycles" } ?? "OpenBLAS default")
}
