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
    public func reset() { truncate(to: 0) }

    /// Forgets the positions from `count` on.
    public func truncate(to count: Int) { buffers.forEach { $0.truncate(to: count) } }
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
    /// Runs several sequences in one forward, each entry's tokens after the tokens its cache (of one sequence) holds:
    /// one token each for a decoding step, whole prompts (into empty caches) to start several generations at once.
    /// Rows shorter than the longest are padded on the right, which a causal model's real tokens never see, and
    /// each cache then keeps its own tokens only. The embeddings, projections, norms, experts and head run on all
    /// rows at once; attention runs per row against its own cache at its own positions. Returns each entry's logits
    /// [V] of the token after its last, as `nextTokenLogits(_:cache:)` would one at a time (for a model whose experts
    /// drop nothing: capacity limits make routing depend on the batch). Throws, caching nothing, when an entry is
    /// empty or holds a token outside the vocabulary, a padded row would pass a cache's capacity, a cache holds more
    /// than one sequence, or a cache is given twice.
    public func nextTokenLogits(batch: [(tokens: [Int32], cache: KVCache)]) throws -> [[Float]] {
        guard !batch.isEmpty else { return [] }
        if let cache = batch.first(where: { $0.cache.batch != 1 })?.cache {
            throw AlbertMoEError.invalidValue(field: "cache", reason: "a batched forward takes caches of one "
                                              + "sequence each, got one for \(cache.batch)")
        }
        guard batch.allSatisfy({ !$0.tokens.isEmpty }) else {
            throw AlbertMoEError.invalidValue(field: "input_ids", reason: "each sequence of a batched forward needs at least one token")
        }
        let length = batch.map(\.tokens.count).max()!
        // Padding repeats a row's last token: any id in the vocabulary does, since no real token sees it.
        let padded = batch.flatMap { $0.tokens + Array(repeating: $0.tokens.last!, count: length - $0.tokens.count) }
        return try withNoGrad {
            let counts = batch.map(\.cache.count)
            let hidden = try albert(IntTensor(padded, shape: [batch.count, length]), caches: batch.map(\.cache)).hiddenStates
            for (entry, count) in zip(batch, counts) { entry.cache.truncate(to: count + entry.tokens.count) }
            let last = batch.indices.map { $0 * length + batch[$0].tokens.count - 1 }
            let rows = hidden.reshaped([batch.count * length, config.hiddenSize]).indexSelect(axis: 0, IntTensor(last, shape: [last.count]))
            let all = logits(rows).scalars                                                   // [B, V]
            let v = config.vocabSize
            return (0..<batch.count).map { Array(all[$0 * v ..< ($0 + 1) * v]) }
        }
    }
}
