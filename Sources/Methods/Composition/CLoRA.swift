import Adapters
import Diffusion
import Foundation
import Models
import Tensor

/// CLoRA's settings; the defaults are the reference pipeline's (`pipeline_clora.py` of
/// gemlab-vt/CLoRA) for its 50 steps, scaled to the step count where marked.
public struct CLoRAOptions: Sendable {
    /// z ← z − stepSize · ∇z L.
    public var stepSize: Float = 20
    /// NT-Xent's τ.
    public var temperature: Float = 0.5
    /// α of the masks: a token's map counts where it exceeds α · its maximum (the reference: 0.3 by
    /// default, 0.4 in its notebook).
    public var maskThreshold: Float = 0.35
    /// Latent updates at steps below this; nil: 30 of 50 steps, scaled to the step count (ours).
    public var maxIterToAlter: Int?
    /// Steps with extra update rounds; nil: steps 0, 10 and 20 of 50, scaled (ours).
    public var iterativeSteps: [Int]?
    /// Extra rounds at each of `iterativeSteps`.
    public var iterativeRounds = 20
    public var latentUpdate = true
    /// Masked fusion from this step on (before it every prompt's prediction counts everywhere).
    public var applyMaskAfter = 0
    /// Average each concept token's attention over the steps for heat maps.
    public var recordsAttention = true

    public init() {}
}

/// CLoRA (Meral et al., 2024): several LoRAs in one picture or clip by contrastive attention
/// guidance and masked fusion, without training.
///
/// Each step runs the U-Net once per prompt: the base prompt (`settings.prompt`) with no LoRA, and
/// each concept's prompt with its LoRA on (at its loaded strength; 1 by default), every pass with
/// both classifier-free-guidance halves. A `CrossAttentionRecorder` reads each pass's
/// cross-attention maps at the analysis grid, averaged over heads, layers and both halves.
///
/// - Contrastive guidance: for steps below `maxIterToAlter` the concept tokens' min-max normalised
///   maps of every prompt are embeddings for `NTXentLoss` (one label per concept: a concept's maps
///   across prompts attract, different concepts' repel), and z ← z − 20·∇z L; at `iterativeSteps`,
///   `iterativeRounds` more rounds of the same. As in the reference, the predictions used for the
///   step are those of the last pass, computed before its update.
/// - Masks and fusion: `MaskedFusion.masks` from the last pass's maps, then
///   ε = Σ_p M_p ε_p / Σ_p M_p per guidance half, then guidance.
///
/// Clips (ours): each frame's maps are separate embeddings and masks; the frames' losses add up.
public final class CLoRA {
    public let pipeline: TextToVideoPipeline
    public let adapters: ConceptAdapters
    public let concepts: [CompositionConcept]
    public let options: CLoRAOptions
    let layers: SpatialAttentionLayers
    let grid: FeatureGrid

    public init(pipeline: TextToVideoPipeline, adapters: ConceptAdapters, concepts: [CompositionConcept],
                options: CLoRAOptions = CLoRAOptions()) throws {
        guard !concepts.isEmpty else { throw CompositionError.noConcepts }
        var seen: Set<String> = []
        for concept in concepts {
            guard seen.insert(concept.name).inserted else { throw CompositionError.duplicateConcept(concept.name) }
            guard adapters.names.contains(concept.adapter) else {
                throw CompositionError.unknownAdapter(concept: concept.name, adapter: concept.adapter, loaded: adapters.names)
            }
        }
        guard options.maskThreshold >= 0, options.maskThreshold <= 1 else {
            throw CompositionError.invalidSetting("CLoRA's mask threshold must lie in [0, 1], got \(options.maskThreshold)")
        }
        self.pipeline = pipeline
        self.adapters = adapters
        self.concepts = concepts
        self.options = options
        layers = SpatialAttentionLayers(unet: pipeline.unet)
        let latent = pipeline.latentSize
        grid = try layers.analysisGrid(latentHeight: latent.height, latentWidth: latent.width)
    }

    /// The token positions CLoRA reads, found from the concepts' words: `groups[c][p]` are concept
    /// c's tokens in prompt p (the base prompt first, then each concept's prompt), `maskTokens[p]`
    /// the tokens prompt p's mask is made from (none for the base prompt; the concept's own tokens
    /// in its prompt). Every concept must be named in the base prompt and in its own prompt.
    public func tokenIndices(basePrompt: String) throws -> (groups: [[[Int]]], maskTokens: [[Int]], choices: [ConceptTokenChoice]) {
        let tokenizer = pipeline.tokenizer
        let prompts = [basePrompt] + concepts.map(\.prompt)
        var groups: [[[Int]]] = []
        var choices: [ConceptTokenChoice] = []
        for (index, concept) in concepts.enumerated() {
            var perPrompt: [[Int]] = []
            for (promptIndex, prompt) in prompts.enumerated() {
                let positions = ConceptTokens.positions(of: concept.words, in: prompt, tokenizer: tokenizer)
                if positions.isEmpty && (promptIndex == 0 || promptIndex == index + 1) {
                    throw CompositionError.wordsNotInPrompt(concept: concept.name, words: concept.words, prompt: prompt)
                }
                perPrompt.append(positions)
                if !positions.isEmpty {
                    choices.append(ConceptTokenChoice(concept: concept.name, prompt: prompt, positions: positions,
                                                      description: ConceptTokens.describe(positions, in: prompt, tokenizer: tokenizer)))
                }
            }
            groups.append(perPrompt)
        }
        let maskTokens = [[]] + concepts.indices.map { groups[$0][$0 + 1] }
        return (groups, maskTokens, choices)
    }

    /// CLoRA's loss for one set of prompt maps (`[F, H·W, L]` each): per frame, NT-Xent over the
    /// min-max normalised maps of every concept token in every prompt, labelled by concept; the
    /// frames' losses added. Nil when there is nothing to contrast (a single concept).
    public func contrastiveLoss(maps: [Tensor], groups: [[[Int]]]) throws -> Tensor? {
        try Self.contrastiveLoss(maps: maps, groups: groups, temperature: options.temperature)
    }

    /// `contrastiveLoss(maps:groups:)` at NT-Xent temperature `temperature`.
    public static func contrastiveLoss(maps: [Tensor], groups: [[[Int]]], temperature: Float) throws -> Tensor? {
        guard let first = maps.first else { return nil }
        let frames = first.shape[0], cells = first.shape[1]
        var total: Tensor?
        for frame in 0 ..< frames {
            var rows: [Tensor] = []
            var labels: [Int] = []
            for (label, perPrompt) in groups.enumerated() {
                for (prompt, positions) in perPrompt.enumerated() {
                    let frameMap = try maps[prompt].slice(rows: frame ..< frame + 1)
                    for position in positions {
                        let map = try frameMap.slice(axis: 2, position ..< position + 1).reshaped([cells])
                        rows.append(try NTXentLoss.minMaxNormalised(map).reshaped([1, cells]))
                        labels.append(label)
                    }
                }
            }
            guard !rows.isEmpty, let loss = try NTXentLoss.loss(Tensor.concat(rows, axis: 0), labels: labels,
                                                                 temperature: temperature) else { continue }
            total = try total.map { try $0 + loss } ?? loss
        }
        return total
    }

    public func generate(_ settings: CompositionSettings,
                         progress: ((_ done: Int, _ total: Int, _ note: String) -> Void)? = nil) throws -> CompositionResult {
        try settings.validate()
        let (groups, maskTokens, choices) = try tokenIndices(basePrompt: settings.prompt)
        let guidance = settings.usesGuidance
        let prompts = [settings.prompt] + concepts.map(\.prompt)
        let promptAdapters: [String?] = [nil] + concepts.map(\.adapter)
        let textStates = try Tensor.withoutGrad {
            try zip(prompts, promptAdapters).map { prompt, adapter in
                try CompositionSampling.textStates(negative: adapters.encodePrompt(settings.negative, adapter: adapter),
                                                   positive: adapters.encodeConditional(prompt, adapter: adapter), guidance: guidance)
            }
        }
        let latentSize = pipeline.latentSize
        let recorder = CrossAttentionRecorder(grid: grid, latentHeight: latentSize.height, latentWidth: latentSize.width)
        let restore = recorder.install(on: layers)
        defer {
            restore()
            try? adapters.deactivateAll()
        }

        let start = try CompositionSampling.start(pipeline, settings)
        let scheduler = start.scheduler
        var latents = start.latents, generator = start.generator
        let timesteps = scheduler.timesteps
        let maxIter = options.maxIterToAlter ?? settings.scaledFromFiftySteps(30)
        let iterative = Set(options.iterativeSteps ?? [0, 10, 20].map(settings.scaledFromFiftySteps))
        var accumulator = TokenAttentionAccumulator(grid: grid)
        var updates = 0

        /// One U-Net pass per prompt at `input`; predictions (detached) and maps averaged over the
        /// guidance halves, `[F, H·W, L]`, with gradient history when grad mode is on.
        func passes(_ sample: Tensor, _ timestep: Float) throws -> (predictions: [Tensor], maps: [Tensor]) {
            let input = try CompositionSampling.modelInput(sample, guidance: guidance,
                                                           scale: CompositionSampling.inputScale(scheduler, timestep: timestep))
            var predictions: [Tensor] = [], maps: [Tensor] = []
            for (prompt, adapter) in promptAdapters.enumerated() {
                try adapters.activate(adapter.map { [$0] } ?? [])
                recorder.reset()
                let prediction = try pipeline.unet(sample: input, timesteps: [timestep], encoderHiddenStates: textStates[prompt])
                predictions.append(prediction.detached())
                guard let map = try recorder.averagedMap() else {
                    throw CompositionError.noCrossAttention("no cross-attention map at the \(grid) grid was recorded")
                }
                if guidance {
                    maps.append(try map.reshaped([2, settings.frames, map.shape[1], map.shape[2]]).mean(axes: [0]))
                } else {
                    maps.append(map)
                }
            }
            recorder.reset()
            try adapters.deactivateAll()
            return (predictions, maps)
        }

        for (index, timestep) in timesteps.enumerated() {
            var result: (predictions: [Tensor], maps: [Tensor])
            var note = ""
            if options.latentUpdate && index < maxIter {
                let rounds = 1 + (iterative.contains(index) ? options.iterativeRounds : 0)
                result = ([], [])
                for _ in 0 ..< rounds {
                    let leaf = latents.copy()
                    leaf.requiresGrad = true
                    let pass = try passes(leaf, timestep)
                    if let loss = try contrastiveLoss(maps: pass.maps, groups: groups), loss.needsGrad {
                        note = String(format: "L %.4f", loss.item)
                        try loss.backward()
                        if let gradient = leaf.grad {
                            try gradient.checkFinite("gradient of CLoRA's contrastive loss with respect to the latent")
                            latents = try CompositionSampling.guidanceStep(latents, gradient: gradient, size: options.stepSize,
                                                                           scheduler: scheduler, timestep: timestep)
                            updates += 1
                        }
                    }
                    result = (pass.predictions, pass.maps.map { $0.detached() })
                }
            } else {
                result = try Tensor.withoutGrad { try passes(latents, timestep) }
            }
            latents = try Tensor.withoutGrad {
                let masks = index >= options.applyMaskAfter
                    ? try MaskedFusion.masks(maps: result.maps, maskTokens: maskTokens, threshold: options.maskThreshold,
                                             grid: grid, latentHeight: latentSize.height, latentWidth: latentSize.width)
                    : result.maps.map { _ in Tensor(repeating: 1, shape: [settings.frames, latentSize.height, latentSize.width]) }
                let prediction: Tensor
                if guidance {
                    let halves = try result.predictions.map { try $0.chunked(2, axis: 0) }
                    let unconditional = try MaskedFusion.fuse(halves.map { $0[0] }, masks: masks)
                    let conditional = try MaskedFusion.fuse(halves.map { $0[1] }, masks: masks)
                    prediction = try unconditional + (conditional - unconditional) * settings.guidance
                } else {
                    prediction = try MaskedFusion.fuse(result.predictions, masks: masks)
                }
                if options.recordsAttention {
                    for (conceptIndex, concept) in concepts.enumerated() {
                        let promptIndex = conceptIndex + 1
                        for position in maskTokens[promptIndex] {
                            let map = try result.maps[promptIndex].slice(axis: 2, position ..< position + 1)
                                .reshaped([settings.frames, grid.count])
                            accumulator.add(concept: conceptIndex, prompt: concept.prompt, position: position, map: map)
                        }
                    }
                }
                return try CompositionSampling.step(scheduler, prediction: prediction, timestep: timestep, latents: latents,
                                                    generator: &generator)
            }
            progress?(index + 1, timesteps.count, note)
        }
        let frames = try pipeline.decode(latents)
        var notes: [String] = []
        if options.latentUpdate {
            let extra = iterative.filter { $0 < min(maxIter, timesteps.count) }.sorted().map { String($0 + 1) }
            notes.append("contrastive guidance: \(updates) latent update\(updates == 1 ? "" : "s") over steps 1-\(min(maxIter, timesteps.count))"
                         + (extra.isEmpty ? "" : ", \(options.iterativeRounds) extra rounds at step\(extra.count == 1 ? "" : "s") \(extra.joined(separator: ", "))"))
        }
        return CompositionResult(latents: latents, frames: frames, tokens: choices,
                                 attention: accumulator.maps(conceptNames: concepts.map(\.name), tokenizer: pipeline.tokenizer),
                                 notes: notes)
    }
}
