import Foundation

/// The model's hyper-parameters, with the reference package's names (snake_case in config.json) and
/// defaults.
public struct AlbertMoEConfig: Codable, Equatable {
    public var vocabSize = 30000
    public var embeddingSize = 128
    public var hiddenSize = 768
    public var numHiddenLayers = 12
    public var numAttentionHeads = 12
    public var intermediateSize = 3072
    public var hiddenDropoutProb: Float = 0.1
    public var attentionProbsDropoutProb: Float = 0.1
    public var maxPositionEmbeddings = 512
    public var typeVocabSize = 2
    public var layerNormEps: Float = 1e-12
    public var padTokenID = 0
    /// "rope", "absolute", or "none": no position information, which is what the Python package's RoPE computes
    /// without torchtune (it rotates q and k by head index, which leaves q.k unchanged).
    public var positionEmbeddingType = "rope"
    public var numExperts = 8
    public var topKExperts = 2
    public var auxLossCoefficient: Float = 0.01
    public var ropeBase: Float = 10000
    public var initializerRange: Float = 0.02
    /// Tokens per expert when routing is not dropless (kept from the reference config, which never used it).
    public var expertCapacity = 64
    /// Route every token to its k experts (the reference behaviour). When false, each expert takes at most
    /// its capacity and the overflow passes through the residual only.
    public var dropless = true
    /// When set (and not dropless), the capacity is ceil(factor * tokens * k / experts) instead of
    /// `expertCapacity`.
    public var capacityFactor: Float? = nil
    /// Weight of the router z-loss (mean squared log-sum-exp of the gate logits); 0 leaves it out.
    public var routerZLossCoefficient: Float = 0

    public init(vocabSize: Int = 30000, embeddingSize: Int = 128, hiddenSize: Int = 768, numHiddenLayers: Int = 12,
                numAttentionHeads: Int = 12, intermediateSize: Int = 3072, hiddenDropoutProb: Float = 0.1,
                attentionProbsDropoutProb: Float = 0.1, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
                layerNormEps: Float = 1e-12, padTokenID: Int = 0, positionEmbeddingType: String = "rope",
                numExperts: Int = 8, topKExperts: Int = 2, auxLossCoefficient: Float = 0.01, ropeBase: Float = 10000,
                initializerRange: Float = 0.02, expertCapacity: Int = 64, dropless: Bool = true,
                capacityFactor: Float? = nil, routerZLossCoefficient: Float = 0) {
        self.vocabSize = vocabSize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.padTokenID = padTokenID
        self.positionEmbeddingType = positionEmbeddingType
        self.numExperts = numExperts
        self.topKExperts = topKExperts
        self.auxLossCoefficient = auxLossCoefficient
        self.ropeBase = ropeBase
        self.initializerRange = initializerRange
        self.expertCapacity = expertCapacity
        self.dropless = dropless
        self.capacityFactor = capacityFactor
        self.routerZLossCoefficient = routerZLossCoefficient
    }

    /// Size of one attention head.
    public var headDim: Int { hiddenSize / max(numAttentionHeads, 1) }

    /// The largest value of each size a real model has, with room to spare: a size beyond it is a mistake (a typo, a
    /// byte count given for a count of units) that would otherwise try to allocate terabytes or loop for days.
    /// vocab_size 4,194,304 (2^22; the largest published vocabularies hold about 256k tokens), embedding_size and
    /// hidden_size 65,536, intermediate_size 262,144, num_hidden_layers 1,024, num_attention_heads 1,024,
    /// max_position_embeddings 1,048,576 (2^20), type_vocab_size 1,024, num_experts 4,096, expert_capacity 16,777,216.
    public static let sizeLimits: [(field: String, limit: Int)] = [
        ("vocab_size", 1 << 22), ("embedding_size", 1 << 16), ("hidden_size", 1 << 16), ("num_hidden_layers", 1024),
        ("num_attention_heads", 1024), ("intermediate_size", 1 << 18), ("max_position_embeddings", 1 << 20),
        ("type_vocab_size", 1024), ("num_experts", 4096), ("expert_capacity", 1 << 24),
    ]

    /// Throws an `AlbertMoEError.invalidValue` naming `field` when `value` is not between 1 and the field's entry in
    /// `sizeLimits` (`name`, when given, is how the message names it: a command-line flag, say).
    public static func checkSize(_ value: Int, field: String, name: String? = nil) throws {
        let limit = sizeLimits.first { $0.field == field }?.limit ?? Int.max
        guard value > 0 else { throw AlbertMoEError.invalidValue(field: name ?? field, reason: "must be positive, got \(value)") }
        guard value <= limit else {
            throw AlbertMoEError.invalidValue(field: name ?? field, reason: "must be at most \(limit) (more than any real "
                                              + "model has), got \(value)")
        }
    }

    /// Throws an `AlbertMoEError.invalidValue` naming the first field whose value is invalid, alone or with another:
    /// every size must be positive and within `sizeLimits`.
    public func validate() throws {
        func fail(_ field: String, _ reason: String) -> AlbertMoEError { .invalidValue(field: field, reason: reason) }
        let sizes = [vocabSize, embeddingSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize,
                     maxPositionEmbeddings, typeVocabSize, numExperts, expertCapacity]
        for (value, bound) in zip(sizes, Self.sizeLimits) { try Self.checkSize(value, field: bound.field) }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw fail("num_attention_heads", "hidden_size \(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard ["rope", "absolute", "none"].contains(positionEmbeddingType) else {
            throw fail("position_embedding_type", "must be \"rope\", \"absolute\" or \"none\", got \"\(positionEmbeddingType)\"")
        }
        if positionEmbeddingType == "rope" && headDim % 2 != 0 {
            throw fail("num_attention_heads", "rope needs an even head size, but hidden_size / num_attention_heads = \(headDim)")
        }
        guard topKExperts >= 1 && topKExperts <= numExperts else {
            throw fail("top_k_experts", "must be between 1 and num_experts (\(numExperts)), got \(topKExperts)")
        }
        guard padTokenID >= 0 && padTokenID < vocabSize else {
            throw fail("pad_token_id", "must be in [0, vocab_size), got \(padTokenID)")
        }
        for (value, field) in [(hiddenDropoutProb, "hidden_dropout_prob"), (attentionProbsDropoutProb, "attention_probs_dropout_prob")] {
            guard value >= 0 && value < 1 else { throw fail(field, "must be in [0, 1), got \(value)") }
        }
        guard layerNormEps >= 0 && layerNormEps.isFinite else {
            throw fail("layer_norm_eps", "must be a non-negative number, got \(layerNormEps)")
        }
        guard ropeBase > 1 && ropeBase.isFinite else { throw fail("rope_base", "must be greater than 1, got \(ropeBase)") }
        guard auxLossCoefficient >= 0 && auxLossCoefficient.isFinite else {
            throw fail("aux_loss_coefficient", "must be a non-negative number, got \(auxLossCoefficient)")
        }
        guard routerZLossCoefficient >= 0 && routerZLossCoefficient.isFinite else {
            throw fail("router_z_loss_coefficient", "must be a non-negative number, got \(routerZLossCoefficient)")
        }
        if let f = capacityFactor, !(f > 0 && f.isFinite) {
            throw fail("capacity_factor", "must be positive, got \(f)")
        }
    }

    // MARK: config.json

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", embeddingSize = "embedding_size", hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size", hiddenDropoutProb = "hidden_dropout_prob"
        case attentionProbsDropoutProb = "attention_probs_dropout_prob"
        case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        case layerNormEps = "layer_norm_eps", padTokenID = "pad_token_id"
        case positionEmbeddingType = "position_embedding_type", numExperts = "num_experts"
        case topKExperts = "top_k_experts", auxLossCoefficient = "aux_loss_coefficient", ropeBase = "rope_base"
        case initializerRange = "initializer_range", expertCapacity = "expert_capacity", dropless
        case capacityFactor = "capacity_factor", routerZLossCoefficient = "router_z_loss_coefficient"
    }

    /// Missing keys take their defaults; unknown keys (e.g. "architectures") are ignored.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = AlbertMoEConfig()
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            c.contains(key) ? try c.decode(T.self, forKey: key) : fallback   // null is an error, not a default
        }
        vocabSize = try get(.vocabSize, d.vocabSize)
        embeddingSize = try get(.embeddingSize, d.embeddingSize)
        hiddenSize = try get(.hiddenSize, d.hiddenSize)
        numHiddenLayers = try get(.numHiddenLayers, d.numHiddenLayers)
        numAttentionHeads = try get(.numAttentionHeads, d.numAttentionHeads)
        intermediateSize = try get(.intermediateSize, d.intermediateSize)
        hiddenDropoutProb = try get(.hiddenDropoutProb, d.hiddenDropoutProb)
        attentionProbsDropoutProb = try get(.attentionProbsDropoutProb, d.attentionProbsDropoutProb)
        maxPositionEmbeddings = try get(.maxPositionEmbeddings, d.maxPositionEmbeddings)
        typeVocabSize = try get(.typeVocabSize, d.typeVocabSize)
        layerNormEps = try get(.layerNormEps, d.layerNormEps)
        padTokenID = try get(.padTokenID, d.padTokenID)
        positionEmbeddingType = try get(.positionEmbeddingType, d.positionEmbeddingType)
        numExperts = try get(.numExperts, d.numExperts)
        topKExperts = try get(.topKExperts, d.topKExperts)
        auxLossCoefficient = try get(.auxLossCoefficient, d.auxLossCoefficient)
        ropeBase = try get(.ropeBase, d.ropeBase)
        initializerRange = try get(.initializerRange, d.initializerRange)
        expertCapacity = try get(.expertCapacity, d.expertCapacity)
        dropless = try get(.dropless, d.dropless)
        capacityFactor = try c.decodeIfPresent(Float.self, forKey: .capacityFactor)   // null: not set
        routerZLossCoefficient = try get(.routerZLossCoefficient, d.routerZLossCoefficient)
    }

    /// Reads and validates a config.json; errors name the file and the field.
    public static func load(from url: URL) throws -> AlbertMoEConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, source: url.path)
    }

    /// Decodes and validates config JSON.
    public static func decode(_ data: Data, source: String = "config.json") throws -> AlbertMoEConfig {
        let config: AlbertMoEConfig
        do {
            config = try JSONDecoder().decode(AlbertMoEConfig.self, from: data)
        } catch let DecodingError.typeMismatch(type, context) {
            throw AlbertMoEError.invalidValue(field: context.codingPath.map(\.stringValue).joined(separator: "."),
                                              reason: "expected a value of type \(type) (in \(source))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw AlbertMoEError.invalidValue(field: context.codingPath.map(\.stringValue).joined(separator: "."),
                                              reason: "expected a value of type \(type), found null (in \(source))")
        } catch {
            throw AlbertMoEError.badFile(path: source, reason: "not valid JSON: \(error.localizedDescription)")
        }
        do { try config.validate() } catch let AlbertMoEError.invalidValue(field, reason) {
            throw AlbertMoEError.invalidValue(field: field, reason: "\(reason) (in \(source))")
        }
        return config
    }

    /// The config as config.json: the config keys plus "architectures" and "model_type".
    public func jsonData(architecture: String) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let base = try encoder.encode(self)
        guard var object = try JSONSerialization.jsonObject(with: base) as? [String: Any] else {
            throw AlbertMoEError.cannotContinue("could not encode the config")
        }
        object["architectures"] = [architecture]
        object["model_type"] = "albert_moe"
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
