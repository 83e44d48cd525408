/// Training passes over a batch whose samples do not interact, run sample by sample side by side.
///
/// A denoiser's pass over a batch is the batch of its passes over each sample (group norm,
/// attention and the convolutions never mix samples). Inference already runs a batch that way, one
/// group of samples per engine thread (the models' `inferInGroups`); `Tensor.samplewise` does the
/// same for a pass that records gradients. Each sample's forward pass builds its own graph, and the
/// whole pass records one gradient node whose backward pass runs the samples' backward passes side
/// by side again. The samples share their parameters, so within those backward passes a leaf's
/// gradient goes to the sample's own `GradientSink`, not to `grad`; the node then hands each
/// parameter the sum of the samples' gradients, added in sample order, and each per-sample input
/// the rows of its samples. Which thread runs a sample never changes what it computes, so a
/// samplewise pass gives the same bytes on any thread count.

/// Where the leaves of one sample's backward pass put their gradients (see `accumulateGrad`).
final class GradientSink {
    /// The sink of the backward pass running on this task, if it belongs to a samplewise pass.
    @TaskLocal static var current: GradientSink?

    private(set) var gradients: [ObjectIdentifier: Tensor] = [:]

    /// Keeps `gradient` for `leaf` (a copy unless `owned`), or adds it to what the leaf already has.
    func add(_ gradient: Tensor, for leaf: Tensor, owned: Bool) {
        let key = ObjectIdentifier(leaf)
        if let existing = gradients[key] {
            existing.add(gradient)
        } else {
            gradients[key] = owned ? gradient : gradient.copy()
        }
    }

    func gradient(of leaf: Tensor) -> Tensor? { gradients[ObjectIdentifier(leaf)] }
}

extension Tensor {
    /// `body`'s pass over a batch of `batch` samples, run sample by sample: `body(sample, rows)`
    /// gets that sample's row of each of `inputs` (each `[batch, …]`) and returns its output
    /// (`[n, …]`, the same `n` and trailing shape for every sample); the result is the samples'
    /// outputs joined along axis 0. `body` must treat every sample alike and keep no state between
    /// calls: the samples run in one group per engine thread, side by side
    /// (`Parallel.independentGroups`), or one after another on one thread.
    ///
    /// With gradients recorded, the result's gradient node covers every input that needs one and
    /// every leaf the samples' graphs reach (the parameters): its backward pass back-propagates the
    /// samples side by side and gives each parameter the sum of their gradients in sample order. A
    /// sample's rows of `inputs` reach `body` as leaves of their own (views, no copy), so its graph
    /// never leads into the caller's; any other tensor `body` reads must carry no gradient history
    /// (a parameter, a constant), or the pass throws. Every sample's gradients are kept until the
    /// last sample's backward pass ends: the pass holds its trained parameters' gradients once per
    /// sample.
    public static func samplewise(batch: Int, inputs: [Tensor],
                                  _ body: (_ sample: Int, _ rows: [Tensor]) throws -> Tensor) throws -> Tensor {
        for input in inputs where input.shape.first != batch {
            throw TensorError.invalidArgument(op: "samplewise", reason: "input of shape \(input.shape) does not hold \(batch) samples")
        }
        guard batch > 0 else { throw TensorError.invalidArgument(op: "samplewise", reason: "no samples") }
        let recording = GradMode.isEnabled
        let firstSerial = GradNode.nextSerial
        struct Sample { var rows: [Tensor]; var output: Tensor }
        func run(_ range: Range<Int>) throws -> [Sample] {
            try range.map { sample in
                let rows = try inputs.map { input -> Tensor in
                    let row = try Tensor.withoutGrad { try input.slice(rows: sample..<sample + 1) }
                    row.requiresGrad = recording && input.needsGrad
                    return row
                }
                return Sample(rows: rows, output: try body(sample, rows))
            }
        }
        let samples = try Parallel.independentGroups(count: batch, run)?.flatMap { $0 } ?? run(0..<batch)
        let trailing = Array(samples[0].output.shape.dropFirst())
        var outputStarts = [0]
        for sample in samples {
            guard Array(sample.output.shape.dropFirst()) == trailing else {
                throw TensorError.invalidArgument(op: "samplewise",
                    reason: "outputs of shapes \(samples[0].output.shape) and \(sample.output.shape) do not join")
            }
            outputStarts.append(outputStarts.last! + (sample.output.shape.first ?? 0))
        }
        let output = try Tensor.withoutGrad { try Tensor.concat(samples.map { $0.output.detached() }, axis: 0) }
        guard recording else { return output }

        // The parameters: leaves the samples' graphs reach, other than their own rows, in order of
        // first appearance. A graph that leads into one recorded before the pass would have every
        // sample's backward pass run (and release) the same nodes.
        var leaves: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        for sample in samples where sample.output.needsGrad {
            let rows = Set(sample.rows.map(ObjectIdentifier.init))
            for tensor in sample.output.topologicalOrder() {
                if let node = tensor.node, node.serial < firstSerial {
                    throw TensorError.invalidArgument(op: "samplewise",
                        reason: "a sample's pass reads a tensor of shape \(tensor.shape) computed with gradients before it "
                            + "(by \(node.op)); pass it in `inputs` or as a leaf")
                }
                if tensor.requiresGrad, !rows.contains(ObjectIdentifier(tensor)), seen.insert(ObjectIdentifier(tensor)).inserted {
                    leaves.append(tensor)
                }
            }
        }
        let gradientInputs = inputs.indices.filter { inputs[$0].needsGrad }
        return record(output, op: "samplewise", inputs: gradientInputs.map { inputs[$0] } + leaves) { gradient in
            let sinks = samples.map { _ in GradientSink() }
            func backward(_ range: Range<Int>) throws {
                for sample in range where samples[sample].output.needsGrad {
                    let rows = try gradient.slice(rows: outputStarts[sample]..<outputStarts[sample + 1])
                    try GradientSink.$current.withValue(sinks[sample]) { try samples[sample].output.backward(gradient: rows) }
                }
            }
            if try Parallel.independentGroups(count: batch, { try backward($0) }) == nil { try backward(0..<batch) }

            var gradients: [Tensor?] = []
            for input in gradientInputs {
                let rows = samples.indices.map { sinks[$0].gradient(of: samples[$0].rows[input]) ?? Tensor(zeros: samples[$0].rows[input].shape) }
                gradients.append(try Tensor.concat(rows, axis: 0))
            }
            for leaf in leaves {
                var total: Tensor?
                for sink in sinks {
                    guard let part = sink.gradient(of: leaf) else { continue }
                    if let total { total.add(part) } else { total = part }
                }
                gradients.append(total)
            }
            return gradients
        }
    }
}
