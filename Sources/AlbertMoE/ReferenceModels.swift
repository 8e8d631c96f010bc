import Foundation
import Layers

/// The model sizes the training commands take as flags, for a model directory without config.json (the Python
/// package writes none: its serve mode builds the config from these flags). Sizes the weights determine are
/// taken from them and, when given here too, must agree; the others are taken from here, or the Python
/// package's defaults.
public struct ModelSizes: Equatable, Sendable {
    public var vocabSize: Int?
    public var embeddingSize: Int?
    public var hiddenSize: Int?
    public var intermediateSize: Int?
    public var numExperts: Int?
    public var maxPositionEmbeddings: Int?
    public var positionEmbeddingType: String?
    public var numAttentionHeads: Int?
    public var numHiddenLayers: Int?
    public var topKExperts: Int?
    public var auxLossCoefficient: Float?

    public init(vocabSize: Int? = nil, embeddingSize: Int? = nil, hiddenSize: Int? = nil, intermediateSize: Int? = nil,
                numExperts: Int? = nil, maxPositionEmbeddings: Int? = nil, positionEmbeddingType: String? = nil,
                numAttentionHeads: Int? = nil, numHiddenLayers: Int? = nil, topKExperts: Int? = nil,
                auxLossCoefficient: Float? = nil) {
        self.vocabSize = vocabSize
        self.embeddingSize = embeddingSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numExperts = numExperts
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.positionEmbeddingType = positionEmbeddingType
        self.numAttentionHeads = numAttentionHeads
        self.numHiddenLayers = numHiddenLayers
        self.topKExperts = topKExperts
        self.auxLossCoefficient = auxLossCoefficient
    }
}

/// How a model directory is loaded.
public struct ModelLoadOptions: Equatable, Sendable {
    /// The sizes of a directory without config.json (ignored when it has one).
    public var sizes: ModelSizes
    /// Runs a causal model without its causal mask, as the Python package runs its causal models (which it
    /// trained that way); generation then recomputes the whole sequence for each token.
    public var bidirectional: Bool
    /// What the model is loaded for: the config is checked against the memory this needs before the weights are read
    /// (for a directory without config.json, before the model is built from the weights read).
    public var workload: ModelWorkload

    public init(sizes: ModelSizes = ModelSizes(), bidirectional: Bool = false, workload: ModelWorkload = .load) {
        self.sizes = sizes
        self.bidirectional = bidirectional
        self.workload = workload
    }
}

/// What a model directory holds: its config, the architecture, and the weights by state-dict name.
struct ModelContents {
    var config: AlbertMoEConfig
    /// AlbertForCausalLM, AlbertForMaskedLM or SentenceAlbert (nil when config.json names none).
    var architecture: String?
    var weights: [String: Tensor]
    /// The weights file, for messages.
    var weightsFile: URL
    /// True for a directory without config.json, as the Python package writes them.
    var fromReference: Bool
    var notices: [String]
}

extension ModelDirectory {
    /// Whether `directory` holds a model that carries its own config (config.json).
    public static func hasConfig(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(configFile).path)
    }

    /// Reads a model directory: config.json and the weights, or, without config.json, the weights and a config
    /// made from them and `options.sizes` (see `referenceConfig`), checked against the memory `options.workload` needs.
    /// The RoPE-fallback tables of the Python package's weights are left out: they are no parameters here.
    static func contents(of directory: URL, options: ModelLoadOptions) throws -> ModelContents {
        let sizes = options.sizes
        let reference = !hasConfig(directory)
        let config: AlbertMoEConfig, architecture: String?, notices: [String]
        let file: URL
        var weights: [String: Tensor]
        if reference {
            file = try referenceWeightsURL(in: directory)
            weights = try readWeightsFile(file)
            (config, architecture, notices) = try referenceConfig(weights: weights, sizes: sizes, file: file)
            try config.checkMemory(for: options.workload)
        } else {
            (config, architecture) = try readConfig(directory)
            try config.checkMemory(for: options.workload)
            notices = []
            file = try weightsURL(in: directory)
            weights = try readWeightsFile(file)
        }
        for name in weights.keys where ropeBufferNames.contains(where: { name.hasSuffix(".attention.pos_emb." + $0) }) {
            weights[name] = nil
        }
        return ModelContents(config: config, architecture: architecture, weights: weights, weightsFile: file,
                             fromReference: reference, notices: notices)
    }

    /// Writes config.json into a directory that has none (the Python package's): the config its weights and `sizes`
    /// give (see `referenceConfig`), with the architecture of its head. Returns what the config's making noticed.
    @discardableResult
    public static func writeReferenceConfig(in directory: URL, sizes: ModelSizes) throws -> [String] {
        guard !hasConfig(directory) else {
            throw AlbertMoEError.badFile(path: directory.appendingPathComponent(configFile).path, reason: "exists already")
        }
        let file = try referenceWeightsURL(in: directory)
        let (config, architecture, notices) = try referenceConfig(weights: try readWeightsFile(file), sizes: sizes, file: file)
        try config.jsonData(architecture: architecture).write(to: directory.appendingPathComponent(configFile), options: .atomic)
        return notices
    }

    /// The weights file of a directory without config.json.
    static func referenceWeightsURL(in directory: URL) throws -> URL {
        do { return try weightsURL(in: directory) } catch {
            throw AlbertMoEError.badFile(path: directory.path, reason: "holds no \(configFile), \(weightsFile) or "
                                         + "\(pytorchWeightsFile): not a model directory")
        }
    }

    /// The buffers of the Python package's RoPE fallback (`attention.pos_emb.*`): tables, not parameters.
    static let ropeBufferNames = ["inv_freq", "cos_cached", "sin_cached"]

    /// The config of weights saved by the Python package (`torch.save(model.state_dict())`, no config.json). The
    /// weights give the vocabulary, embedding, hidden and intermediate sizes, the number of experts, the position
    /// type and its table size, and the head count when the RoPE fallback's tables are there; `sizes` gives the
    /// rest (defaults: the Python package's) and is checked against what the weights give. The architecture is
    /// the head's: AlbertForCausalLM (lm_head_*), AlbertForMaskedLM (mlm_head_*) or SentenceAlbert (none).
    /// Another layout (LayerNorm with bias, the legacy scripts' token/segment embeddings) is refused, naming
    /// what differs.
    public static func referenceConfig(weights: [String: Tensor], sizes: ModelSizes, file: URL)
        throws -> (AlbertMoEConfig, architecture: String, notices: [String]) {
        func bad(_ reason: String) -> AlbertMoEError { .badFile(path: file.path, reason: reason) }
        let names = Dictionary(weights.map { (name, t) in
            (name.hasPrefix("albert.") ? String(name.dropFirst("albert.".count)) : name, t)
        }, uniquingKeysWith: { a, _ in a })
        let legacy = names.keys.filter { $0.contains("token_embeddings") || $0.contains("segment_embeddings")
                                         || $0.contains("rotary_emb.") }.sorted()
        if !legacy.isEmpty {
            throw bad("holds the layout of the Python package's older single-file scripts (\(legacy.prefix(3).joined(separator: ", "))), "
                      + "not the albertmoe package's (embeddings.word_embeddings, embeddings.token_type_embeddings, "
                      + "shared_layer.attention.pos_emb): this package cannot load it")
        }
        let layerNorm = names.keys.filter { $0.contains("LayerNorm") || $0.contains("layernorm")
                                            || ($0.hasSuffix(".bias") && $0.contains("norm")) }.sorted()
        if !layerNorm.isEmpty {
            throw bad("holds LayerNorm layers with a bias (\(layerNorm.prefix(3).joined(separator: ", "))), from an older version "
                      + "of the Python package: this package's model has RMSNorm without bias (embeddings.norm.weight, "
                      + "shared_layer.norm1.weight, shared_layer.norm2.weight)")
        }
        func shape(_ name: String, rank: Int) throws -> [Int] {
            guard let t = names[name] else {
                throw bad("holds no \(name) (nor albert.\(name)): not an AlbertMoE model's state dict")
            }
            guard t.shape.count == rank, t.shape.allSatisfy({ $0 > 0 }) else {
                throw bad("\(name) has shape \(t.shape), expected \(rank) positive dimensions")
            }
            return t.shape
        }
        let word = try shape("embeddings.word_embeddings.weight", rank: 2)                 // [V, E]
        let mapping = try shape("embeddings.embedding_hidden_mapping_in.weight", rank: 2)  // [H, E]
        let gate = try shape("shared_layer.ffn.gate.weight", rank: 2)                      // [X, H]
        let linear1 = try shape("shared_layer.ffn.experts.0.linear1.weight", rank: 2)      // [I, H]
        var found: [(field: String, given: Int?, value: Int, source: String)] = [
            ("vocab_size", sizes.vocabSize, word[0], "embeddings.word_embeddings.weight \(word)"),
            ("embedding_size", sizes.embeddingSize, word[1], "embeddings.word_embeddings.weight \(word)"),
            ("hidden_size", sizes.hiddenSize, mapping[0], "embeddings.embedding_hidden_mapping_in.weight \(mapping)"),
            ("num_experts", sizes.numExperts, gate[0], "shared_layer.ffn.gate.weight \(gate)"),
            ("intermediate_size", sizes.intermediateSize, linear1[0], "shared_layer.ffn.experts.0.linear1.weight \(linear1)"),
        ]
        let hidden = mapping[0]
        var notices: [String] = []
        let positionType: String
        var positions = sizes.maxPositionEmbeddings ?? 512
        var heads = sizes.numAttentionHeads ?? 12
        if names["embeddings.position_embeddings.weight"] != nil {
            let table = try shape("embeddings.position_embeddings.weight", rank: 2)        // [P, H]
            positionType = "absolute"
            positions = table[0]
            found.append(("max_position_embeddings", sizes.maxPositionEmbeddings, table[0],
                          "embeddings.position_embeddings.weight \(table)"))
            if let given = sizes.positionEmbeddingType, given != "absolute" {
                throw AlbertMoEError.invalidValue(field: "position_embedding_type", reason: "\"\(given)\" was given, but "
                    + "\(file.path) holds embeddings.position_embeddings.weight \(table): an absolute position table")
            }
        } else {
            if let given = sizes.positionEmbeddingType, given == "absolute" {
                throw AlbertMoEError.invalidValue(field: "position_embedding_type", reason: "\"absolute\" was given, but "
                    + "\(file.path) holds no embeddings.position_embeddings.weight: the model uses RoPE")
            }
            if let cos = names["shared_layer.attention.pos_emb.cos_cached"] {
                // The fallback's tables [1, 1, max_position_embeddings, head size]: it rotates by head index.
                guard cos.shape.count == 4, cos.shape[2] > 0, cos.shape[3] > 0, hidden % cos.shape[3] == 0 else {
                    throw bad("shared_layer.attention.pos_emb.cos_cached has shape \(cos.shape), expected [1, 1, positions, head size] "
                              + "with the head size dividing hidden_size \(hidden)")
                }
                let source = "shared_layer.attention.pos_emb.cos_cached \(cos.shape)"
                found.append(("max_position_embeddings", sizes.maxPositionEmbeddings, cos.shape[2], source))
                found.append(("num_attention_heads", sizes.numAttentionHeads, hidden / cos.shape[3], source + " (head size \(cos.shape[3]))"))
                positions = cos.shape[2]
                heads = hidden / cos.shape[3]
                positionType = "none"
                notices.append("\(file.path) holds the tables of the Python package's RoPE without torchtune, which rotates q and k "
                               + "by head index and so changes nothing: the model learned no positions and runs here without them "
                               + "(position_embedding_type none), as it was trained")
            } else {
                positionType = sizes.positionEmbeddingType ?? "rope"
            }
        }
        for f in found {
            if let given = f.given, given != f.value {
                throw AlbertMoEError.invalidValue(field: f.field, reason: "\(given) was given, but \(file.path) holds \(f.source): "
                                                  + "\(f.field) \(f.value)")
            }
        }
        let architecture = names["lm_head_decoder.weight"] != nil ? "AlbertForCausalLM"
            : names["mlm_head_decoder.weight"] != nil ? "AlbertForMaskedLM" : "SentenceAlbert"
        var config = AlbertMoEConfig(vocabSize: word[0], embeddingSize: word[1], hiddenSize: hidden,
                                     numHiddenLayers: sizes.numHiddenLayers ?? 12, numAttentionHeads: heads,
                                     intermediateSize: linear1[0], maxPositionEmbeddings: positions,
                                     positionEmbeddingType: positionType, numExperts: gate[0],
                                     topKExperts: sizes.topKExperts ?? 2)
        if let aux = sizes.auxLossCoefficient { config.auxLossCoefficient = aux }
        do { try config.validate() } catch let AlbertMoEError.invalidValue(field, reason) {
            throw AlbertMoEError.invalidValue(field: field, reason: "\(reason), for the weights in \(file.path), whose directory holds no "
                                              + "config.json: give the size the model was trained with")
        }
        return (config, architecture, notices)
    }
}

extension ModelDirectory {
    /// Writes `pytorch_model.bin` into `directory`: the model's state dict as the Python package's model holds it
    /// (`torch.load(weights_only=True)` reads it; its `load_state_dict` takes it strictly). A RoPE or "none" model gets
    /// the tables of the Python package's RoPE without torchtune (`attention.pos_emb.inv_freq`, `cos_cached`,
    /// `sin_cached`), which that package's model holds as weights; that RoPE rotates by head index, so there a "none"
    /// model computes what it computes here, and a RoPE model does not.
    public static func writePyTorch(_ model: Module, config: AlbertMoEConfig, to directory: URL) throws {
        var tensors = Dictionary(model.namedParameters(), uniquingKeysWith: { a, _ in a })
        if config.positionEmbeddingType != "absolute" {
            let prefix = tensors.keys.contains { $0.hasPrefix("albert.") } ? "albert." : ""
            let (d, p) = (config.headDim, config.maxPositionEmbeddings)
            let inv = stride(from: 0, to: d, by: 2).map { 1 / powf(10000, Float($0) / Float(d)) }
            var cos = [Float](), sin = [Float]()
            cos.reserveCapacity(p * d)
            sin.reserveCapacity(p * d)
            for t in 0..<p {
                let freqs = inv.map { Float(t) * $0 }
                for f in freqs + freqs {
                    cos.append(Foundation.cos(f))
                    sin.append(Foundation.sin(f))
                }
            }
            let name = prefix + "shared_layer.attention.pos_emb."
            tensors[name + "inv_freq"] = Tensor(inv, shape: [inv.count])
            tensors[name + "cos_cached"] = Tensor(cos, shape: [1, 1, p, d])
            tensors[name + "sin_cached"] = Tensor(sin, shape: [1, 1, p, d])
        }
        try PyTorchFile.write(tensors, to: directory.appendingPathComponent(pytorchWeightsFile))
    }
}
