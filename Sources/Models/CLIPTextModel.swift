import Tensor

/// transformers' `CLIPTextModel` (models/clip/modeling_clip.py): the text tower of CLIP that
/// diffusers pipelines use as `text_encoder`. Parameter paths are the state-dict keys of the
/// checkpoints on the Hub (`text_model.encoder.layers.0.self_attn.q_proj.weight`); files saved by
/// transformers 5, which drops the `text_model.` prefix, load as well (see `loadCheckpoint(from:)`).
public final class CLIPTextModel: Module {
    public let config: CLIPTextConfig
    public let textModel: CLIPTextTransformer

    /// Builds the model with zero weights (load them with `loadCheckpoint`); throws `badConfig` for
    /// configs this implementation does not support.
    public init(config: CLIPTextConfig, file: String = "config.json") throws {
        try config.validate(file: file)
        self.config = config
        textModel = CLIPTextTransformer(config: config)
        super.init()
        child("text_model", textModel)
    }

    /// The last hidden states `[B, L, hidden_size]` (after `final_layer_norm`) for `B` token
    /// sequences of one length `L ≤ max_position_embeddings`: transformers' `last_hidden_state`,
    /// which diffusers pipelines feed to the U-Net's cross-attention.
    public func callAsFunction(_ ids: [[Int]]) throws -> Tensor {
        try textModel(ids)
    }

    /// transformers' `pooler_output` `[B, hidden_size]`: each sequence's state at its first
    /// `eos_token_id` (at its largest id when `eos_token_id` is 2, the configs from before
    /// transformers PR #24773), taken from `lastHiddenState` of the same `ids`.
    public func pooledOutput(_ lastHiddenState: Tensor, ids: [[Int]]) throws -> Tensor {
        guard lastHiddenState.rank == 3, lastHiddenState.shape[0] == ids.count, ids.allSatisfy({ $0.count == lastHiddenState.shape[1] }) else {
            throw ModelError.badInput("CLIP pooled output: hidden states \(lastHiddenState.shape) do not belong to \(ids.count) sequences of \(ids.first?.count ?? 0) ids")
        }
        let length = lastHiddenState.shape[1], width = lastHiddenState.shape[2]
        let result = Tensor(uninitialized: [ids.count, width])
        for (item, sequence) in ids.enumerated() {
            let position: Int
            if config.eosTokenId == 2 {
                position = sequence.indices.max { sequence[$0] < sequence[$1] || (sequence[$0] == sequence[$1] && $0 > $1) } ?? 0
            } else {
                // argmax of an all-false mask is 0, as in torch.
                position = sequence.firstIndex(of: config.eosTokenId ?? -1) ?? 0
            }
            (result.data + item * width).update(from: lastHiddenState.data + (item * length + position) * width, count: width)
        }
        return result
    }

    /// Loads weights saved with the `text_model.` prefix (the Hub's files, transformers 4) or
    /// without it (transformers 5's `save_pretrained`). The `text_model.embeddings.position_ids`
    /// buffer older files carry is not a parameter and is skipped.
    public func loadCheckpoint(from source: WeightSource) throws {
        let filtered = SkippingWeights(source) { $0.hasSuffix("embeddings.position_ids") }
        if filtered.names.contains(where: { $0.hasPrefix("text_model.") }) {
            try (self as Module).loadWeights(from: filtered, prefix: "")
        } else {
            try textModel.loadWeights(from: filtered, prefix: "")
        }
    }
}

/// transformers' `CLIPTextTransformer`: `embeddings`, `encoder`, `final_layer_norm`.
public final class CLIPTextTransformer: Module {
    public let config: CLIPTextConfig
    public let embeddings: CLIPTextEmbeddings
    public let layers: ModuleList<CLIPEncoderLayer>
    public let finalLayerNorm: LayerNorm

    init(config: CLIPTextConfig) {
        self.config = config
        embeddings = CLIPTextEmbeddings(config: config)
        layers = ModuleList((0 ..< config.numHiddenLayers).map { _ in CLIPEncoderLayer(config: config) })
        finalLayerNorm = LayerNorm(config.hiddenSize, epsilon: config.layerNormEps)
        super.init()
        child("embeddings", embeddings)
        child("encoder", CLIPEncoder(layers))
        child("final_layer_norm", finalLayerNorm)
    }

    func callAsFunction(_ ids: [[Int]]) throws -> Tensor {
        var states = try embeddings(ids)
        let mask = Self.causalMask(length: states.shape[1])
        for layer in layers { states = try layer(states, mask: mask) }
        return try finalLayerNorm(states)
    }

    /// The additive causal mask `[L, L]`: position i attends to positions 0…i (transformers'
    /// `create_causal_mask`; −∞ rather than the dtype's minimum, which gives the same softmax).
    static func causalMask(length: Int) -> Tensor {
        let mask = Tensor(zeros: [length, length])
        for row in 0 ..< length {
            for column in row + 1 ..< max(length, row + 1) { mask.data[row * length + column] = -.infinity }
        }
        return mask
    }
}

/// transformers' `CLIPEncoder`: only the `layers` ModuleList (its forward is the loop above).
final class CLIPEncoder: Module {
    init(_ layers: ModuleList<CLIPEncoderLayer>) {
        super.init()
        child("layers", layers)
    }
}

/// transformers' `CLIPTextEmbeddings`: `token_embedding` plus `position_embedding` of positions 0…L−1.
public final class CLIPTextEmbeddings: Module {
    public let tokenEmbedding: Embedding
    public let positionEmbedding: Embedding

    init(config: CLIPTextConfig) {
        tokenEmbedding = Embedding(config.vocabSize, config.hiddenSize)
        positionEmbedding = Embedding(config.maxPositionEmbeddings, config.hiddenSize)
        super.init()
        child("token_embedding", tokenEmbedding)
        child("position_embedding", positionEmbedding)
    }

    /// `[B, L, hidden]` for `B` sequences of one length `L`.
    func callAsFunction(_ ids: [[Int]]) throws -> Tensor {
        let batch = ids.count
        guard batch > 0, let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw ModelError.badInput("CLIP text model: expected one or more token sequences of one non-zero length, got lengths \(ids.map(\.count))")
        }
        guard length <= positionEmbedding.count else {
            throw ModelError.badInput("CLIP text model: \(length) tokens exceed max_position_embeddings \(positionEmbedding.count)")
        }
        if let bad = ids.joined().first(where: { $0 < 0 || $0 >= tokenEmbedding.count }) {
            throw ModelError.badInput("CLIP text model: token id \(bad) is outside the vocabulary of \(tokenEmbedding.count)")
        }
        let tokens = try tokenEmbedding(Array(ids.joined())).reshaped([batch, length, tokenEmbedding.dimension])
        let positions = try positionEmbedding(Array(0 ..< length))
        return try tokens + positions
    }
}

/// transformers' `CLIPEncoderLayer`, pre-LayerNorm: x + attn(ln1(x)), then x + mlp(ln2(x)).
public final class CLIPEncoderLayer: Module {
    public let selfAttention: CLIPAttention
    public let layerNorm1: LayerNorm
    public let mlp: CLIPMLP
    public let layerNorm2: LayerNorm

    init(config: CLIPTextConfig) {
        selfAttention = CLIPAttention(config: config)
        layerNorm1 = LayerNorm(config.hiddenSize, epsilon: config.layerNormEps)
        mlp = CLIPMLP(config: config)
        layerNorm2 = LayerNorm(config.hiddenSize, epsilon: config.layerNormEps)
        super.init()
        child("self_attn", selfAttention)
        child("layer_norm1", layerNorm1)
        child("mlp", mlp)
        child("layer_norm2", layerNorm2)
    }

    func callAsFunction(_ x: Tensor, mask: Tensor) throws -> Tensor {
        let attended = try x + selfAttention(layerNorm1(x), mask: mask)
        return try attended + mlp(layerNorm2(attended))
    }
}

/// transformers' `CLIPAttention`: `q_proj`, `k_proj`, `v_proj`, `out_proj` (all with bias),
/// `num_attention_heads` heads, scale `head_dim^-0.5`, here with an additive mask.
public final class CLIPAttention: Module {
    public let heads: Int
    public let scale: Float
    public let qProj: Linear
    public let kProj: Linear
    public let vProj: Linear
    public let outProj: Linear

    init(config: CLIPTextConfig) {
        let width = config.hiddenSize
        heads = config.numAttentionHeads
        scale = 1 / Float(config.headDimension).squareRoot()
        qProj = Linear(width, width)
        kProj = Linear(width, width)
        vProj = Linear(width, width)
        outProj = Linear(width, width)
        super.init()
        child("k_proj", kProj)
        child("v_proj", vProj)
        child("q_proj", qProj)
        child("out_proj", outProj)
    }

    func callAsFunction(_ x: Tensor, mask: Tensor) throws -> Tensor {
        let q = try Attention.splitHeads(qProj(x), heads: heads)
        let k = try Attention.splitHeads(kProj(x), heads: heads)
        let v = try Attention.splitHeads(vProj(x), heads: heads)
        let attended = try Tensor.attention(query: q, key: k, value: v, scale: scale, mask: mask)
        return try outProj(Attention.mergeHeads(attended, heads: heads))
    }
}

/// transformers' `CLIPMLP`: `fc1`, the configured activation, `fc2`.
public final class CLIPMLP: Module {
    public let fc1: Linear
    public let fc2: Linear
    public let activation: String

    init(config: CLIPTextConfig) {
        fc1 = Linear(config.hiddenSize, config.intermediateSize)
        fc2 = Linear(config.intermediateSize, config.hiddenSize)
        activation = config.hiddenAct
        super.init()
        child("fc1", fc1)
        child("fc2", fc2)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let hidden = try fc1(x)
        let activated: Tensor
        switch activation {
        case "quick_gelu": activated = hidden.quickGELU()
        case "gelu": activated = hidden.gelu()
        default: activated = hidden.gelu(approximate: .tanh)  // gelu_new, gelu_pytorch_tanh (validated by the config)
        }
        return try fc2(activated)
    }
}

/// A weight source with some names hidden (buffers that are not parameters).
struct SkippingWeights: WeightSource {
    let base: WeightSource
    let names: [String]
    private let kept: Set<String>

    init(_ base: WeightSource, skip: (String) -> Bool) {
        self.base = base
        names = base.names.filter { !skip($0) }
        kept = Set(names)
    }

    var location: String { base.location }
    func shape(of name: String) -> [Int]? { kept.contains(name) ? base.shape(of: name) : nil }
    func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws {
        try base.read(name, into: destination, count: count)
    }
}
