import Tensor

/// Where pretraining batches come from: the synthetic world in the CLI, small patterns in tests.
/// Diffusion does not know the world (the arrows of DESIGN.md); the CLI hands it in through this.
public protocol PretrainingData {
    /// Side of the square images, in pixels.
    var imageSide: Int { get }
    /// Every word captions can use: the tokenizer gives each one its own token.
    var vocabularyWords: [String] { get }
    /// Batch number `index` of `count` samples with `frames` frames each: pixels
    /// `[count·frames, 3, side, side]` in [-1, 1] with a clip's frames consecutive, and one caption
    /// per sample. A pure function of its arguments (resume replays the same stream).
    func batch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String])
    /// Which pixels of `batch(index:count:frames:)` show an object: `[count·frames, 1, side, side]`
    /// in the batch's order, 1 on objects and 0 on background; nil when the data cannot tell (then
    /// the `object_weight` options are refused).
    func objectMasks(index: Int, count: Int, frames: Int) throws -> Tensor?
}

extension PretrainingData {
    public func objectMasks(index: Int, count: Int, frames: Int) throws -> Tensor? { nil }
}
