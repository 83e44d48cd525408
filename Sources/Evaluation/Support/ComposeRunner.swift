import Diffusion
import Foundation
import Methods

/// Loads a plan's LoRAs and runs one composition method: what `compose` and `eval compose` share.
public enum ComposeRunner {
    /// Every concept's LoRA loaded (disabled) as adapter concept1, concept2, …, each checked against
    /// the model; a file for another model or with keys that do not fit fails naming the --lora.
    public static func load(_ plan: ComposePlan, on pipeline: TextToVideoPipeline,
                            allowPartial: Bool = false) throws -> (ConceptAdapters, [CompositionConcept]) {
        let adapters = ConceptAdapters(pipeline: pipeline)
        var concepts: [CompositionConcept] = []
        for (index, concept) in plan.concepts.enumerated() {
            let adapter = "concept\(index + 1)"
            do {
                let loaded = try adapters.load(concept.choice.path, as: adapter, scale: concept.choice.scale, allowPartial: allowPartial)
                if let first = loaded.skipped.first {
                    FileHandle.standardError.write("customize: warning: " + PipelineLoRAs.skippedWarning(path: concept.choice.path, loaded.skipped.count, first: first) + "\n")
                }
                if let example = loaded.ignoredTensors.first {
                    FileHandle.standardError.write("customize: warning: LoRA '\(concept.choice.path)': \(loaded.ignoredTensors.count) tensor(s) for components this pipeline lacks were ignored (e.g. \(example))\n")
                }
            } catch {
                throw EvaluationError("--lora \(concept.name): \(describe(error))")
            }
            concepts.append(CompositionConcept(name: concept.name, adapter: adapter, prompt: concept.prompt,
                                               words: concept.words, box: concept.box))
        }
        return (adapters, concepts)
    }

    /// Runs `method`; `tokens` sees the token positions it reads before the denoising starts.
    public static func run(_ method: ComposePlan.Method, pipeline: TextToVideoPipeline, adapters: ConceptAdapters,
                           concepts: [CompositionConcept], settings: CompositionSettings, recordsAttention: Bool,
                           tokens: ([ConceptTokenChoice]) -> Void,
                           progress: @escaping (Int, Int, String) -> Void) throws -> CompositionResult {
        do {
            switch method {
            case .composer:
                var options = LoRAComposerOptions()
                options.recordsAttention = recordsAttention
                let composer = try LoRAComposer(pipeline: pipeline, adapters: adapters, concepts: concepts, options: options)
                tokens(composer.tokenChoices)
                return try composer.generate(settings, progress: progress)
            case .clora:
                var options = CLoRAOptions()
                options.recordsAttention = recordsAttention
                let clora = try CLoRA(pipeline: pipeline, adapters: adapters, concepts: concepts, options: options)
                tokens(try clora.tokenIndices(basePrompt: settings.prompt).choices)
                return try clora.generate(settings, progress: progress)
            case .merge:
                tokens(WeightedLoRAMerge.tokenChoices(concepts: concepts, prompt: settings.prompt, tokenizer: pipeline.tokenizer))
                return try WeightedLoRAMerge.generate(pipeline: pipeline, adapters: adapters, concepts: concepts, settings: settings,
                                                      recordsAttention: recordsAttention, progress: progress)
            }
        } catch let error as CompositionError {
            throw EvaluationError(describe(error))
        }
    }
}
