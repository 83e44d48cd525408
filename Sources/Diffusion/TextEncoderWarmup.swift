import Models
import Tensor

/// The head of pretraining's text-encoder warm-up: from one text-encoder state it predicts the
/// caption's token at each of `slots` word positions (`[N, hidden] → [N, slots·vocabulary]`
/// logits). It exists only during the warm-up and is not part of the saved model.
public final class CaptionSlotHead: Module {
    public let projection: Linear
    public let slots: Int
    public let vocabulary: Int

    public init(hiddenSize: Int, slots: Int, vocabulary: Int) {
        projection = Linear(hiddenSize, slots * vocabulary)
        self.slots = slots
        self.vocabulary = vocabulary
        super.init()
        child("projection", projection)
    }
}

/// Pretraining's text-encoder warm-up (stage 1b), measured on this project's world: a CLIP text
/// encoder trained only through the U-Net's loss leaves its states after the end marker (30 of the
/// 40 positions, which cross-attention reads like any other) nearly blind to the caption's shape
/// word, and the U-Net then never learns shapes. Before the U-Net stage, this objective trains the
/// encoder so that the end-marker state and padding states each tell every word of the caption:
/// a linear head predicts, from each of those states, the token at each word slot, and the loss is
/// the cross-entropy averaged over the slots the caption fills.
public enum TextEncoderWarmupObjective {
    /// Padding states per caption drawn at random beside the end marker's.
    public static let padPositionsPerCaption = 3

    /// The loss on `captions` and the share of filled slots whose most likely token is right.
    /// Captions are tokenized as the U-Net stage tokenizes them (padded to the tokenizer's length).
    public static func loss(textEncoder: CLIPTextModel, head: CaptionSlotHead, tokenizer: CLIPTokenizer,
                            captions: [String], random: inout RandomGenerator) throws -> (loss: Tensor, slotAccuracy: Float) {
        guard !captions.isEmpty else { throw ModelError.badInput("text-encoder warm-up: no captions") }
        let ids = captions.map { tokenizer($0).ids }
        let length = ids[0].count, vocabulary = head.vocabulary, slots = head.slots
        // Rows of the flattened states [B·L, D] to read, and each row's word targets.
        var rows: [Int] = [], targets: [Int] = []
        for (item, sequence) in ids.enumerated() {
            let end = sequence.dropFirst().firstIndex(of: tokenizer.endId) ?? (length - 1)
            let words = Array(sequence[1..<end].prefix(slots))
            let padCount = length - end - 1
            var positions = [end]
            if padCount > 0 {
                positions += try random.integers(below: padCount, count: padPositionsPerCaption).map { end + 1 + $0 }
            } else {
                positions += Array(repeating: end, count: padPositionsPerCaption)
            }
            for position in positions {
                let row = rows.count
                rows.append(item * length + position)
                for (slot, word) in words.enumerated() { targets.append(((row * slots) + slot) * vocabulary + word) }
            }
        }
        guard !targets.isEmpty else { throw ModelError.badInput("text-encoder warm-up: the captions hold no words") }
        let states = try textEncoder(ids)
        let width = states.shape[2]
        let read = try Tensor.embedding(indices: rows, weight: states.reshaped([ids.count * length, width]))
        let logProbabilities = try head.projection(read).reshaped([rows.count * slots, vocabulary]).logSoftmax(axis: -1)
        let picked = try Tensor.embedding(indices: targets, weight: logProbabilities.reshaped([rows.count * slots * vocabulary, 1]))
        let loss = try -picked.mean()

        var right = 0
        let values = logProbabilities.data
        for target in targets {
            let line = target / vocabulary, token = target % vocabulary
            let base = values + line * vocabulary
            var best = 0
            for index in 1..<vocabulary where base[index] > base[best] { best = index }
            if best == token { right += 1 }
        }
        return (loss, Float(right) / Float(targets.count))
    }
}
