import Diffusion
import Foundation
import Models
import Tensor

/// One concept of a composition: a loaded LoRA adapter, the prompt it is rendered with, the words
/// that name it (whose tokens the methods read attention at) and, for LoRA-Composer, its box.
public struct CompositionConcept: Sendable, Equatable {
    /// The name the user knows it by (messages, files).
    public var name: String
    /// The adapter's name in `ConceptAdapters`.
    public var adapter: String
    /// LoRA-Composer's region prompt, or CLoRA's prompt for this LoRA.
    public var prompt: String
    /// Words that name the concept (e.g. its trigger token and its class word); every token of each
    /// that occurs in a prompt is a concept token there.
    public var words: [String]
    /// LoRA-Composer's box; unused by CLoRA and merging.
    public var box: ConceptBox?

    public init(name: String, adapter: String, prompt: String, words: [String], box: ConceptBox? = nil) {
        self.name = name
        self.adapter = adapter
        self.prompt = prompt
        self.words = words
        self.box = box
    }
}

/// What a composed render is asked for besides its concepts: the arguments of
/// `TextToVideoPipeline.generate`.
public struct CompositionSettings: Sendable, Equatable {
    /// The global prompt (LoRA-Composer) or base prompt (CLoRA), the whole prompt when merging.
    public var prompt: String
    public var negative: String
    public var frames: Int
    public var steps: Int
    public var guidance: Float
    public var seed: UInt64
    public var scheduler: SchedulerKind

    public init(prompt: String, negative: String = "", frames: Int = 1, steps: Int = 25, guidance: Float = TextToVideoPipeline.defaultGuidance,
                seed: UInt64 = 0, scheduler: SchedulerKind = .ddim) {
        self.prompt = prompt
        self.negative = negative
        self.frames = frames
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.scheduler = scheduler
    }

    func validate() throws {
        guard frames >= 1 else { throw CompositionError.invalidSetting("frames must be at least 1, got \(frames)") }
        guard steps >= 1 else { throw CompositionError.invalidSetting("steps must be at least 1, got \(steps)") }
        guard guidance.isFinite else { throw CompositionError.invalidSetting("guidance must be a finite number, got \(guidance)") }
    }

    var usesGuidance: Bool { guidance > 1 }

    /// `value` of a 50-step schedule at this step count, rounded (the references tune their step
    /// numbers for 50 steps; ours runs fewer).
    func scaledFromFiftySteps(_ value: Int) -> Int {
        Int((Double(value) * Double(steps) / 50).rounded())
    }
}

/// The tokens a method read for one concept in one prompt: shown to users, who name concepts by
/// words and should see which positions those became.
public struct ConceptTokenChoice: Sendable, Equatable {
    public var concept: String
    public var prompt: String
    public var positions: [Int]
    /// `2 (cat), 3 (dog)`.
    public var description: String
}

/// One concept token's attention over the picture, averaged over the denoising steps: what
/// `--save-attention` draws.
public struct ConceptTokenAttention: Sendable {
    public var concept: String
    public var prompt: String
    public var position: Int
    /// The token's readable text.
    public var token: String
    public var grid: FeatureGrid
    /// One map per frame, `grid.height × grid.width`, row-major.
    public var frames: [[Float]]
}

/// A composed render.
public struct CompositionResult {
    /// The final latents `[1, C, F, h, w]`.
    public var latents: Tensor
    /// One image `[3, H, W]` per frame in [-1, 1].
    public var frames: [Tensor]
    public var tokens: [ConceptTokenChoice]
    public var attention: [ConceptTokenAttention]
    /// What happened along the way worth telling (where latent guidance stopped, …).
    public var notes: [String]
}
