import Foundation
import Tensor

extension Module {
    /// True when this model's pass on a batch is the batch of its passes on each sample and changes
    /// no state: every attention layer runs the default processor and every adapter delta is
    /// per sample (`LayerDelta.isPerSample`). Methods that install their own processors or deltas
    /// (masks by batch position, recorded attention maps, pending region terms) make it false, and
    /// their batches stay whole.
    public var infersSamplesIndependently: Bool {
        if let attention = self as? Attention, !(attention.processor is ScaledDotProductAttentionProcessor) { return false }
        if let layer = self as? LayerWithDeltas, !layer.deltas.allSatisfy({ $0.isPerSample }) { return false }
        return children.allSatisfy { $0.module.infersSamplesIndependently }
    }

    /// True when a training pass through this module draws dropout masks (a `Dropout` of nonzero
    /// probability): such a pass draws each mask for the whole batch, so it keeps its batch whole.
    /// Without one, a training pass computes what an inference-mode pass does.
    public var drawsDropout: Bool {
        if let dropout = self as? Dropout, dropout.probability > 0 { return true }
        return children.contains { $0.module.drawsDropout }
    }
}

/// A denoiser's pass sample by sample, the samples dealt into one group per engine thread and the
/// groups run side by side (`Parallel.independentGroups`), then joined: on a small model most of a
/// split-by-operation pass goes to waking threads and waiting at the end of each operation, which
/// whole samples per thread avoid. On two threads, classifier-free guidance's batch of two
/// (unconditional and conditional) takes one thread per sample, and so does a training step's pair
/// of clips. With fewer samples than threads (or one thread) the samples run one after another,
/// each operation over all threads. Either way every sample runs alone, and the engine's kernels
/// give the same bytes on any thread count, so a sample's bytes depend neither on the thread count
/// nor on the rest of its batch (DESIGN principle 8). While gradients are recorded the pass is
/// `Tensor.samplewise`: one gradient node whose backward pass runs the samples' backward passes
/// side by side too, each parameter's gradient the sum of the samples' in sample order. Nil,
/// running nothing, for a batch of one, when `model` does not infer samples independently, when a
/// training batch holds pictures (one frame per sample), or when a training pass (a
/// `dropoutGenerator`) draws dropout: the caller then runs the batch whole. A training pass that
/// draws none computes what an inference-mode pass does, so `infer` gets no generator and the
/// caller's stays as it was.
func inferInGroups(_ model: Module, sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                   dropoutGenerator: RandomGenerator?,
                   _ infer: (Tensor, [Float], Tensor) throws -> Tensor) throws -> Tensor? {
    let batch = sample.shape.first ?? 0
    guard !drawsDropout(model, dropoutGenerator), encoderHiddenStates.shape.first == batch,
          timesteps.count == batch || timesteps.count == 1 else { return nil }
    func steps(_ range: Range<Int>) -> [Float] { timesteps.count == 1 ? timesteps : Array(timesteps[range]) }
    if GradMode.isEnabled {
        // Measured (2-core AMD EPYC Zen 4): a training step on two clips of 8 frames takes 0.81-0.87
        // of the whole batch's time sample by sample, but one on 8 single images 1.16, so pictures
        // (one frame per sample) keep their batch whole.
        guard batch > 1, sample.rank == 5, sample.shape[2] > 1, model.infersSamplesIndependently else { return nil }
        return try Tensor.samplewise(batch: batch, inputs: [sample, encoderHiddenStates]) { index, rows in
            try infer(rows[0], steps(index..<index + 1), rows[1])
        }
    }
    return try inferInGroups(model, count: batch) { range in
        try infer(sample.slice(rows: range), steps(range), encoderHiddenStates.slice(rows: range))
    }
}

/// Classifier-free guidance repeats one noisy sample at one timestep for each text. Where a
/// model's first layers read neither the text nor the timestep (UNet3D's conv_in and
/// transformer_in: `inputStates`), a batch whose samples are the same bytes at the same timestep
/// runs them once, on the first sample alone over all threads, and only the rest (`rest`, given
/// those states, the timestep and one sample's text) sample by sample in groups as
/// `inferInGroups` above. Each sample's states are the ones its own pass would compute (alone, and
/// the same bytes on any thread count), so the result is `inferInGroups`' to the byte. Nil, running
/// nothing, in `inferInGroups`' cases and when the samples or timesteps differ.
func inferSharingInputStates(_ model: Module, sample: Tensor, timesteps: [Float], encoderHiddenStates: Tensor,
                             dropoutGenerator: RandomGenerator?,
                             inputStates: (Tensor) throws -> Tensor,
                             rest: (Tensor, [Float], Tensor) throws -> Tensor) throws -> Tensor? {
    let batch = sample.shape.first ?? 0
    guard infersInGroups(model, count: batch), !drawsDropout(model, dropoutGenerator),
          encoderHiddenStates.shape.first == batch, let step = timesteps.first,
          timesteps.count == 1 || (timesteps.count == batch && timesteps.allSatisfy({ $0 == step })) else { return nil }
    let rowCount = sample.count / batch
    for row in 1..<batch where memcmp(sample.data, sample.data + row * rowCount, rowCount * MemoryLayout<Float>.stride) != 0 {
        return nil
    }
    let states = try inputStates(sample.slice(rows: 0..<1))
    return try inferInGroups(model, count: batch) { row in try rest(states, [step], encoderHiddenStates.slice(rows: row)) }
}

/// Image-wise inference (the autoencoder's encoder or decoder) on the rows of `images` one by one in
/// groups, as `inferInGroups` above; nil in the same cases, and while `context` is training.
func inferInGroups(_ model: Module, images: Tensor, context: ForwardContext, _ infer: (Tensor) throws -> Tensor) throws -> Tensor? {
    guard !context.isTraining else { return nil }
    return try inferInGroups(model, count: images.shape.first ?? 0) { try infer(images.slice(rows: $0)) }
}

/// Whether a pass of `model` given `dropoutGenerator` draws dropout masks, one for the whole batch.
private func drawsDropout(_ model: Module, _ dropoutGenerator: RandomGenerator?) -> Bool {
    dropoutGenerator != nil && model.drawsDropout
}

/// Whether `inferInGroups` splits a batch of `count`: no gradient recorded, more than one sample,
/// and samples independent.
private func infersInGroups(_ model: Module, count: Int) -> Bool {
    !GradMode.isEnabled && count > 1 && model.infersSamplesIndependently
}

/// Runs `infer` on each one-row range of `0..<count`, in groups, and joins the results.
private func inferInGroups(_ model: Module, count: Int, _ infer: (Range<Int>) throws -> Tensor) throws -> Tensor? {
    guard infersInGroups(model, count: count) else { return nil }
    func oneByOne(_ range: Range<Int>) throws -> [Tensor] { try range.map { try infer($0..<$0 + 1) } }
    let parts = try Parallel.independentGroups(count: count, oneByOne)?.flatMap { $0 } ?? oneByOne(0..<count)
    return try Tensor.concat(parts, axis: 0)
}
