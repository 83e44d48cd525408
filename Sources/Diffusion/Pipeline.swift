import Checkpoints
import Foundation
import Models
import Tensor

/// What `TextToVideoPipeline.generate` returns.
public struct GeneratedVideo {
    /// The final latents `[1, latent_channels, F, h, w]`, before the VAE (scaled as the U-Net sees them).
    public var latents: Tensor
    /// One image `[3, H, W]` per frame, values in [-1, 1].
    public var frames: [Tensor]

    public init(latents: Tensor, frames: [Tensor]) {
        self.latents = latents
        self.frames = frames
    }
}

/// diffusers' `TextToVideoSDPipeline` (pipelines/text_to_video_synthesis/pipeline_text_to_video_synth.py)
/// and `AnimateDiffPipeline` (pipelines/animatediff/pipeline_animatediff.py), which sample alike:
/// prompt → CLIP tokenizer → CLIP text encoder → scheduler loop over the denoiser (a UNet3D, or
/// AnimateDiff's UNetMotionModel, or an image UNet2DConditionModel for pictures) with
/// classifier-free guidance → VAE decode per frame. One frame from a UNetMotionModel is drawn by
/// its image U-Net alone, as `StableDiffusionPipeline` would draw it.
///
/// Sampling mirrors diffusers' `__call__`: the starting noise `[1, C, F, h, w]` (h, w = the U-Net's
/// `sample_size`) is scaled by the scheduler's `init_noise_sigma`; with guidance above 1 the
/// unconditional (negative, by default the empty prompt) and conditional passes run as one U-Net
/// batch of two, combined as uncond + g·(cond − uncond); latents are divided by the VAE's
/// `scaling_factor` before decoding. Every random draw comes from one `RandomGenerator(seed:)`, so
/// the same request gives the same bytes (at one thread count: OpenBLAS's sgemm itself rounds
/// differently single- and multi-threaded).
public final class TextToVideoPipeline {
    /// The guidance scale every command and evaluation uses unless told otherwise: 5, chosen on
    /// the shipped base (a v-prediction model with zero terminal SNR, which higher scales
    /// oversaturate). Its 40 held-out core prompts (`customize eval base --core --prompts 40`) read
    /// colour 0.95/0.93/0.93/0.80/0.70 and shape 0.90/0.93/0.83/0.78/0.63 at guidance 4/5/6/7.5/9,
    /// the motion direction 1.0 at each; 9 (ModelScope's default) was the old base's.
    public static let defaultGuidance: Float = 5

    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: any Denoiser
    public let vae: AutoencoderKL
    /// scheduler/scheduler_config.json; `generate` builds the chosen scheduler from it (as
    /// diffusers' `Scheduler.from_config(pipe.scheduler.config)`).
    public var schedulerConfig: SchedulerConfig
    /// The tokenizer folder's files, kept to save the pipeline again.
    public var tokenizerFiles: [String: Data]
    /// Applied by `generate` to the conditional prompt's text states (not to the negative prompt's):
    /// DECOR's projection hooks in here, set by the caller, so the pipeline knows no method.
    public var conditionalTextTransform: (@Sendable (Tensor) throws -> Tensor)?

    public init(tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, unet: any Denoiser, vae: AutoencoderKL,
                schedulerConfig: SchedulerConfig, tokenizerFiles: [String: Data] = [:]) throws {
        guard textEncoder.config.hiddenSize == unet.crossAttentionDim else {
            throw ModelError.badInput("the text encoder's hidden_size \(textEncoder.config.hiddenSize) does not match the U-Net's cross_attention_dim \(unet.crossAttentionDim)")
        }
        guard vae.config.latentChannels == unet.inChannels, unet.outChannels == unet.inChannels else {
            throw ModelError.badInput("the VAE's latent_channels \(vae.config.latentChannels) do not match the U-Net's in_channels \(unet.inChannels) and out_channels \(unet.outChannels)")
        }
        guard tokenizer.maxLength <= textEncoder.config.maxPositionEmbeddings else {
            throw ModelError.badInput("the tokenizer's model_max_length \(tokenizer.maxLength) exceeds the text encoder's max_position_embeddings \(textEncoder.config.maxPositionEmbeddings)")
        }
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.vae = vae
        self.schedulerConfig = schedulerConfig
        self.tokenizerFiles = tokenizerFiles
    }

    /// Loads a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/;
    /// AnimateDiff's motion_adapter/ where its unet/ is an image U-Net). `motionAdapter`, a
    /// `MotionAdapter` folder, joins an image U-Net (or replaces a UNetMotionModel's modules), as
    /// AnimateDiff users combine them.
    public static func load(folder path: String, motionAdapter: String? = nil) throws -> TextToVideoPipeline {
        let folder = try DiffusersFolder(path: path)
        let scheduler = try folder.schedulerConfig()
        var schedulerConfig = try SchedulerConfig.load(path: scheduler.path)
        if schedulerConfig.className == nil { schedulerConfig.className = scheduler.className }
        return try TextToVideoPipeline(tokenizer: folder.loadTokenizer(), textEncoder: folder.loadTextEncoder(),
                                       unet: folder.loadUNet(motionAdapter: motionAdapter), vae: folder.loadVAE(),
                                       schedulerConfig: schedulerConfig,
                                       tokenizerFiles: folder.tokenizerFiles())
    }

    /// Saves the pipeline as a diffusers folder with weights stored as `dtype` (F32, F16 or BF16).
    public func save(to path: String, dtype: SafeTensors.DType = .f32, overwrite: Bool = false) throws {
        guard !tokenizerFiles.isEmpty else {
            throw ModelError.missingComponent(folder: path, component: "tokenizer files (this pipeline was built without them)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var json = try encoder.encode(schedulerConfig)
        json.append(UInt8(ascii: "\n"))
        let contents = DiffusersFolderContents(unet: unet, vae: vae, textEncoder: textEncoder, tokenizerFiles: tokenizerFiles,
                                               schedulerClassName: schedulerConfig.className ?? SchedulerKind.ddim.rawValue,
                                               schedulerConfigJSON: json)
        try DiffusersFolderWriter.write(contents, to: path, dtype: dtype, overwrite: overwrite)
    }

    /// The latent height and width: the U-Net's `sample_size` (diffusers' default height is
    /// `sample_size · vae_scale_factor` pixels).
    public var latentSize: (height: Int, width: Int) { unet.latentSize() }

    /// The shape of the latents for `frames` frames: `[1, in_channels, frames, h, w]`.
    public func latentShape(frames: Int) -> [Int] {
        [1, unet.inChannels, frames, latentSize.height, latentSize.width]
    }

    /// CLIP's last hidden states `[1, L, hidden]` for `prompt`, padded (and truncated) to the
    /// tokenizer's maximum length, as diffusers' `encode_prompt`.
    public func encodePrompt(_ prompt: String) throws -> Tensor {
        try Tensor.withoutGrad { try textEncoder([tokenizer(prompt).ids]) }
    }

    /// Generates `frames` frames for `prompt`.
    /// - Parameters:
    ///   - negative: the unconditional prompt of classifier-free guidance ("" as diffusers' default).
    ///   - guidance: the guidance scale; at 1 or below only the conditional pass runs (diffusers'
    ///     `do_classifier_free_guidance`).
    ///   - scheduler: which sampler runs over the folder's scheduler config (DDIM with eta 0, Euler
    ///     without churn, or DDPM).
    ///   - initialLatents: the starting noise `[1, C, frames, h, w]` instead of a draw from `seed`;
    ///     like diffusers' `latents=` it is still multiplied by `init_noise_sigma`.
    ///   - progress: called after each denoising step with (steps done, total steps).
    public func generate(prompt: String, negative: String = "", frames: Int = 8, steps: Int = 25, guidance: Float = TextToVideoPipeline.defaultGuidance,
                         seed: UInt64 = 0, scheduler kind: SchedulerKind = .ddim, initialLatents: Tensor? = nil,
                         progress: ((Int, Int) -> Void)? = nil) throws -> GeneratedVideo {
        try checkFrames(frames)
        guard steps >= 1 else { throw ModelError.badInput("steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw ModelError.badInput("guidance must be a finite number, got \(guidance)") }
        let shape = latentShape(frames: frames)
        if let initialLatents, initialLatents.shape != shape {
            throw ModelError.badInput("initial latents must be \(shape) for \(frames) frames, got \(initialLatents.shape)")
        }
        return try Tensor.withoutGrad {
            var generator = RandomGenerator(seed: seed)
            var scheduler = kind.make(config: schedulerConfig)
            try scheduler.setTimesteps(steps)
            let useGuidance = guidance > 1
            let encoded = try encodePrompt(prompt)
            let conditional = try conditionalTextTransform.map { try $0(encoded) } ?? encoded
            let textStates = useGuidance ? try Tensor.concat([encodePrompt(negative), conditional], axis: 0) : conditional

            let noise = initialLatents ?? generator.normal(shape)
            var latents = noise * scheduler.initNoiseSigma
            let timesteps = scheduler.timesteps
            for (index, timestep) in timesteps.enumerated() {
                let modelInput = try scheduler.scaleModelInput(useGuidance ? Tensor.concat([latents, latents], axis: 0) : latents,
                                                               timestep: timestep)
                let prediction = try unet(sample: modelInput, timesteps: [timestep], encoderHiddenStates: textStates)
                let guided = useGuidance ? try Self.guide(prediction, scale: guidance) : prediction
                let step = try scheduler.step(modelOutput: guided, timestep: timestep, sample: latents) { shape in
                    generator.normal(shape)
                }
                latents = step.prevSample
                progress?(index + 1, timesteps.count)
            }
            return GeneratedVideo(latents: latents, frames: try decode(latents))
        }
    }

    /// Throws unless the denoiser can make `frames` frames in one pass: at least one; one only for an
    /// image U-Net (it has nothing that relates frames); at most `motion_max_seq_length` for AnimateDiff.
    public func checkFrames(_ frames: Int) throws {
        guard frames >= 1 else { throw ModelError.badInput("frames must be at least 1, got \(frames)") }
        if !unet.isVideoModel, frames > 1 {
            throw ModelError.badInput("\(frames) frames: this model's U-Net (\(unet.className)) draws pictures only; use 1 frame, or add a motion adapter (--motion-adapter DIR)")
        }
        if let limit = unet.maxFrames, frames > limit {
            throw ModelError.badInput("\(frames) frames: this model's motion modules cover at most \(limit) frames (motion_max_seq_length in unet/config.json)")
        }
    }

    /// uncond + g·(cond − uncond) for a prediction batch `[2, …]` holding (uncond, cond).
    static func guide(_ prediction: Tensor, scale: Float) throws -> Tensor {
        let halves = try prediction.chunked(2, axis: 0)
        let (unconditional, conditional) = (halves[0], halves[1])
        let guided = Tensor(uninitialized: unconditional.shape)
        let u = unconditional.data, c = conditional.data, g = guided.data
        for index in 0 ..< guided.count { g[index] = u[index] + scale * (c[index] - u[index]) }
        return guided
    }

    /// Latents `[1, C, F, h, w]` → one image `[3, H, W]` per frame in [-1, 1], decoded a frame at a
    /// time (diffusers' `decode_latents` decodes all frames as one batch; per frame keeps memory flat).
    public func decode(_ latents: Tensor) throws -> [Tensor] {
        guard latents.rank == 5, latents.shape[0] == 1, latents.shape[1] == vae.config.latentChannels else {
            throw ModelError.badInput("decode: latents must be [1, \(vae.config.latentChannels), frames, h, w], got \(latents.shape)")
        }
        return try Tensor.withoutGrad {
            let (channels, frames, height, width) = (latents.shape[1], latents.shape[2], latents.shape[3], latents.shape[4])
            let perFrame = try vae.unscaleLatents(latents).reshaped([channels, frames, height, width]).permuted([1, 0, 2, 3])
            return try (0 ..< frames).map { frame in
                let image = try vae.decode(perFrame.slice(rows: frame ..< frame + 1))
                return try image.clamp(-1, 1).reshaped(Array(image.shape.dropFirst()))
            }
        }
    }
}
