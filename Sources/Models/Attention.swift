import Tensor

/// diffusers' `Attention` (attention_processor.py): `to_q`, `to_k`, `to_v`, `to_out.0` (Linear) and
/// `to_out.1` (Dropout), `heads` of `dim_head` channels, scale `dim_head^-0.5`; optionally a
/// `group_norm` on the input, a residual connection and an output rescale (the VAE's mid-block
/// attention). The projections are computed here; the attention itself is the `processor`'s.
public final class Attention: Module {
    public let heads: Int
    public let dimHead: Int
    public let scale: Float
    public let queryDimension: Int
    public let crossAttentionDimension: Int?
    public let residualConnection: Bool
    public let rescaleOutputFactor: Float
    public let groupNorm: GroupNorm?
    public let toQ: Linear
    public let toK: Linear
    public let toV: Linear
    public let toOut: Linear
    let outputDropout: Dropout
    /// The core attention; replace it to change how this layer attends (principle 2).
    public var processor: AttentionProcessor = ScaledDotProductAttentionProcessor.shared
    /// This layer's path in its model, set by the model once its tree is built.
    public internal(set) var path: String = ""

    /// - Parameters mirror diffusers' `Attention.__init__`: `crossAttentionDimension` nil means
    ///   self-attention; `bias` applies to to_q/to_k/to_v, `outBias` to to_out.0;
    ///   `normGroups` adds `group_norm` with `epsilon`.
    public init(queryDimension: Int, crossAttentionDimension: Int? = nil, heads: Int = 8, dimHead: Int = 64,
                dropout: Float = 0, bias: Bool = false, outBias: Bool = true, normGroups: Int? = nil,
                epsilon: Float = 1e-5, residualConnection: Bool = false, rescaleOutputFactor: Float = 1) {
        self.heads = heads
        self.dimHead = dimHead
        self.scale = 1 / Float(dimHead).squareRoot()
        self.queryDimension = queryDimension
        self.crossAttentionDimension = crossAttentionDimension
        self.residualConnection = residualConnection
        self.rescaleOutputFactor = rescaleOutputFactor
        let inner = heads * dimHead
        let keyDimension = crossAttentionDimension ?? queryDimension
        groupNorm = normGroups.map { GroupNorm(groups: $0, channels: queryDimension, epsilon: epsilon) }
        toQ = Linear(queryDimension, inner, bias: bias)
        toK = Linear(keyDimension, inner, bias: bias)
        toV = Linear(keyDimension, inner, bias: bias)
        toOut = Linear(inner, queryDimension, bias: outBias)
        outputDropout = Dropout(dropout)
        super.init()
        if let groupNorm { child("group_norm", groupNorm) }
        child("to_q", toQ)
        child("to_k", toK)
        child("to_v", toV)
        child("to_out", OutputProjection(toOut, outputDropout))
    }

    /// True when keys and values are projected from encoder states.
    public var isCrossAttention: Bool { crossAttentionDimension != nil }

    /// Sequence input `[B, L, C]`; `encoderHiddenStates` `[B, Lk, D]` for cross-attention (nil: self-attention).
    public func callAsFunction(_ hiddenStates: Tensor, encoderHiddenStates: Tensor? = nil, context: ForwardContext) throws -> Tensor {
        guard hiddenStates.rank == 3 else {
            throw ModelError.badInput("\(path): attention expects [batch, tokens, channels], got \(hiddenStates.shape)")
        }
        var states = hiddenStates
        if let groupNorm {
            states = try groupNorm(states.transposed(1, 2)).transposed(1, 2)
        }
        var output = try attend(states, encoderHiddenStates: encoderHiddenStates, context: context)
        if residualConnection { output = try output + hiddenStates }
        if rescaleOutputFactor != 1 { output = output / rescaleOutputFactor }
        return output
    }

    /// Image input `[B, C, H, W]` as diffusers' processors treat 4-D input: group norm over the
    /// channels, tokens are pixels, the result is laid back out as `[B, C, H, W]` (+ residual).
    public func callAsFunction(image hiddenStates: Tensor, context: ForwardContext) throws -> Tensor {
        guard hiddenStates.rank == 4 else {
            throw ModelError.badInput("\(path): attention over an image expects [batch, channels, height, width], got \(hiddenStates.shape)")
        }
        let (batch, channels, height, width) = (hiddenStates.shape[0], hiddenStates.shape[1], hiddenStates.shape[2], hiddenStates.shape[3])
        var states = hiddenStates
        // Group norm is per channel group over all pixels, so it can run before the token layout.
        if let groupNorm { states = try groupNorm(states) }
        let tokens = try states.reshaped([batch, channels, height * width]).transposed(1, 2)
        let attended = try attend(tokens, encoderHiddenStates: nil, context: context)
        var output = try attended.transposed(1, 2).reshaped([batch, channels, height, width])
        if residualConnection { output = try output + hiddenStates }
        if rescaleOutputFactor != 1 { output = output / rescaleOutputFactor }
        return output
    }

    /// q, k, v projections → processor → to_out.
    func attend(_ states: Tensor, encoderHiddenStates: Tensor?, context: ForwardContext) throws -> Tensor {
        let query = try toQ(states)
        let source = encoderHiddenStates ?? states
        let key = try toK(source)
        let value = try toV(source)
        let call = AttentionCall(path: path, isCrossAttention: encoderHiddenStates != nil,
                                 encoderHiddenStates: encoderHiddenStates, frames: context.frames, context: context)
        let attended = try processor.attend(self, query: query, key: key, value: value, call: call)
        return try outputDropout(toOut(attended), context: context)
    }

    /// `[B, L, heads·d]` → `[B·heads, L, d]` (diffusers' `head_to_batch_dim`).
    public static func splitHeads(_ x: Tensor, heads: Int) throws -> Tensor {
        let inner = x.shape[2]
        guard inner % heads == 0 else {
            throw ModelError.badInput("attention: \(inner) channels do not split into \(heads) heads")
        }
        return try x.foldingHeads(heads)
    }

    /// `[B·heads, L, d]` → `[B, L, heads·d]` (diffusers' `batch_to_head_dim`).
    public static func mergeHeads(_ x: Tensor, heads: Int) throws -> Tensor {
        try x.unfoldingHeads(heads)
    }
}

/// diffusers' `to_out` ModuleList: `0` the output Linear, `1` a Dropout (no parameters).
final class OutputProjection: Module {
    init(_ linear: Linear, _ dropout: Dropout) {
        super.init()
        child("0", linear)
        child("1", dropout)
    }
}

extension Module {
    /// Every attention layer below this module with its path, in tree order.
    public func attentionLayers() -> [(path: String, attention: Attention)] {
        namedModules().compactMap { path, module in (module as? Attention).map { (path, $0) } }
    }

    /// Installs `processor` on every attention layer whose path satisfies `matches`; returns the paths changed.
    @discardableResult
    public func setAttentionProcessor(_ processor: AttentionProcessor, where matches: (String) -> Bool) -> [String] {
        var changed: [String] = []
        for (path, attention) in attentionLayers() where matches(path) {
            attention.processor = processor
            changed.append(path)
        }
        return changed
    }

    /// Gives every `Attention` below this module its path, so processors and messages can name it.
    func assignAttentionPaths() {
        for (path, module) in namedModules() {
            if let attention = module as? Attention { attention.path = path }
        }
    }
}
