import Foundation
import Tensors
import Tokenizers

/// Token-weighted negative log-likelihood of texts under a causal model.
public struct PerplexityResult: Equatable {
    /// Mean negative log-likelihood per predicted token (nats).
    public let loss: Double
    /// Tokens predicted (each text's first token has no context and is not).
    public let tokens: Int
    public var perplexity: Double { Foundation.exp(loss) }
}

extension AlbertForCausalLM {
    /// The perplexity of `texts`: every token after a text's first is predicted from the tokens before it. A text
    /// longer than `window` tokens (default max_position_embeddings) is read in overlapping windows that advance
    /// by `stride` tokens (default half a window); each token is scored once, in the first window that holds it
    /// past the previous window's end, so it has at least `window - stride` tokens of context.
    public func perplexity(of texts: [String], tokenizer: Tokenizer, window: Int? = nil, stride: Int? = nil) throws
        -> PerplexityResult
    {
        let window = min(window ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
        let stride = stride ?? max(window / 2, 1)
        guard window >= 2 else {
            throw AlbertMoEError.invalidValue(field: "window",
                                              reason: "the perplexity window must be at least 2 tokens, got \(window)")
        }
        guard stride >= 1 && stride <= window - 1 else {
            throw AlbertMoEError.invalidValue(field: "stride",
                                              reason: "the perplexity stride must be in [1, \(window - 1)], got \(stride)")
        }
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        var total = 0.0, count = 0
        for text in texts {
            let ids = try tokenizer.encodeUnpadded(text).ids.map(Int32.init)
            guard ids.count >= 2 else { continue }
            var scoredUpTo = 1                       // tokens 1 ..< scoredUpTo are scored
            var start = 0
            while scoredUpTo < ids.count {
                let end = min(start + window, ids.count)
                let chunk = Array(ids[start..<end])
                // Labels: -100 for the tokens already scored (they are context here).
                var labels = chunk
                for j in 0..<min(scoredUpTo - start, chunk.count) { labels[j] = -100 }
                let n = labels.dropFirst().filter { $0 != -100 }.count
                let ce = try withNoGrad {
                    try self(IntTensor(chunk, shape: [1, chunk.count]), labels: IntTensor(labels, shape: [1, chunk.count])).ceLoss!
                }
                total += Double(ce.item) * Double(n)
                count += n
                scoredUpTo = end
                if end == ids.count { break }
                start += stride
            }
        }
        guard count > 0 else { throw AlbertMoEError.cannotContinue("no text has two tokens or more: nothing to predict") }
        return PerplexityResult(loss: total / Double(count), tokens: count)
    }
}
