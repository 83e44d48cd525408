import Adapters
import Diffusion
import Foundation
import Models
import Tensor

/// Times MotionDirector's two paths on a given U-Net (`customize bench motion`): each path's forward,
/// backward and AdamW update as a training step runs them, on one clip of `frames` latent frames, with
/// the default rank and dropout. Medians of `repeats` runs after one warm-up.
public struct MotionDirectorBenchmark {
    public struct Report: Codable, Sendable {
        public var threads: Int
        public var frames: Int
        public var latentHeight: Int
        public var latentWidth: Int
        public var rank: Int
        public var unetParamsM: Double
        public var temporalLoraParamsM: Double
        public var spatialLoraParamsM: Double
        /// One frame through the U-Net with the clip's spatial LoRA, backward, update.
        public var spatialStepMs: Double
        /// The whole clip with the temporal LoRA and the frozen spatial LoRA, debiased loss, backward, update.
        public var temporalStepMs: Double
        /// A whole training step: both paths as `MotionDirectorStep` runs them, and the update.
        public var trainingStepMs: Double
        /// Whether the U-Net's weights came from a model folder (false: randomly initialised).
        public var trainedWeights: Bool
    }

    public let unet: any Denoiser
    public let schedulerConfig: SchedulerConfig
    public var trainedWeights: Bool
    public var frames = 8
    public var rank = 32
    public var repeats = 3

    public init(unet: any Denoiser, schedulerConfig: SchedulerConfig, trainedWeights: Bool) {
        self.unet = unet
        self.schedulerConfig = schedulerConfig
        self.trainedWeights = trainedWeights
    }

    public func run(progress: (String) -> Void = { _ in }) throws -> Report {
        var config = MotionDirectorConfig()
        config.loraRank = rank
        config.trainData.sampleFrames = frames
        config.spatialLoRAOffProbability = 0
        let adapters = try MotionDirectorAdapters(unet: unet, spatialCount: 1, temporal: true,
                                                  config: LoRAConfig(rank: rank, dropout: config.loraDropout),
                                                  generator: RandomGenerator(seed: 1))
        let spatial = adapters.spatialNames[0]
        let temporalParameters = try adapters.set.parameters(of: MotionDirectorAdapters.temporalName).map(\.tensor)
        let spatialParameters = try adapters.set.parameters(of: spatial).map(\.tensor)
        let optimizer = try AdamW(groups: [ParameterGroup(parameters: temporalParameters, learningRate: config.learningRate),
                                           ParameterGroup(parameters: spatialParameters, learningRate: config.learningRate)],
                                  weightDecay: config.weightDecay(clips: 1))
        let height = unet.sampleSize?.perBlock(1).first ?? 16
        let width = unet.sampleSize?.perBlock(2).last ?? height
        var generator = RandomGenerator(seed: 2)
        let clip = MotionTrainingClip(name: "bench", caption: "", latents: generator.normal([1, unet.inChannels, frames, height, width]),
                                      flippedLatents: nil)
        let text = generator.normal([1, 40, unet.crossAttentionDim])
        let scheduler = DDPMScheduler(config: schedulerConfig)
        let noisy = generator.normal(clip.latents.shape)
        let target = generator.normal(clip.latents.shape)
        try adapters.set.setTraining(generator: RandomGenerator(seed: 3))

        func update() throws {
            try optimizer.step()
            optimizer.zeroGrad()
        }

        progress("spatial path")
        let spatialMs = try EngineBenchmark.medianMilliseconds(repeats: repeats) {
            try adapters.configureSpatialPath(spatial)
            var dropout = generator.derived(1)
            let prediction = try unet(sample: noisy.slice(axis: 2, 0 ..< 1), timesteps: [500], encoderHiddenStates: text,
                                      dropoutGenerator: &dropout)
            try Tensor.mseLoss(prediction, target.slice(axis: 2, 0 ..< 1)).backward()
            try update()
        }

        progress("temporal path")
        let temporalMs = try EngineBenchmark.medianMilliseconds(repeats: repeats) {
            try adapters.configureTemporalPath(spatial: spatial)
            var dropout = generator.derived(2)
            let prediction = try unet(sample: noisy, timesteps: [500], encoderHiddenStates: text, dropoutGenerator: &dropout)
            try AppearanceDebiasedLoss.temporalLoss(prediction: prediction, target: target, beta: 1, anchor: 0).backward()
            try update()
        }

        progress("training step")
        let step = MotionDirectorStep(unet: unet, adapters: adapters, scheduler: scheduler, config: config)
        var index = 0
        let stepMs = try EngineBenchmark.medianMilliseconds(repeats: repeats) {
            var random = RandomGenerator(seed: 4).derived(UInt64(index))
            index += 1
            try step.run(clip: clip, spatialAdapter: spatial, textStates: text, step: index, random: &random).loss.backward()
            try update()
        }
        try adapters.set.setTraining(generator: nil)

        func millions(_ tensors: [Tensor]) -> Double { (Double(tensors.reduce(0) { $0 + $1.count }) / 1e4).rounded() / 100 }
        return Report(threads: Parallel.threadCount, frames: frames, latentHeight: height, latentWidth: width, rank: rank,
                      unetParamsM: (Double(unet.parameterCount) / 1e4).rounded() / 100,
                      temporalLoraParamsM: millions(temporalParameters), spatialLoraParamsM: millions(spatialParameters),
                      spatialStepMs: spatialMs, temporalStepMs: temporalMs, trainingStepMs: stepMs, trainedWeights: trainedWeights)
    }
}
