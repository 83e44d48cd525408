import Adapters
import Diffusion
import Foundation
import Models
import Tensor

/// LoRA-Composer's settings; the defaults are the reference's (Young98CN/LoRA_Composer,
/// `region_lora/multi_lora_sample.py`) for its 50 steps, scaled to the step count where marked.
public struct LoRAComposerOptions: Sendable {
    /// Concept isolation in self-attention (`self_attn_mask`).
    public var conceptIsolation = true
    /// Latent re-initialisation at the first timestep.
    public var latentReinitialisation = true
    /// Energy-guided latent updates.
    public var latentGuidance = true
    /// η_i = stepSize · sqrt(linspace(stepSizeStart, stepSizeEnd, steps)[i]): 20, 1 → 0.5.
    public var stepSize: Float = 20
    public var stepSizeStart: Float = 1
    public var stepSizeEnd: Float = 0.5
    /// The last step with a latent update; nil: 25 of 50 steps, scaled to the step count (ours).
    public var lastGuidedStep: Int?
    /// From this step on, a rising energy stops the updates; nil: 5 of 50 steps, scaled (ours).
    public var energyWatchStep: Int?
    public var energy = LoRAComposerEnergy()
    /// Average each concept token's attention over the steps for heat maps.
    public var recordsAttention = true

    public init() {}
}

/// LoRA-Composer (Yang et al., 2024): several concept LoRAs in one picture or clip without
/// training, each concept in its box. Built on attention processors installed on the U-Net's spatial
/// transformers (principle 2); the U-Net itself is the pipeline's.
///
/// - Concept injection (`RegionInjectionProcessor`) in every spatial cross-attention layer, concept
///   isolation (`ConceptIsolationProcessor`) in every spatial self-attention layer, in every pass.
/// - Latent re-initialisation: one conditional pass at the first timestep; for each concept the
///   box-sized window with the most attention on its tokens is copied into its box, and the latent is
///   renormalised to its former mean and standard deviation. For clips (ours) the window is chosen on
///   the frames' summed maps and each frame copies its own patch from it. (The reference multiplies
///   the result by `init_noise_sigma` a second time, a no-op for its DDIM; here it is scaled once.)
/// - Energy-guided updates: a conditional pass with gradient on the latent, the energy of
///   `LoRAComposerEnergy` on the maps at the analysis grid (`SpatialAttentionLayers.analysisGrid`),
///   z ← z − η_i ∇E; until `lastGuidedStep`, or until the energy rises from `energyWatchStep` on.
/// - Every denoising pass, with classifier-free guidance, gives the negative half the concepts'
///   LoRA keys on the negative prompt, as the reference does.
///
/// The concepts' LoRAs act only through the cross-attention's `to_k`, `to_v` and `to_out.0` inside
/// their boxes (their other layers are not used, as in the reference); the region prompts are
/// encoded with each concept's text-encoder LoRA when its file has one.
public final class LoRAComposer {
    public let pipeline: TextToVideoPipeline
    public let adapters: ConceptAdapters
    public let concepts: [CompositionConcept]
    public let options: LoRAComposerOptions
    let layers: SpatialAttentionLayers
    let grid: FeatureGrid
    let conceptTokens: [[Int]]

    /// Checks the concepts: unique names, loaded adapters, valid boxes that cover a cell of the
    /// analysis grid, and words that occur in each region prompt.
    public init(pipeline: TextToVideoPipeline, adapters: ConceptAdapters, concepts: [CompositionConcept],
                options: LoRAComposerOptions = LoRAComposerOptions()) throws {
        guard !concepts.isEmpty else { throw CompositionError.noConcepts }
        self.pipeline = pipeline
        self.adapters = adapters
        self.concepts = concepts
        self.options = options
        layers = SpatialAttentionLayers(unet: pipeline.unet)
        let latent = pipeline.latentSize
        grid = try layers.analysisGrid(latentHeight: latent.height, latentWidth: latent.width)
        var seen: Set<String> = []
        var tokens: [[Int]] = []
        for concept in concepts {
            guard seen.insert(concept.name).inserted else { throw CompositionError.duplicateConcept(concept.name) }
            guard adapters.names.contains(concept.adapter) else {
                throw CompositionError.unknownAdapter(concept: concept.name, adapter: concept.adapter, loaded: adapters.names)
            }
            guard let box = concept.box else { throw CompositionError.missingBox(concept: concept.name) }
            try box.validate(concept: concept.name)
            let (rows, columns) = box.cells(height: grid.height, width: grid.width)
            guard !rows.isEmpty, !columns.isEmpty else {
                throw CompositionError.boxTooSmall(concept: concept.name, box: box, grid: grid)
            }
            let positions = ConceptTokens.positions(of: concept.words, in: concept.prompt, tokenizer: pipeline.tokenizer)
            guard !positions.isEmpty else {
                throw CompositionError.wordsNotInPrompt(concept: concept.name, words: concept.words, prompt: concept.prompt)
            }
            tokens.append(positions)
        }
        conceptTokens = tokens
    }

    /// The token positions read for each concept in its region prompt.
    public var tokenChoices: [ConceptTokenChoice] {
        zip(concepts, conceptTokens).map { concept, positions in
            ConceptTokenChoice(concept: concept.name, prompt: concept.prompt, positions: positions,
                               description: ConceptTokens.describe(positions, in: concept.prompt, tokenizer: pipeline.tokenizer))
        }
    }

    /// Renders `settings` with the concepts composed. `progress` is called after each step with
    /// (steps done, total, a note such as the energy).
    public func generate(_ settings: CompositionSettings,
                         progress: ((_ done: Int, _ total: Int, _ note: String) -> Void)? = nil) throws -> CompositionResult {
        try settings.validate()
        let state = try makeState()
        try adapters.deactivateAll()
        let restore = install(state)
        defer { restore() }

        // Text states: the global prompt with the base encoder, each region prompt (and the negative
        // prompt for its unconditional half) with the concept's text-encoder LoRA.
        let guidance = settings.usesGuidance
        let (globalPositive, globalNegative) = try Tensor.withoutGrad {
            (try adapters.encodeConditional(settings.prompt, adapter: nil), try adapters.encodePrompt(settings.negative, adapter: nil))
        }
        let regionPositive = try Tensor.withoutGrad { try concepts.map { try adapters.encodeConditional($0.prompt, adapter: $0.adapter) } }
        let regionNegative = try Tensor.withoutGrad { try concepts.map { try adapters.encodePrompt(settings.negative, adapter: $0.adapter) } }
        let denoisingRegionStates = try zip(regionNegative, regionPositive).map {
            try CompositionSampling.textStates(negative: $0, positive: $1, guidance: guidance)
        }
        let denoisingText = try CompositionSampling.textStates(negative: globalNegative, positive: globalPositive, guidance: guidance)

        let start = try CompositionSampling.start(pipeline, settings)
        let scheduler = start.scheduler
        var latents = start.latents, generator = start.generator
        let timesteps = scheduler.timesteps
        var notes: [String] = []

        if options.latentReinitialisation, let first = timesteps.first {
            latents = try Tensor.withoutGrad {
                state.regionStates = regionPositive
                state.recordsMaps = true
                state.resetRecords()
                defer { state.recordsMaps = false }
                let input = try CompositionSampling.modelInput(latents, guidance: false,
                                                               scale: CompositionSampling.inputScale(scheduler, timestep: first))
                _ = try pipeline.unet(sample: input, timesteps: [first], encoderHiddenStates: globalPositive)
                return try reinitialise(latents, state: state)
            }
        }

        let lastGuided = options.lastGuidedStep ?? settings.scaledFromFiftySteps(25)
        let watchFrom = options.energyWatchStep ?? settings.scaledFromFiftySteps(5)
        var guiding = options.latentGuidance
        var previousEnergy: Float = 1e3
        var accumulator = TokenAttentionAccumulator(grid: grid)
        for (index, timestep) in timesteps.enumerated() {
            var note = ""
            if guiding {
                let (energy, gradient) = try energyGradient(latents, timestep: timestep, scheduler: scheduler, state: state,
                                                            text: globalPositive, regionStates: regionPositive)
                note = String(format: "E %.3f", energy)
                if energy != 0, let gradient {
                    let fraction = timesteps.count == 1 ? 0 : Float(index) / Float(timesteps.count - 1)
                    let schedule = options.stepSizeStart + (options.stepSizeEnd - options.stepSizeStart) * fraction
                    latents = try CompositionSampling.guidanceStep(latents, gradient: gradient, size: options.stepSize * schedule.squareRoot(),
                                                                   scheduler: scheduler, timestep: timestep)
                }
                if (previousEnergy < energy && index >= watchFrom) || index >= lastGuided {
                    guiding = false
                    notes.append("latent guidance: last update at step \(index + 1) of \(timesteps.count) (energy \(String(format: "%.4g", energy)))")
                } else {
                    previousEnergy = energy
                }
            }
            latents = try Tensor.withoutGrad {
                state.regionStates = denoisingRegionStates
                state.recordsMaps = options.recordsAttention
                state.resetRecords()
                defer { state.recordsMaps = false }
                let input = try CompositionSampling.modelInput(latents, guidance: guidance,
                                                               scale: CompositionSampling.inputScale(scheduler, timestep: timestep))
                let prediction = try pipeline.unet(sample: input, timesteps: [timestep], encoderHiddenStates: denoisingText)
                if options.recordsAttention { try accumulate(state: state, into: &accumulator, frames: settings.frames) }
                let guided = guidance ? try CompositionSampling.guide(prediction, scale: settings.guidance) : prediction
                return try CompositionSampling.step(scheduler, prediction: guided, timestep: timestep, latents: latents,
                                                    generator: &generator)
            }
            progress?(index + 1, timesteps.count, note)
        }
        if guiding && options.latentGuidance { notes.append("latent guidance: updated every step") }
        let frames = try pipeline.decode(latents)
        return CompositionResult(latents: latents, frames: frames, tokens: tokenChoices,
                                 attention: accumulator.maps(conceptNames: concepts.map(\.name), tokenizer: pipeline.tokenizer),
                                 notes: notes)
    }

    // MARK: Processors

    /// The processors' shared state for these concepts.
    func makeState() throws -> ComposerAttentionState {
        let latentSize = pipeline.latentSize
        return ComposerAttentionState(
            concepts: try concepts.map { concept in
                ComposerAttentionState.Concept(name: concept.name, box: concept.box!,
                                               loras: try adapters.unetLoRAsByPath(of: concept.adapter))
            },
            latentHeight: latentSize.height, latentWidth: latentSize.width, analysisGrid: grid,
            isolates: options.conceptIsolation)
    }

    /// Installs the processors and output deltas; returns what puts the U-Net back as it was.
    func install(_ state: ComposerAttentionState) -> () -> Void {
        var previous: [(Attention, AttentionProcessor)] = []
        var deltaLayers: [Linear] = []
        let injection = RegionInjectionProcessor(state: state)
        let isolation = ConceptIsolationProcessor(state: state)
        for layer in layers.layers {
            previous.append((layer.attention, layer.attention.processor))
            if layer.isCrossAttention {
                layer.attention.processor = injection
                if state.concepts.contains(where: { $0.loras[layer.path + ".to_out.0"] != nil }) {
                    let delta = RegionOutputDelta()
                    state.outputDeltas[layer.path] = delta
                    layer.attention.toOut.deltas.append(delta)
                    deltaLayers.append(layer.attention.toOut)
                }
            } else {
                layer.attention.processor = isolation
            }
        }
        return {
            for (attention, processor) in previous { attention.processor = processor }
            for linear in deltaLayers { linear.deltas.removeAll { $0 is RegionOutputDelta } }
            state.outputDeltas = [:]
        }
    }

    // MARK: Latent guidance

    /// The energy at `latents` and its gradient with respect to them (nil when the energy does not
    /// depend on them): one conditional pass with gradient history.
    func energyGradient(_ latents: Tensor, timestep: Float, scheduler: any Scheduler, state: ComposerAttentionState,
                        text: Tensor, regionStates: [Tensor]) throws -> (Float, Tensor?) {
        let leaf = latents.copy()
        leaf.requiresGrad = true
        state.regionStates = regionStates
        state.recordsMaps = true
        state.resetRecords()
        defer {
            state.recordsMaps = false
            state.resetRecords()
        }
        let input = try CompositionSampling.modelInput(leaf, guidance: false, scale: CompositionSampling.inputScale(scheduler, timestep: timestep))
        _ = try pipeline.unet(sample: input, timesteps: [timestep], encoderHiddenStates: text)
        let energy = try totalEnergy(state: state)
        let value = energy.item
        guard energy.needsGrad else { return (value, nil) }
        try energy.backward()
        guard let gradient = leaf.grad else { return (value, nil) }
        try gradient.checkFinite("gradient of LoRA-Composer's energy with respect to the latent")
        return (value, gradient)
    }

    /// Σ over concepts of `LoRAComposerEnergy` on the recorded maps (one item per frame).
    func totalEnergy(state: ComposerAttentionState) throws -> Tensor {
        let selfMap = try averaged(state.selfMaps)
        var total: Tensor?
        for (index, concept) in concepts.enumerated() {
            guard let maps = try averaged(state.crossMaps[index]) else { continue }
            let tokenMaps = try conceptTokens[index].map { position in
                try maps.slice(axis: 2, position ..< position + 1).reshaped([maps.shape[0], maps.shape[1]])
            }
            let value = try options.energy.energy(tokenMaps: tokenMaps, selfMap: selfMap, box: concept.box!, grid: grid)
            total = try total.map { try $0 + value.total } ?? value.total
        }
        return total ?? Tensor(scalar: 0)
    }

    /// The mean of per-layer maps, or nil when none was recorded.
    func averaged(_ maps: [Tensor]) throws -> Tensor? {
        guard var sum = maps.first else { return nil }
        for map in maps.dropFirst() { sum = try sum + map }
        return maps.count == 1 ? sum : sum / Float(maps.count)
    }

    // MARK: Latent re-initialisation

    /// The reference's `replace_latents` with one window per concept (`n = 1`).
    func reinitialise(_ latents: Tensor, state: ComposerAttentionState) throws -> Tensor {
        let (channels, frames, height, width) = (latents.shape[1], latents.shape[2], latents.shape[3], latents.shape[4])
        // Latent cells per attention cell, from the widths as the reference takes it.
        let scale = max(1, width / grid.width)
        let result = latents.copy()
        let source = latents.data, target = result.data
        for (index, concept) in concepts.enumerated() {
            guard let maps = try averaged(state.crossMaps[index]) else { continue }
            // Attention on the concept's tokens, summed over its tokens and the frames.
            var attention = [Float](repeating: 0, count: grid.count)
            let values = maps.values, tokensPerMap = maps.shape[2]
            for item in 0 ..< maps.shape[0] {
                for cell in 0 ..< grid.count {
                    for position in conceptTokens[index] { attention[cell] += values[(item * grid.count + cell) * tokensPerMap + position] }
                }
            }
            let (rows, columns) = concept.box!.cells(height: grid.height, width: grid.width)
            let (boxHeight, boxWidth) = (rows.count, columns.count)
            var best = (score: -Float.infinity, row: 0, column: 0)
            for top in 0 ... grid.height - boxHeight {
                for left in 0 ... grid.width - boxWidth {
                    var score: Float = 0
                    for r in 0 ..< boxHeight { for c in 0 ..< boxWidth { score += attention[(top + r) * grid.width + left + c] } }
                    if score > best.score { best = (score, top, left) }
                }
            }
            for channel in 0 ..< channels {
                for frame in 0 ..< frames {
                    let plane = (channel * frames + frame) * height * width
                    for r in 0 ..< boxHeight * scale {
                        let sourceRow = best.row * scale + r, targetRow = rows.lowerBound * scale + r
                        guard sourceRow < height, targetRow < height else { continue }
                        for c in 0 ..< boxWidth * scale {
                            let sourceColumn = best.column * scale + c, targetColumn = columns.lowerBound * scale + c
                            guard sourceColumn < width, targetColumn < width else { continue }
                            target[plane + targetRow * width + targetColumn] = source[plane + sourceRow * width + sourceColumn]
                        }
                    }
                }
            }
        }
        // Back to the latent's own mean and (unbiased) standard deviation.
        let (oldMean, oldStd) = Self.meanAndStd(latents), (newMean, newStd) = Self.meanAndStd(result)
        let factor = newStd > 0 ? oldStd / newStd : 1
        for index in 0 ..< result.count { target[index] = (target[index] - newMean) * factor + oldMean }
        return result
    }

    static func meanAndStd(_ x: Tensor) -> (Float, Float) {
        let values = x.values
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(max(values.count, 1))
        let squares = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) }
        return (Float(mean), Float((squares / Double(max(values.count - 1, 1))).squareRoot()))
    }

    // MARK: Heat maps

    /// Adds the conditional items' maps of the pass (the last `frames` items) to the accumulator.
    func accumulate(state: ComposerAttentionState, into accumulator: inout TokenAttentionAccumulator, frames: Int) throws {
        for (index, concept) in concepts.enumerated() {
            guard let maps = try averaged(state.crossMaps[index]) else { continue }
            let conditional = try maps.slice(rows: maps.shape[0] - frames ..< maps.shape[0])
            for position in conceptTokens[index] {
                let map = try conditional.slice(axis: 2, position ..< position + 1).reshaped([frames, grid.count])
                accumulator.add(concept: index, prompt: concept.prompt, position: position, map: map)
            }
        }
    }
}
