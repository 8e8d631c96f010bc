import Tensors

/// What a causal model has seen of a sequence, for incremental decoding: the keys and values of every pass
/// through the shared layer (each pass has its own, since its inputs differ). The prompt is run once; each new
/// token then costs one position's work.
public final class KVCache {
    public let buffers: [KeyValueBuffer]

    public init(config: AlbertMoEConfig, batch: Int = 1) {
        buffers = (0..<config.numHiddenLayers).map { _ in
            KeyValueBuffer(batch: batch, heads: config.numAttentionHeads, headDim: config.headDim,
                           capacity: config.maxPositionEmbeddings)
        }
    }

    /// Sequences decoded side by side.
    public var batch: Int { buffers[0].batch }
    /// Positions seen so far.
    public var count: Int { buffers[0].count }
    /// Positions the cache can hold (max_position_embeddings).
    public var capacity: Int { buffers[0].capacity }

    /// Forgets the sequence.
    public func reset() { buffers.forEach { $0.reset() } }
}

extension AlbertForCausalLM {
    /// Runs `ids` (one sequence) after the cached tokens, or as the whole sequence without a cache, and returns the
    /// logits [V] of the token that follows. Throws when `ids` is empty, holds an id outside the vocabulary or would
    /// overflow the cache.
    public func nextTokenLogits(_ ids: [Int32], cache: KVCache?) throws -> [Float] {
        try withNoGrad {
            let hidden = try albert(IntTensor(ids, shape: [1, ids.count]), cache: cache).hiddenStates   // [1, T, H]
            let last = hidden.slice(axis: 1, (ids.count - 1)..<ids.count)                          // [1, 1, H]
            return logits(last).scalars                                                            // [V]
        }
    }
}

extension AlbertForCausalLM {
    /// One decoding step of several sequences in one forward: each entry's token follows the tokens its cache (of
    /// one sequence) holds. The embeddings, projections, norms, experts and head run on all rows at once; attention
    /// runs per row against its own cache at its own position. Returns each entry's logits [V] of the token that
    /// follows, as `nextTokenLogits(_:cache:)` would one at a time. Throws, caching nothing, when a token is outside
    /// the vocabulary, a cache is full or holds more than one sequence, or a cache is given twice.
    public func nextTokenLogits(batch: [(token: Int32, cache: KVCache)]) throws -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        if let cache = batch.first(where: { $0.cache.batch != 1 })?.cache {
            throw AlbertMoEError.invalidValue(field: "cache", reason: "a batched decoding step takes caches of one "
                                              + "sequence each, got one for \(cache.batch)")
        }
        return try withNoGrad {
            let ids = IntTensor(batch.map(\.token), shape: [batch.count, 1])
            let hidden = try albert(ids, caches: batch.map(\.cache)).hiddenStates        // [B, 1, H]
            let all = logits(hidden).scalars                                           // [B, 1, V]
            let v = config.vocabSize
            return (0..<batch.count).map { Array(all[$0 * v ..< ($0 + 1) * v]) }
        }
    }
}
