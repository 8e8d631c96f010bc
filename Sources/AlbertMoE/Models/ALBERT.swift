import Layers

/// What the encoder produced.
public struct EncoderOutput {
    /// [B, T, H].
    public let hiddenStates: Tensor
    /// Mean of the per-pass load-balancing losses (a scalar).
    public let auxLoss: Tensor
    /// Mean of the per-pass router z-losses; nil when its coefficient is 0.
    public let routerZLoss: Tensor?
    /// Per-expert fraction of routed slots, averaged over the passes.
    public let expertLoad: [Float]
    /// Slots that skipped an expert for lack of capacity, summed over the passes.
    public let droppedSlots: Int
}

/// The encoder: embeddings, then one shared layer applied `num_hidden_layers` times.
public final class ALBERT: Module {
    public let config: AlbertMoEConfig
    public let causal: Bool
    public let embeddings: AlbertEmbeddings
    public let sharedLayer: AlbertLayer

    /// A new encoder with weights initialised from `seed` (as PyTorch's defaults: uniform Linear, normal
    /// embeddings, unit norms). The config must be valid (see `AlbertMoEConfig.validate()`).
    public init(_ config: AlbertMoEConfig, causal: Bool = false, seed: UInt64 = 0) {
        do { try config.validate() } catch { preconditionFailure("ALBERT: \(error)") }
        self.config = config
        self.causal = causal
        var generator = SeededGenerator(seed: seed)
        embeddings = AlbertEmbeddings(config, generator: &generator)
        sharedLayer = AlbertLayer(config, causal: causal, generator: &generator)
    }

    public override var children: [(String, Module)] { [("embeddings", embeddings), ("shared_layer", sharedLayer)] }

    /// Checks ids, masks and lengths against the config (and the caches' room), naming what is wrong.
    func checkInputs(_ ids: IntTensor, attentionMask: IntTensor?, tokenTypeIDs: IntTensor?, caches: [KVCache]) throws {
        func bad(_ field: String, _ reason: String) -> AlbertMoEError { .invalidValue(field: field, reason: reason) }
        guard ids.rank == 2, ids.shape[0] > 0, ids.shape[1] > 0 else {
            throw bad("input_ids", "input ids must be [batch, length] with both positive, got \(ids.shape)")
        }
        if let id = ids.scalars.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw bad("input_ids", "input id \(id) is outside the model's vocabulary [0, \(config.vocabSize))")
        }
        let cached = caches.reduce(0) { $0 + $1.batch }
        if !caches.isEmpty, cached != ids.shape[0] || attentionMask != nil {
            throw bad("input_ids", "a key/value cache for \(cached) sequence(s) takes ids [\(cached), T] "
                      + "and no attention mask, got ids of shape \(ids.shape)" + (attentionMask != nil ? " and a mask" : ""))
        }
        if Set(caches.map(ObjectIdentifier.init)).count != caches.count {
            throw bad("input_ids", "each sequence needs a key/value cache of its own: one cache is given twice")
        }
        let end = (caches.map(\.count).max() ?? 0) + ids.shape[1]
        if config.positionEmbeddingType == "absolute" || !caches.isEmpty, end > config.maxPositionEmbeddings {
            throw bad("input_ids", "the sequence would reach \(end) positions, beyond max_position_embeddings "
                      + "\(config.maxPositionEmbeddings)")
        }
        if let m = attentionMask, m.shape != ids.shape {
            throw bad("attention_mask", "attention mask of shape \(m.shape) for input ids of shape \(ids.shape)")
        }
        if let tt = tokenTypeIDs {
            guard tt.shape == ids.shape else {
                throw bad("token_type_ids", "token type ids of shape \(tt.shape) for input ids of shape \(ids.shape)")
            }
            if let id = tt.scalars.first(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
                throw bad("token_type_ids", "token type id \(id) is outside [0, \(config.typeVocabSize))")
            }
        }
    }

    /// ids [B, T]; attentionMask [B, T] (1 = token, 0 = padding). With a cache, ids follow the cached tokens,
    /// which they see (incremental decoding: call inside `withNoGrad` on a model in eval mode, without a mask).
    /// Throws, naming the field, when an id, mask or length does not fit the config.
    public func callAsFunction(_ ids: IntTensor, attentionMask: IntTensor? = nil, tokenTypeIDs: IntTensor? = nil,
                               cache: KVCache? = nil) throws -> EncoderOutput {
        try encode(ids, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, caches: cache.map { [$0] } ?? [])
    }

    /// Incremental decoding of several sequences at once, each with its own cache and length: the caches take the
    /// rows of ids [B, T] in order, each as many as its batch (one row for a cache of one sequence), and each row's
    /// tokens follow its cache's tokens, which they see. Call inside `withNoGrad` on a model in eval mode. Throws,
    /// naming the field, when an id or length does not fit, or when a cache is given twice; nothing is cached then.
    public func callAsFunction(_ ids: IntTensor, caches: [KVCache]) throws -> EncoderOutput {
        try encode(ids, attentionMask: nil, tokenTypeIDs: nil, caches: caches)
    }

    private func encode(_ ids: IntTensor, attentionMask: IntTensor?, tokenTypeIDs: IntTensor?, caches: [KVCache]) throws -> EncoderOutput {
        try checkInputs(ids, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs, caches: caches)
        precondition(caches.isEmpty || !GradMode.isEnabled, "incremental decoding records no graph: call it inside withNoGrad")
        let offsets = caches.isEmpty ? [0] : caches.flatMap { Array(repeating: $0.count, count: $0.batch) }
        let keyMask = attentionMask?.toFloat()                                          // [B, T]
        var x = embeddings(ids, tokenTypeIDs: tokenTypeIDs, positionOffsets: offsets)   // [B, T, H]
        var auxLosses: [Tensor] = [], zLosses: [Tensor] = []
        var load = [Float](repeating: 0, count: config.numExperts)
        var dropped = 0
        for pass in 0..<config.numHiddenLayers {
            let (y, moe) = sharedLayer(x, keyMask: keyMask, caches: caches.map { $0.buffers[pass] })
            x = y
            auxLosses.append(moe.auxLoss)
            if let z = moe.routerZLoss { zLosses.append(z) }
            for e in 0..<load.count { load[e] += moe.expertLoad[e] / Float(config.numHiddenLayers) }
            dropped += moe.droppedSlots
        }
        let passes = Float(config.numHiddenLayers)
        let aux = auxLosses.dropFirst().reduce(auxLosses[0], +) / passes
        let z = zLosses.isEmpty ? nil : zLosses.dropFirst().reduce(zLosses[0], +) / passes
        return EncoderOutput(hiddenStates: x, auxLoss: aux, routerZLoss: z, expertLoad: load, droppedSlots: dropped)
    }
}
