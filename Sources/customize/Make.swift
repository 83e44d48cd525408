import ArgumentParser
import Adapters
import Checkpoints
import Diffusion
import Foundation
import Methods

/// `customize make --content C --style S --content-images DIR --style-images DIR --out made.safetensors`:
/// Break-for-Make's second stage (`MakeTraining`).
struct Make: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine a content and a style adapter and fine-tune them together: Break-for-Make's second stage.",
        discussion: """
        The made adapter takes its up projection from the style adapter and its down projection from \
        the content adapter; their frozen halves must be the same, so both must come from \
        train-content and train-style with the same --seed and --rank (other pairs are refused). It \
        is then fine-tuned on both image sets together (each micro-step: a style image with its \
        caption plus a content image with its caption; 1000 steps of 4 micro-steps at 1e-4, as the \
        reference's second stage), the gradients preconditioned as in Riemannian \
        preconditioned LoRA (grad_B (A Aᵀ + δI)⁻¹, (Bᵀ B + δI)⁻¹ grad_A, δ = 1e-6). Captions come from \
        .txt files beside the images, else "a picture in <style token> style" and "a <content token>" \
        (the tokens the adapters recorded). Render the result with --lora:

        Example:
          customize make --content content.safetensors --style style.safetensors --content-images samples/concepts/cat \\
            --style-images samples/styles/sketch --out made.safetensors
          customize render "a large cat on a blue background in sketch style" --lora made.safetensors --frames 1 --out made.png
        """)

    @Option(help: "The train-content adapter.") var content: String
    @Option(help: "The train-style adapter.") var style: String
    @Option(name: .customLong("content-images"), help: "The content images (as given to train-content).") var contentImages: String
    @Option(name: .customLong("style-images"), help: "The style images (as given to train-style).") var styleImages: String
    @OptionGroup var options: BreakForMakeOptions

    func run() throws {
        try options.threadOptions.apply()
        try RenderOutput.checkWritable(options.out, option: "--out")
        let folder = options.runFolder
        let (pipeline, baseModel) = try options.loadPipeline()
        let training: MakeTraining
        if options.resume {
            training = try MakeTraining(resumingIn: folder, pipeline: pipeline, baseModel: baseModel) { options.adjust(&$0) }
        } else {
            try RunFolder.requireFresh(options.runFolder)
            let config = options.config(rank: nil)
            let contentToken = try Self.token(of: content), styleToken = try Self.token(of: style)
            let contentSources = try BreakForMakeImages.read(contentImages, fallbackCaption: "a \(contentToken)", pipeline: pipeline,
                                                             jitter: config.cropJitter, command: "make")
            let styleSources = try BreakForMakeImages.read(styleImages, fallbackCaption: "a picture in \(styleToken) style",
                                                           pipeline: pipeline, jitter: config.cropJitter, command: "make")
            training = try MakeTraining(newRunIn: folder, pipeline: pipeline, config: config, contentAdapter: content, styleAdapter: style,
                                        contentImages: BreakForMakeImages.encode(contentSources, pipeline: pipeline, config: config,
                                                                                 label: "make: encoding content images"),
                                        styleImages: BreakForMakeImages.encode(styleSources, pipeline: pipeline, config: config,
                                                                               label: "make: encoding style images"),
                                        baseModel: baseModel)
        }
        FileHandle.standardError.write("make: \(training.contentImages.count) content and \(training.styleImages.count) style images, "
                                       + "\(training.config.maxTrainSteps) steps\n")
        AdapterTrainingReport.attach(training.training, label: "make")
        let started = Date()
        try training.run(output: options.out, dtype: AdapterFileType.parse(options.dtype))
        print("made in \(ProgressReporter.formatDuration(Date().timeIntervalSince(started))); wrote \(options.out) (run in \(folder))")
    }

    /// The token a Break-for-Make adapter file recorded.
    static func token(of file: String) throws -> String {
        let metadata = LoRAFileMetadata(raw: try SafeTensorsFile(path: file).metadata)
        guard case let .string(token)? = metadata.training["token"] else {
            throw ExitStatus.Failure(status: .failure, message: "'\(file)' records no token; is it a train-content or train-style adapter?")
        }
        return token
    }
}
