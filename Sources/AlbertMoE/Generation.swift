import Tensors

extension AlbertForCausalLM {
    /// The greedy continuation of `ids`: up to `maxNewTokens` tokens, each the most likely next one, stopping
    /// after `eosID` or when the context fills max_position_embeddings (a longer prompt keeps its newest tokens).
    /// The prompt runs once; each new token then runs alone against the key/value cache.
    public func greedyContinuation(_ ids: [Int32], maxNewTokens: Int, eosID: Int32? = nil) -> [Int32] {
        precondition(!ids.isEmpty, "greedyContinuation: the prompt is empty")
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        let cache = KVCache(config: config)
        var new: [Int32] = []
        var pending = Array(ids.suffix(config.maxPositionEmbeddings))
        while new.count < maxNewTokens && cache.count + pending.count <= cache.capacity {
            let logits = nextTokenLogits(pending, cache: cache)
            let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            new.append(next)
            if next == eosID { break }
            pending = [next]
        }
        return new
    }
}
