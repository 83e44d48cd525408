import Tensor

/// What a forward pass carries down the module tree besides the hidden states: the clip length
/// (diffusers' `num_frames`), the text states cross-attention reads (already repeated per frame,
/// as diffusers' `repeat_interleave` does), and, while training, the generator dropout draws from.
///
/// A class so that every dropout layer advances the same generator in turn (principle 8: one
/// seeded stream per pass, independent of thread count).
public final class ForwardContext {
    /// Frames per clip; batches are laid out `[batch·frames, C, H, W]` with a clip's frames consecutive.
    public let frames: Int
    /// Encoder hidden states `[batch·frames, L, D]` for cross-attention, or nil.
    public let encoderHiddenStates: Tensor?
    /// Non-nil in training mode: dropout layers are active and draw their masks from it.
    public var dropoutGenerator: RandomGenerator?

    public init(frames: Int = 1, encoderHiddenStates: Tensor? = nil, dropoutGenerator: RandomGenerator? = nil) {
        self.frames = frames
        self.encoderHiddenStates = encoderHiddenStates
        self.dropoutGenerator = dropoutGenerator
    }

    public var isTraining: Bool { dropoutGenerator != nil }
}
