import ArgumentParser
import Diffusion

/// `--motion-adapter DIR`: AnimateDiff's motion modules (a diffusers `MotionAdapter` folder, as
/// `MotionAdapter.save_pretrained` or `save_motion_modules` writes it) joined with the `--model`
/// folder's image U-Net, as AnimateDiff users combine a Stable Diffusion checkpoint with a motion
/// adapter; for an AnimateDiff folder it replaces the folder's own motion modules.
struct MotionAdapterOption: ParsableArguments {
    @Option(name: .customLong("motion-adapter"),
            help: ArgumentHelp("A diffusers MotionAdapter folder to join with the model's image U-Net (AnimateDiff).", valueName: "dir"))
    var motionAdapter: String?

    /// The pipeline of `model`, with the motion adapter when one was given.
    func load(_ model: String) throws -> TextToVideoPipeline {
        try TextToVideoPipeline.load(folder: model, motionAdapter: motionAdapter)
    }

    /// `model` as metadata records it: the folder, and the motion adapter when one was given.
    func label(_ model: String) -> String { Self.label(model, motionAdapter: motionAdapter) }

    static func label(_ model: String, motionAdapter: String?) -> String {
        motionAdapter.map { "\(model) + motion adapter \($0)" } ?? model
    }
}
