import Foundation

/// transformers' `CLIPTextConfig` (models/clip/configuration_clip.py) as the text encoder's
/// config.json stores it; keys are transformers' keys and absent keys take its defaults.
/// Keys that only matter for training in PyTorch (`attention_dropout`, `initializer_range`,
/// `initializer_factor`) are kept so that a folder saved here reads back the same.
public struct CLIPTextConfig: Codable, Equatable, Sendable {
    public var architectures: [String]?
    public var modelType: String
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var projectionDim: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var maxPositionEmbeddings: Int
    /// "quick_gelu" (OpenAI CLIP), "gelu" (exact erf; OpenCLIP, e.g. ModelScope's ViT-H text tower),
    /// or "gelu_new" / "gelu_pytorch_tanh" (the tanh approximation).
    public var hiddenAct: String
    public var layerNormEps: Float
    public var attentionDropout: Float
    public var initializerRange: Float
    public var initializerFactor: Float
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var padTokenId: Int?
    public var transformersVersion: String?

    /// The keys transformers types as float, written as decimals even when whole (`1.0`).
    static let decimalKeys: Set<String> = [CodingKeys.layerNormEps, .attentionDropout, .initializerRange, .initializerFactor]
        .reduce(into: []) { $0.insert($1.rawValue) }

    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case vocabSize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case projectionDim = "projection_dim"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case attentionDropout = "attention_dropout"
        case initializerRange = "initializer_range"
        case initializerFactor = "initializer_factor"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case padTokenId = "pad_token_id"
        case transformersVersion = "transformers_version"
    }

    /// The activations `hidden_act` may name.
    public static let supportedActivations = ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh"]

    /// transformers' defaults (OpenAI CLIP ViT-B/32's text tower), with the given sizes.
    public init(vocabSize: Int = 49408, hiddenSize: Int = 512, intermediateSize: Int = 2048, numHiddenLayers: Int = 12,
                numAttentionHeads: Int = 8, maxPositionEmbeddings: Int = 77, hiddenAct: String = "quick_gelu") {
        architectures = ["CLIPTextModel"]
        modelType = "clip_text_model"
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        projectionDim = 512
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.hiddenAct = hiddenAct
        layerNormEps = 1e-5
        attentionDropout = 0
        initializerRange = 0.02
        initializerFactor = 1
        bosTokenId = 49406
        eosTokenId = 49407
        padTokenId = 1
        transformersVersion = nil
    }

    public init(from decoder: Decoder) throws {
        let defaults = CLIPTextConfig()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? defaults.modelType
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? defaults.vocabSize
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? defaults.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? defaults.intermediateSize
        projectionDim = try c.decodeIfPresent(Int.self, forKey: .projectionDim) ?? defaults.projectionDim
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? defaults.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? defaults.numAttentionHeads
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? defaults.maxPositionEmbeddings
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? defaults.hiddenAct
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? defaults.layerNormEps
        attentionDropout = try c.decodeIfPresent(Float.self, forKey: .attentionDropout) ?? defaults.attentionDropout
        initializerRange = try c.decodeIfPresent(Float.self, forKey: .initializerRange) ?? defaults.initializerRange
        initializerFactor = try c.decodeIfPresent(Float.self, forKey: .initializerFactor) ?? defaults.initializerFactor
        // An explicit null is kept as null (transformers allows it for the special ids).
        bosTokenId = c.contains(.bosTokenId) ? try c.decodeIfPresent(Int.self, forKey: .bosTokenId) : defaults.bosTokenId
        eosTokenId = c.contains(.eosTokenId) ? try c.decodeIfPresent(Int.self, forKey: .eosTokenId) : defaults.eosTokenId
        padTokenId = c.contains(.padTokenId) ? try c.decodeIfPresent(Int.self, forKey: .padTokenId) : defaults.padTokenId
        transformersVersion = try c.decodeIfPresent(String.self, forKey: .transformersVersion)
    }

    /// Reads a text encoder's `config.json` at `path` and validates it.
    public static func load(path: String) throws -> CLIPTextConfig {
        let config = try ConfigFile.load(CLIPTextConfig.self, path: path)
        try config.validate(file: path)
        return config
    }

    /// Channels per attention head.
    public var headDimension: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// Throws `badConfig` naming the first key this implementation cannot build.
    public func validate(file: String = "config.json") throws {
        func bad(_ key: CodingKeys, _ reason: String) -> ModelError { .badConfig(file: file, key: key.rawValue, reason: reason) }
        if let architectures, let unsupported = architectures.first(where: { $0 != "CLIPTextModel" && $0 != "CLIPTextModelWithProjection" }) {
            throw bad(.architectures, "unsupported architecture \"\(unsupported)\" (supported: CLIPTextModel)")
        }
        guard vocabSize > 0 else { throw bad(.vocabSize, "must be positive, got \(vocabSize)") }
        guard hiddenSize > 0 else { throw bad(.hiddenSize, "must be positive, got \(hiddenSize)") }
        guard intermediateSize > 0 else { throw bad(.intermediateSize, "must be positive, got \(intermediateSize)") }
        guard numHiddenLayers >= 1 else { throw bad(.numHiddenLayers, "must be at least 1, got \(numHiddenLayers)") }
        guard maxPositionEmbeddings >= 2 else { throw bad(.maxPositionEmbeddings, "must be at least 2, got \(maxPositionEmbeddings)") }
        guard numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw bad(.numAttentionHeads, "\(numAttentionHeads) heads do not divide hidden_size \(hiddenSize)")
        }
        guard Self.supportedActivations.contains(hiddenAct) else {
            throw bad(.hiddenAct, "unsupported activation \"\(hiddenAct)\" (supported: \(Self.supportedActivations.joined(separator: ", ")))")
        }
        guard layerNormEps > 0 else { throw bad(.layerNormEps, "must be positive, got \(layerNormEps)") }
    }
}
