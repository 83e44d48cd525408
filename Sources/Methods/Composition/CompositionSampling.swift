import Diffusion
import Models
import Tensor

/// The parts of `TextToVideoPipeline.generate` the composition samplers repeat around their own
/// U-Net passes, so that they draw the same noise and step the same way as a plain render.
enum CompositionSampling {
    /// The scheduler set to `settings.steps` and the starting latents: `generator.normal(shape)` of
    /// `RandomGenerator(seed:)` times `init_noise_sigma`, the draws of `generate`.
    static func start(_ pipeline: TextToVideoPipeline, _ settings: CompositionSettings)
        throws -> (scheduler: any Scheduler, latents: Tensor, generator: RandomGenerator) {
        var generator = RandomGenerator(seed: settings.seed)
        var scheduler = settings.scheduler.make(config: pipeline.schedulerConfig)
        try scheduler.setTimesteps(settings.steps)
        let noise = generator.normal(pipeline.latentShape(frames: settings.frames))
        return (scheduler, noise * scheduler.initNoiseSigma, generator)
    }

    /// The factor `scaleModelInput` applies at `timestep` (1 for DDIM, 1/√(σ²+1) for Euler), read
    /// off a probe so that the model input can be formed with differentiable operations.
    static func inputScale(_ scheduler: any Scheduler, timestep: Float) throws -> Float {
        try scheduler.scaleModelInput(Tensor(repeating: 1, shape: [1]), timestep: timestep).item
    }

    /// A guidance step −η·∇ on the latents, taken in the U-Net's input space (latents · s):
    /// `latents − η·∇ / s²`. With DDIM s = 1 and this is the papers' update; with Euler
    /// s = 1/√(σ²+1), and a step on the raw latents would reach the model 1/s² weaker (σ = 4096 at
    /// t = 999 on a zero-terminal-SNR schedule).
    static func guidanceStep(_ latents: Tensor, gradient: Tensor, size: Float, scheduler: any Scheduler,
                             timestep: Float) throws -> Tensor {
        let scale = try inputScale(scheduler, timestep: timestep)
        return try Tensor.withoutGrad { try latents - gradient * (size / (scale * scale)) }
    }

    /// The U-Net input for `latents` `[1, …]`: twice (negative, positive) with guidance, scaled.
    static func modelInput(_ latents: Tensor, guidance: Bool, scale: Float) throws -> Tensor {
        let doubled = guidance ? try Tensor.concat([latents, latents], axis: 0) : latents
        return scale == 1 ? doubled : doubled * scale
    }

    /// uncond + g·(cond − uncond) for a prediction `[2, …]` holding (uncond, cond).
    static func guide(_ prediction: Tensor, scale: Float) throws -> Tensor {
        let halves = try prediction.chunked(2, axis: 0)
        return try halves[0] + (halves[1] - halves[0]) * scale
    }

    /// The text states of a pass: `[negative; positive]` with guidance, the positive alone without.
    static func textStates(negative: Tensor, positive: Tensor, guidance: Bool) throws -> Tensor {
        guidance ? try Tensor.concat([negative, positive], axis: 0) : positive
    }

    /// One scheduler step, noise (when the step wants some) drawn from `generator` as `generate` does.
    static func step(_ scheduler: any Scheduler, prediction: Tensor, timestep: Float, latents: Tensor,
                     generator: inout RandomGenerator) throws -> Tensor {
        var draws = generator
        defer { generator = draws }
        return try scheduler.step(modelOutput: prediction, timestep: timestep, sample: latents) { shape in
            draws.normal(shape)
        }.prevSample
    }
}

/// Sums of per-frame token maps over the denoising steps, for the heat maps.
struct TokenAttentionAccumulator {
    struct Key: Hashable {
        let concept: Int
        let prompt: String
        let position: Int
    }

    let grid: FeatureGrid
    private var sums: [Key: [Float]] = [:]
    private var counts: [Key: Int] = [:]
    private var order: [Key] = []

    init(grid: FeatureGrid) {
        self.grid = grid
    }

    /// Adds `map` `[F, H·W]` (no gradient is kept).
    mutating func add(concept: Int, prompt: String, position: Int, map: Tensor) {
        let key = Key(concept: concept, prompt: prompt, position: position)
        let values = map.values
        if var sum = sums[key] {
            for index in sum.indices { sum[index] += values[index] }
            sums[key] = sum
        } else {
            sums[key] = values
            order.append(key)
        }
        counts[key, default: 0] += 1
    }

    func maps(conceptNames: [String], tokenizer: CLIPTokenizer) -> [ConceptTokenAttention] {
        order.map { key in
            let sum = sums[key]!, count = Float(counts[key]!)
            let tokens = tokenizer(key.prompt).tokens
            let frames = sum.count / grid.count
            return ConceptTokenAttention(
                concept: conceptNames[key.concept], prompt: key.prompt, position: key.position,
                token: key.position < tokens.count ? tokens[key.position] : "?", grid: grid,
                frames: (0 ..< frames).map { frame in sum[frame * grid.count ..< (frame + 1) * grid.count].map { $0 / count } })
        }
    }
}
