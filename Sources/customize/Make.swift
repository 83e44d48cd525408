import ArgumentParser
import Evaluation

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
        print(try MakeRun(content: content, style: style, contentImages: contentImages, styleImages: styleImages,
                          settings: try options.settings).run().summary)
    }
}
