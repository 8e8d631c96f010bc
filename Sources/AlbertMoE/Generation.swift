import Foundation
import Tensors

/// How the next token is chosen from the model's logits.
public struct SamplingOptions: Equatable {
    /// Tokens to generate at most.
    public var maxNewTokens = 100
    /// Softmax temperature; 0 picks the most likely token (greedy decoding).
    public var temperature: Float = 1
    /// Keep only the k most likely tokens (nil or 0: all).
    public var topK: Int? = 50
    /// Keep the smallest set of most likely tokens whose probabilities reach p (1: all).
    public var topP: Float = 1
    /// Divides positive logits (multiplies negative ones) of tokens already in the sequence; 1 leaves them.
    public var repetitionPenalty: Float = 1
    /// The seed of the sampling generator: the same seed gives the same tokens.
    public var seed: UInt64 = 0
    /// Generation stops after any of these tokens (it is returned).
    public var stopTokens: Set<Int32> = []

    public init(maxNewTokens: Int = 100, temperature: Float = 1, topK: Int? = 50, topP: Float = 1,
                repetitionPenalty: Float = 1, seed: UInt64 = 0, stopTokens: Set<Int32> = []) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.stopTokens = stopTokens
    }

    /// Greedy decoding.
    public static func greedy(maxNewTokens: Int, stopTokens: Set<Int32> = []) -> SamplingOptions {
        SamplingOptions(maxNewTokens: maxNewTokens, temperature: 0, topK: nil, stopTokens: stopTokens)
    }

    /// Checks the settings, naming the one that is wrong.
    public func validate() throws {
        func fail(_ field: String, _ why: String) -> GenerationError { GenerationError("\(field): \(why)") }
        guard maxNewTokens >= 0 else { throw fail("max_new_tokens", "must be >= 0, got \(maxNewTokens)") }
        guard temperature >= 0 && temperature.isFinite else { throw fail("temperature", "must be >= 0, got \(temperature)") }
        if let topK, topK < 0 { throw fail("top_k", "must be >= 0, got \(topK)") }
        guard topP > 0 && topP <= 1 else { throw fail("top_p", "must be in (0, 1], got \(topP)") }
        guard repetitionPenalty > 0 && repetitionPenalty.isFinite else {
            throw fail("repetition_penalty", "must be > 0, got \(repetitionPenalty)")
        }
    }
}

/// A generation request that cannot be served, saying why.
public struct GenerationError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Picks tokens from logits as `SamplingOptions` say, with its own seeded generator.
public struct LogitSampler {
    public let options: SamplingOptions
    private var generator: SeededGenerator

    public init(_ options: SamplingOptions) {
        self.options = options
        generator = SeededGenerator(seed: options.seed)
    }

    /// The next token after `history` (the ids so far, for the repetition penalty).
    public mutating func next(_ logits: [Float], history: [Int32]) -> Int32 {
        var logits = logits
        if options.repetitionPenalty != 1 {
            for id in Set(history) where Int(id) < logits.count && id >= 0 {
                let l = logits[Int(id)]
                logits[Int(id)] = l > 0 ? l / options.repetitionPenalty : l * options.repetitionPenalty
            }
        }
        if options.temperature == 0 {
            return Int32(logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!)
        }
        // Candidates by decreasing logit, cut to top-k, then to the top-p nucleus.
        var order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let k = options.topK, k > 0, k < order.count { order.removeLast(order.count - k) }
        let top = logits[order[0]]
        var weights = order.map { Foundation.exp(Double((logits[$0] - top) / options.temperature)) }
        let total = weights.reduce(0, +)
        if options.topP < 1 {
            var cumulative = 0.0, keep = 0
            while keep < weights.count {
                cumulative += weights[keep] / total
                keep += 1
                if cumulative >= Double(options.topP) { break }
            }
            order.removeLast(order.count - keep)
            weights.removeLast(weights.count - keep)
        }
        let sum = weights.reduce(0, +)
        var u = Double(generator.next() >> 11) * 0x1p-53 * sum
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return Int32(order[i]) }
        }
        return Int32(order[order.count - 1])
    }
}

extension AlbertForCausalLM {
    /// Generates after `prompt` with the key/value cache (the prompt runs once, then one position per token),
    /// calling `onToken` with each new token as it is made (return false to stop). A prompt that, with the new
    /// tokens, would not fit max_position_embeddings is an error, unless `truncateFromLeft` keeps its newest tokens.
    @discardableResult
    public func generate(_ prompt: [Int32], options: SamplingOptions, truncateFromLeft: Bool = false,
                         onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        try options.validate()
        guard !prompt.isEmpty else { throw GenerationError("the prompt is empty: give at least one token") }
        if let bad = prompt.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw GenerationError("prompt token \(bad) is outside the vocabulary [0, \(config.vocabSize))")
        }
        let room = config.maxPositionEmbeddings
        var context = prompt
        if context.count + options.maxNewTokens > room {
            guard truncateFromLeft else {
                throw GenerationError("the prompt (\(prompt.count) tokens) and \(options.maxNewTokens) new tokens exceed "
                                      + "max_position_embeddings (\(room)): shorten the prompt or ask for fewer tokens")
            }
            context = Array(context.suffix(max(room - options.maxNewTokens, 1)))
        }
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        let cache = KVCache(config: config)
        var sampler = LogitSampler(options)
        var new: [Int32] = [], pending = context
        while new.count < options.maxNewTokens && cache.count + pending.count <= cache.capacity {
            let next = sampler.next(nextTokenLogits(pending, cache: cache), history: context)
            new.append(next)
            context.append(next)
            if !onToken(next) || options.stopTokens.contains(next) { break }
            pending = [next]
        }
        return new
    }

    /// The greedy continuation of `ids`: up to `maxNewTokens` tokens, stopping after `eosID` or when the context
    /// fills max_position_embeddings (a longer prompt keeps its newest tokens).
    public func greedyContinuation(_ ids: [Int32], maxNewTokens: Int, eosID: Int32? = nil) -> [Int32] {
        let options = SamplingOptions.greedy(maxNewTokens: maxNewTokens, stopTokens: eosID.map { [$0] } ?? [])
        do { return try generate(ids, options: options, truncateFromLeft: true) } catch {
            preconditionFailure("greedyContinuation: \(error)")
        }
    }
}
