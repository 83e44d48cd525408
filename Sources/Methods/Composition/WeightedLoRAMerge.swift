import Adapters
import Diffusion
import Models
import Tensor

/// The baseline: the concept LoRAs' deltas added with weights into the base weights, diffusers'
/// `set_adapters(names, adapter_weights=weights)` (+ `fuse_lora()`): every adapted layer's weight
/// becomes W + Σ_i w_i · (α_i / r_i) · B_i A_i, on the U-Net and on the text encoder where a file
/// adapts it. Then one ordinary render of the global prompt.
public enum WeightedLoRAMerge {
    /// Sets each adapter's multiplier to its weight and folds all of them into the base weights.
    public static func apply(_ adapters: ConceptAdapters, weights: [(adapter: String, weight: Float)]) throws {
        let names = weights.map(\.adapter)
        try adapters.activate(names)
        for set in [adapters.unet, adapters.textEncoder] {
            let present = names.filter(set.adapterNames.contains)
            for (name, weight) in weights where present.contains(name) { try set.setMultiplier(weight, for: name) }
            try set.merge(present)
        }
    }

    /// Takes the merged adapters out again (the base weights come back bit for bit) and disables them.
    public static func remove(_ adapters: ConceptAdapters) throws {
        try adapters.unet.unmerge()
        try adapters.textEncoder.unmerge()
        try adapters.deactivateAll()
    }

    /// Each concept's tokens in the global prompt (empty where the prompt does not name it): where
    /// the heat maps are read.
    public static func tokenChoices(concepts: [CompositionConcept], prompt: String, tokenizer: CLIPTokenizer) -> [ConceptTokenChoice] {
        concepts.map { concept in
            let positions = ConceptTokens.positions(of: concept.words, in: prompt, tokenizer: tokenizer)
            return ConceptTokenChoice(concept: concept.name, prompt: prompt, positions: positions,
                                      description: ConceptTokens.describe(positions, in: prompt, tokenizer: tokenizer))
        }
    }

    /// Renders `settings` with the concepts' LoRAs merged at their loaded strengths, through the
    /// pipeline's own sampler (the same bytes as `render` with those LoRAs). With `recordsAttention`,
    /// the global prompt's attention on each concept's words is averaged over the steps for heat maps.
    public static func generate(pipeline: TextToVideoPipeline, adapters: ConceptAdapters, concepts: [CompositionConcept],
                                settings: CompositionSettings, recordsAttention: Bool = false,
                                progress: ((_ done: Int, _ total: Int, _ note: String) -> Void)? = nil) throws -> CompositionResult {
        try settings.validate()
        guard !concepts.isEmpty else { throw CompositionError.noConcepts }
        for concept in concepts where !adapters.names.contains(concept.adapter) {
            throw CompositionError.unknownAdapter(concept: concept.name, adapter: concept.adapter, loaded: adapters.names)
        }
        let tokenizer = pipeline.tokenizer
        let choices = tokenChoices(concepts: concepts, prompt: settings.prompt, tokenizer: tokenizer)
        try apply(adapters, weights: try concepts.map { ($0.adapter, try adapters.scale(of: $0.adapter)) })
        defer { try? remove(adapters) }

        var recorder: CrossAttentionRecorder?
        var restore: () -> Void = {}
        if recordsAttention {
            let layers = SpatialAttentionLayers(unet: pipeline.unet)
            let latent = pipeline.latentSize
            let grid = try layers.analysisGrid(latentHeight: latent.height, latentWidth: latent.width)
            let installed = CrossAttentionRecorder(grid: grid, latentHeight: latent.height, latentWidth: latent.width)
            installed.keepsMaps = false
            installed.accumulatedFrames = settings.frames
            restore = installed.install(on: layers)
            recorder = installed
        }
        defer { restore() }
        let video = try pipeline.generate(prompt: settings.prompt, negative: settings.negative, frames: settings.frames,
                                          steps: settings.steps, guidance: settings.guidance, seed: settings.seed,
                                          scheduler: settings.scheduler) { done, total in progress?(done, total, "") }
        var attention: [ConceptTokenAttention] = []
        if let recorder, let sum = recorder.accumulated, recorder.accumulatedCalls > 0 {
            var accumulator = TokenAttentionAccumulator(grid: recorder.grid)
            let mean = sum / Float(recorder.accumulatedCalls)
            for (index, choice) in choices.enumerated() {
                for position in choice.positions {
                    let map = try mean.slice(axis: 2, position ..< position + 1).reshaped([settings.frames, recorder.grid.count])
                    accumulator.add(concept: index, prompt: settings.prompt, position: position, map: map)
                }
            }
            attention = accumulator.maps(conceptNames: concepts.map(\.name), tokenizer: tokenizer)
        }
        let unnamed = choices.filter(\.positions.isEmpty).map(\.concept)
        return CompositionResult(latents: video.latents, frames: video.frames, tokens: choices.filter { !$0.positions.isEmpty },
                                 attention: attention,
                                 notes: unnamed.isEmpty ? [] : ["the prompt does not name \(unnamed.joined(separator: ", ")): no attention map for "
                                                                 + (unnamed.count == 1 ? "it" : "them")])
    }
}
