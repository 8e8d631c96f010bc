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
        func fail(_ field: String, _ why: String) -> AlbertMoEError { .invalidValue(field: field, reason: why) }
        guard maxNewTokens >= 0 else { throw fail("max_new_tokens", "must be >= 0, got \(maxNewTokens)") }
        guard temperature >= 0 && temperature.isFinite else { throw fail("temperature", "must be >= 0, got \(temperature)") }
        if let topK, topK < 0 { throw fail("top_k", "must be >= 0, got \(topK)") }
        guard topP > 0 && topP <= 1 else { throw fail("top_p", "must be in (0, 1], got \(topP)") }
        guard repetitionPenalty > 0 && repetitionPenalty.isFinite else {
            throw fail("repetition_penalty", "must be > 0, got \(repetitionPenalty)")
        }
    }
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

/// What a generation does with a prompt that, with the new tokens asked for, does not fit max_position_embeddings.
public enum PromptOverflow: Sendable {
    /// The prompt is refused.
    case error
    /// The prompt keeps its newest tokens: as many as leave room for the new ones (at least one).
    case keepNewest
}

/// Why a generation ended.
public enum FinishReason: Equatable, Sendable {
    /// The last token made is a stop token.
    case stopToken
    /// `maxNewTokens` tokens were made.
    case maxTokens
    /// The context is full: another token would pass max_position_embeddings.
    case contextFull
}

/// One generation, advanced one token per `next()`: with the key/value cache, the prompt runs once, at the first
/// `next()`, then one position per token; a model without causal attention (the Python package's causal models, run
/// as they were trained) has no valid cache, and runs the whole sequence for each token. Tokens are sampled by a
/// `LogitSampler` (the same seed gives the same tokens). It ends after a stop token, after `maxNewTokens` tokens, or
/// when the context fills max_position_embeddings, and says which. The model runs in evaluation mode, whatever its
/// mode between calls.
public final class GenerationSession {
    public let model: AlbertForCausalLM
    public let options: SamplingOptions
    /// The prompt as it is used (its newest tokens when it was cut to fit).
    public let prompt: [Int32]
    /// The tokens made so far (a final stop token included).
    public private(set) var generated: [Int32] = []
    /// Why the generation ended, once it has.
    public private(set) var finishReason: FinishReason?
    /// Nil when the model attends to later tokens: each step then runs the whole sequence.
    private let cache: KVCache?
    private var sampler: LogitSampler
    /// The logits [V] of the token to sample next, once the tokens before it have run.
    private var logits: [Float]?
    /// The prompt and the tokens made, for the repetition penalty.
    private var history: [Int32]

    /// Checks the options and the prompt: an empty prompt, one with ids outside the model's vocabulary, and one that
    /// with `options.maxNewTokens` new tokens would not fit max_position_embeddings are refused (the last is cut to
    /// its newest tokens instead when `overflow` says so). The prompt runs at the first `next()`.
    public init(model: AlbertForCausalLM, prompt: [Int32], options: SamplingOptions, overflow: PromptOverflow = .error) throws {
        try options.validate()
        func refuse(_ reason: String) -> AlbertMoEError { .invalidValue(field: "prompt", reason: reason) }
        guard !prompt.isEmpty else { throw refuse("the prompt is empty: give at least one token") }
        let room = model.config.maxPositionEmbeddings
        var kept = prompt
        if prompt.count + options.maxNewTokens > room {
            guard overflow == .keepNewest else {
                let new = "\(options.maxNewTokens) new token" + (options.maxNewTokens == 1 ? "" : "s")
                throw refuse("the prompt (\(prompt.count) tokens) and \(new) exceed the model's context of \(room) tokens "
                             + "(max_position_embeddings): shorten the prompt or ask for fewer new tokens")
            }
            kept = Array(prompt.suffix(max(room - options.maxNewTokens, 1)))
        }
        do {
            try model.albert.checkInputs(IntTensor(kept, shape: [1, kept.count]), attentionMask: nil, tokenTypeIDs: nil, caches: [])
        } catch AlbertMoEError.invalidValue(_, let reason) {
            throw refuse(reason)
        }
        self.model = model
        self.options = options
        self.prompt = kept
        cache = model.albert.causal ? KVCache(config: model.config) : nil
        sampler = LogitSampler(options)
        history = kept
        if options.maxNewTokens == 0 { finishReason = .maxTokens }
    }

    /// Runs `body` with `model` in evaluation mode, leaving its mode as it was.
    private static func evaluating<T>(_ model: AlbertForCausalLM, _ body: () throws -> T) rethrows -> T {
        let wasTraining = model.isTraining
        if wasTraining { model.eval() }
        defer { if wasTraining { model.train() } }
        return try body()
    }

    /// The tokens the model runs next: those its cache has not seen (the prompt, then the last token made), or the
    /// whole sequence without a cache.
    private var unseen: [Int32] {
        guard let cache else { return history }
        return Array(history[cache.count...])
    }

    /// Makes the next token, or returns nil once the generation has ended (`finishReason` is then set; it is set
    /// with the last token).
    public func next() throws -> Int32? {
        guard finishReason == nil else { return nil }
        if logits == nil {
            let ids = unseen
            logits = try Self.evaluating(model) { try model.nextTokenLogits(ids, cache: cache) }
        }
        return sample()
    }

    /// Whether the forward before the next token can join a batch: the session has a cache, has not ended and has
    /// tokens to run. Routing that drops tokens for lack of expert capacity depends on the batch, so such a model's
    /// sessions run alone.
    private var batchable: Bool {
        cache != nil && model.config.dropless && finishReason == nil && logits == nil
    }

    /// Advances each of `sessions` (sessions of one model, each given once) by one token, as `next()` does: the
    /// forwards of those with a key/value cache run batched, each row against its own cache
    /// (`AlbertForCausalLM.nextTokenLogits(batch:)`): the new prompts together, padded to the longest of rows of
    /// similar lengths, and the one-position steps together. Each session samples from its row with its own
    /// sampler, so that the tokens are those of `next()`. Sessions without a cache (or that cannot share a batch,
    /// see `batchable`) run alone. Returns, in order, each session's token (nil for one that had ended) or the error
    /// it met; when a batched forward fails, its sessions run one at a time, so a failure stays with its own.
    public static func next(_ sessions: [GenerationSession]) -> [Result<Int32?, Error>] {
        precondition(Set(sessions.map(ObjectIdentifier.init)).count == sessions.count,
                     "GenerationSession.next: a session is given twice")
        for group in batches(of: sessions.filter(\.batchable)) where group.count > 1 {
            let model = group[0].model
            precondition(group.allSatisfy { $0.model === model }, "GenerationSession.next: sessions of different models")
            let rows = group.map { (tokens: $0.unseen, cache: $0.cache!) }
            if let logits = try? evaluating(model, { try model.nextTokenLogits(batch: rows) }) {
                for (session, row) in zip(group, logits) { session.logits = row }
            }
        }
        return sessions.map { session in Result { try session.next() } }
    }

    /// `sessions` in groups to run as one padded forward each: by the number of tokens to run, a group's longest
    /// at most twice its shortest (so padding at most doubles the work) and within every member's cache.
    private static func batches(of sessions: [GenerationSession]) -> [[GenerationSession]] {
        var groups: [(shortest: Int, members: [GenerationSession])] = []
        for (session, length) in sessions.map({ ($0, $0.unseen.count) }).sorted(by: { $0.1 < $1.1 }) {
            let fits = { (member: GenerationSession) in member.cache!.count + length <= member.cache!.capacity }
            if let group = groups.last, length <= 2 * group.shortest, fits(session), group.members.allSatisfy(fits) {
                groups[groups.count - 1].members.append(session)
            } else {
                groups.append((length, [session]))
            }
        }
        return groups.map(\.members)
    }

    /// Samples the next token from `logits` and notes it, and why the generation ends if it does.
    private func sample() -> Int32 {
        let token = sampler.next(logits!, history: history)
        logits = nil
        generated.append(token)
        history.append(token)
        if options.stopTokens.contains(token) {
            finishReason = .stopToken
        } else if generated.count >= options.maxNewTokens {
            finishReason = .maxTokens
        } else if history.count > model.config.maxPositionEmbeddings {   // running the last token would pass it
            finishReason = .contextFull
        }
        return token
    }
}

extension AlbertForCausalLM {
    /// Generates after `prompt` with a `GenerationSession`, calling `onToken` with each new token as it is made
    /// (return false to stop). A prompt that, with the new tokens, would not fit max_position_embeddings is an
    /// error, unless `truncateFromLeft` keeps its newest tokens.
    @discardableResult
    public func generate(_ prompt: [Int32], options: SamplingOptions, truncateFromLeft: Bool = false,
                         onToken: (Int32) -> Bool = { _ in true }) throws -> [Int32] {
        let session = try GenerationSession(model: self, prompt: prompt, options: options,
                                            overflow: truncateFromLeft ? .keepNewest : .error)
        while let token = try session.next(), onToken(token) {}
        return session.generated
    }
}
