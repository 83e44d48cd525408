import ArgumentParser
import Evaluation
import Foundation
import Methods

/// What `train-content` and `train-style` share: one Break-for-Make "break" run (`BreakTraining`).
struct BreakRunCommand {
    let role: BreakTraining.Role
    let images: String
    let token: String
    let auxiliary: [String]
    let rank: Int?
    let previewEvery: Int?
    let options: BreakForMakeOptions

    /// The checks train-content and train-style share; `auxiliaryOption` names the partner sets.
    func validate(auxiliaryOption: String, auxiliaryKind: String) throws {
        guard !token.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--token must not be empty") }
        if let rank, rank < 1 { throw ValidationError("--rank must be at least 1, got \(rank)") }
        if let previewEvery, previewEvery < 0 { throw ValidationError("--preview-every must not be negative, got \(previewEvery)") }
        if options.resume {
            if rank != nil { throw ValidationError("--resume continues with the run's own rank; leave out --rank") }
        } else if auxiliary.isEmpty {
            throw ValidationError("\(auxiliaryOption) needs at least one folder of \(auxiliaryKind) images")
        }
    }

    func run() throws {
        try options.threadOptions.apply()
        var run = BreakRun(role: role, images: images, token: token, auxiliary: auxiliary, settings: try options.settings)
        (run.rank, run.previewEvery) = (rank, previewEvery)
        print(try run.run().summary)
    }
}

/// `customize train-content IMAGES --token "<obj>" --aux-styles DIR... --out content.safetensors`.
struct TrainContent: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-content",
        abstract: "Learn a content (object) adapter apart from style: Break-for-Make's first stage.",
        discussion: """
        A PLP adapter (a LoRA on every spatial attention's to_q, to_k, to_v and to_out.0 whose first \
        half of A's columns and of B's rows is frozen) learns the object: the down projection's \
        learnable columns from the images in IMAGES (captions from .txt files beside them, else \
        "a <token>") at --lr, the up projection's learnable rows from the auxiliary style sets at a \
        tenth of it (captions else "a picture in <folder name> style"). The partner half sees many \
        styles, so it does not take on one. Each step averages the gradients of \
        --gradient-accumulation-steps micro-steps of one own and one auxiliary image (the \
        reference's schedule: 1000 steps of 4, lr 1e-4). Train the style with train-style and the \
        same --seed and --rank, then combine both with make.

        The adapter goes to --out (rewritten at every checkpoint); the run (checkpoints, loss.csv, \
        loss.png, previews of "a <token>", latent caches) to <out without extension>-run/. A killed \
        run continues with --resume.

        Example:
          customize train-content samples/concepts/cat --token cat --aux-styles samples/styles/neon samples/styles/pixel --out content.safetensors
        """)

    @Argument(help: "The folder of content images.") var images: String
    @Option(help: "The new word that names the object, e.g. \"<cat>\".") var token: String
    @Option(name: .customLong("aux-styles"), parsing: .upToNextOption, help: "Folders of auxiliary style images (one or more).")
    var auxStyles: [String] = []
    @Option(help: "Adapter rank (default 16).") var rank: Int?
    @Option(help: "A preview every N steps (default 100; 0: none).") var previewEvery: Int?
    @OptionGroup var options: BreakForMakeOptions

    var command: BreakRunCommand {
        BreakRunCommand(role: .content, images: images, token: token, auxiliary: auxStyles, rank: rank,
                        previewEvery: previewEvery, options: options)
    }

    func validate() throws {
        try command.validate(auxiliaryOption: "--aux-styles", auxiliaryKind: "style")
    }

    func run() throws {
        try command.run()
    }
}

/// `customize train-style IMAGES --token "<sty>" --aux-contents DIR... --out style.safetensors`.
struct TrainStyle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-style",
        abstract: "Learn a style adapter apart from content: Break-for-Make's first stage.",
        discussion: """
        The mirror of train-content: the up projection's learnable rows learn the style from the \
        images in IMAGES (captions from .txt files beside them, else "a picture in <token> style") \
        at --lr, the down projection's learnable columns from the auxiliary content sets at a tenth \
        of it (captions else "a <folder name>"). Use the same --seed and --rank as the content run, \
        so that make can combine them.

        Example:
          customize train-style samples/styles/sketch --token sketch --aux-contents samples/concepts/dog samples/concepts/robot --out style.safetensors
        """)

    @Argument(help: "The folder of style images.") var images: String
    @Option(help: "The new word that names the style, e.g. \"<ink>\".") var token: String
    @Option(name: .customLong("aux-contents"), parsing: .upToNextOption, help: "Folders of auxiliary content images (one or more).")
    var auxContents: [String] = []
    @Option(help: "Adapter rank (default 16).") var rank: Int?
    @Option(help: "A preview every N steps (default 100; 0: none).") var previewEvery: Int?
    @OptionGroup var options: BreakForMakeOptions

    var command: BreakRunCommand {
        BreakRunCommand(role: .style, images: images, token: token, auxiliary: auxContents, rank: rank,
                        previewEvery: previewEvery, options: options)
    }

    func validate() throws {
        try command.validate(auxiliaryOption: "--aux-contents", auxiliaryKind: "content")
    }

    func run() throws {
        try command.run()
    }
}
