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
    /// Whether `maskedBatch(index:count:frames:)` can tell objects from background; the
    /// `object_weight` options are refused when it cannot. False unless the data says otherwise.
    var providesObjectMasks: Bool { get }
    /// `batch(index:count:frames:)` with which of its pixels show an object: `[count·frames, 1, side,
    /// side]` in the batch's order, 1 on objects and 0 on background, drawn from the same render as
    /// the pixels; masks are nil when `providesObjectMasks` is false.
    func maskedBatch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String], masks: Tensor?)
    /// `count` captions of the kinds the batches carry (the text-encoder warm-up's data), a pure
    /// function of its arguments; by default batch `index`'s image captions.
    func captions(index: Int, count: Int) throws -> [String]
    /// The part of the data `focus` names (`motion_training.focus`), drawing as this data does; nil
    /// when the data has no parts to name (the default). Throws `PretrainingFocusError` naming the
    /// list it cannot use.
    func focused(_ focus: PretrainConfig.MotionTraining.Focus) throws -> PretrainingData?
}

/// A `motion_training.focus` list the data cannot use: `key` is the list's key inside `focus`
/// (empty: the focus as a whole).
public struct PretrainingFocusError: Error, Equatable {
    public var key: String
    public var reason: String
    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
}

extension PretrainingData {
    public var providesObjectMasks: Bool { false }

    public func focused(_ focus: PretrainConfig.MotionTraining.Focus) throws -> PretrainingData? { nil }

    public func captions(index: Int, count: Int) throws -> [String] {
        try batch(index: index, count: count, frames: 1).captions
    }

    public func maskedBatch(index: Int, count: Int, frames: Int) throws -> (pixels: Tensor, captions: [String], masks: Tensor?) {
        let (pixels, captions) = try batch(index: index, count: count, frames: frames)
        return (pixels, captions, nil)
    }
}
