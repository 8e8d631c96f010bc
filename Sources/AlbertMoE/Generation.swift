import Tensors

extension AlbertForCausalLM {
    /// The greedy continuation of `ids`: up to `maxNewTokens` tokens, each the most likely next one, stopping
    /// after `eosID`. Every step runs the whole context (at most max_position_embeddings tokens, the newest).
    public func greedyContinuation(_ ids: [Int32], maxNewTokens: Int, eosID: Int32? = nil) -> [Int32] {
        precondition(!ids.isEmpty, "greedyContinuation: the prompt is empty")
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        var context = ids, new: [Int32] = []
        withNoGrad {
            for _ in 0..<maxNewTokens {
                let window = Array(context.suffix(config.maxPositionEmbeddings))
                let logits = self(IntTensor(window, shape: [1, window.count])).logits   // [1, T, V]
                let v = config.vocabSize
                let last = logits.scalars[(window.count - 1) * v ..< window.count * v]
                let next = Int32(last.indices.max { last[$0] < last[$1] }! - (window.count - 1) * v)
                new.append(next)
                context.append(next)
                if next == eosID { break }
            }
        }
        return new
    }
}
