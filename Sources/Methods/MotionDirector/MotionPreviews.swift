import Diffusion
import Tensor

/// The preview clips of a training on clips (MotionDirector and its plain-LoRA baseline): the
/// validation prompts rendered with the trained adapters, from the noise prior of the first clip
/// when `noise_prior` > 0 — the reference's `validation_data` block.
enum MotionPreviews {
    /// Renders `validation.prompt` (the first clip's caption when empty). `inversion` caches the DDIM
    /// inversion of `clip` across previews: it is made once, with `adaptersOff` in force (the base
    /// model, as the reference inverts before any LoRA has learned); `adaptersOn` then sets the
    /// adapters up for inference.
    static func render(pipeline: TextToVideoPipeline, validation: MotionDirectorConfig.ValidationData, clip: MotionTrainingClip,
                       inversion: inout Tensor?, adaptersOff: () throws -> Void, adaptersOn: () throws -> Void) throws -> [PreviewSample] {
        let frames = validation.numFrames ?? clip.latents.shape[2]
        var initial: Tensor?
        if validation.noisePrior > 0 {
            if inversion == nil {
                try adaptersOff()
                inversion = try pipeline.invert(latents: clip.latents, steps: validation.numInferenceSteps)
            }
            var generator = RandomGenerator(seed: validation.seed)
            initial = try NoisePrior.mix(inverted: inversion!, noise: generator.normal(inversion!.shape), strength: validation.noisePrior)
        }
        try adaptersOn()
        let prompts = validation.prompt.isEmpty ? [clip.caption] : validation.prompt
        return try prompts.map { prompt in
            let video = try pipeline.generate(prompt: prompt, frames: frames, steps: validation.numInferenceSteps,
                                              guidance: validation.guidanceScale, seed: validation.seed, initialLatents: initial)
            return PreviewSample(prompt: prompt, frames: video.frames)
        }
    }
}
