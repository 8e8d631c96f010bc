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

    /// Positions seen so far.
    public var count: Int { buffers[0].count }
    /// Positions the cache can hold (max_position_embeddings).
    public var capacity: Int { buffers[0].capacity }

    /// Forgets the sequence.
    public func reset() { buffers.forEach { $0.reset() } }
}

extension MultiHeadAttention {
    /// New tokens x [B, T, H] attending to themselves and to the cached positions -> [B, T, H].
    func callAsFunction(_ x: Tensor, cache: KeyValueBuffer) -> Tensor {
        let heads = splitHeads(qkvLayer(x), heads: config.numAttentionHeads, ropeBase: rotary?.base,
                               positionOffset: cache.count)                        // [3, B, nH, T, hd]
        return outputProj(mergeHeads(cache.attend(heads, causal: causal)))          // [B, T, H]
    }
}

extension AlbertLayer {
    /// One pass over new tokens with this pass's cache (inference: no dropout).
    func callAsFunction(_ x: Tensor, cache: KeyValueBuffer) -> Tensor {
        let a = norm1(x + attention(x, cache: cache))
        return norm2(a + ffn(a).output)
    }
}

extension ALBERT {
    /// The final hidden states [B, T, H] of new tokens ids [B, T] that follow the cached ones, which they see
    /// (inference only: call inside `withNoGrad` on a model in eval mode).
    public func callAsFunction(_ ids: IntTensor, cache: KVCache) -> Tensor {
        precondition(!GradMode.isEnabled, "incremental decoding records no graph: call it inside withNoGrad")
        precondition(cache.count + ids.shape[1] <= cache.capacity,
                     "the sequence would reach \(cache.count + ids.shape[1]) positions, beyond max_position_embeddings \(cache.capacity)")
        do { try checkInputs(ids, attentionMask: nil, tokenTypeIDs: nil) } catch { preconditionFailure("ALBERT: \(error)") }
        var x = embeddings(ids, positionOffset: cache.count)                        // [B, T, H]
        for pass in 0..<config.numHiddenLayers { x = sharedLayer(x, cache: cache.buffers[pass]) }
        return x
    }
}

extension AlbertForCausalLM {
    /// Runs `ids` (one sequence) after the cached tokens and returns the logits [V] of the token that follows.
    public func nextTokenLogits(_ ids: [Int32], cache: KVCache) -> [Float] {
        precondition(!ids.isEmpty, "nextTokenLogits: no token to run")
        return withNoGrad {
            let hidden = albert(IntTensor(ids, shape: [1, ids.count]), cache: cache)      // [1, T, H]
            let last = hidden.slice(axis: 1, (ids.count - 1)..<ids.count)                   // [1, 1, H]
            return logits(last).scalars                                                     // [V]
        }
    }
}
