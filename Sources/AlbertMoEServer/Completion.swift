import AlbertMoE
import Foundation
import Tokenizers

/// The settings of a `/v1/completions` request, read and checked.
struct CompletionRequest {
    var prompt: String
    var sampling: SamplingOptions
    var stops: [String]
    var stream: Bool

    /// Reads the OpenAI fields (prompt, max_tokens, temperature, top_p, seed, stop, stream, n, logprobs) and the
    /// extensions top_k and repetition_penalty; other fields are ignored.
    init(_ fields: RequestFields, maxTokensLimit: Int) throws {
        guard let prompts = try fields.strings("prompt") else {
            throw APIError.invalid("prompt is required", param: "prompt")
        }
        guard prompts.count == 1 else {
            throw APIError.invalid("prompt must be a string or an array of one string (got \(prompts.count) prompts)",
                                   param: "prompt")
        }
        prompt = prompts[0]
        guard !prompt.isEmpty else { throw APIError.invalid("prompt must not be empty", param: "prompt") }

        let maxTokens = try fields.int("max_tokens") ?? 16
        guard maxTokens >= 1 else {
            throw APIError.invalid("max_tokens must be at least 1, got \(maxTokens)", param: "max_tokens")
        }
        guard maxTokens <= maxTokensLimit else {
            throw APIError.invalid("max_tokens must be at most \(maxTokensLimit) (the server's limit), got \(maxTokens)",
                                   param: "max_tokens")
        }
        if let n = try fields.int("n"), n != 1 {
            throw APIError.invalid("n must be 1: one completion per request", param: "n")
        }
        if fields.has("logprobs") {
            throw APIError.invalid("logprobs is not supported", param: "logprobs")
        }
        let seed = try fields.int("seed")
        if let seed, seed < 0 { throw APIError.invalid("seed must be >= 0, got \(seed)", param: "seed") }
        sampling = SamplingOptions(
            maxNewTokens: maxTokens,
            temperature: Float(try fields.double("temperature") ?? 1),
            topK: try fields.int("top_k"),
            topP: Float(try fields.double("top_p") ?? 1),
            repetitionPenalty: Float(try fields.double("repetition_penalty") ?? 1),
            seed: seed.map { UInt64($0) } ?? UInt64.random(in: 0 ... .max))
        do { try sampling.validate() } catch AlbertMoEError.invalidValue(let field, let reason) {
            throw APIError.invalid("\(field) \(reason)", param: field)
        }

        stops = try fields.strings("stop") ?? []
        guard stops.count <= 16 else { throw APIError.invalid("stop holds at most 16 strings", param: "stop") }
        guard !stops.contains("") else { throw APIError.invalid("stop strings must not be empty", param: "stop") }
        stream = try fields.bool("stream") ?? false
    }
}

/// One completion, advanced one token at a time by `step(_:)`, together with the other completions in flight: a
/// `GenerationSession` (so a seed gives the same tokens as `AlbertForCausalLM.generate`) that stops at the
/// tokenizer's end-of-text token, and also at stop strings, turning the tokens into text pieces. Use it on the model
/// worker only.
/// Unchecked Sendable: created and stepped by `ModelWorker` jobs only, which run one at a time.
final class CompletionGenerator: @unchecked Sendable {
    /// What one step made.
    struct Step {
        /// New text to send (may be empty: an incomplete character or a possible stop string is held back).
        var text: String
        /// "stop" or "length" once the generation is over, else nil.
        var finishReason: String?
        /// Tokens sampled so far (the end-of-text token included).
        var completionTokens: Int
    }

    let promptTokens: Int

    private let session: GenerationSession
    private let tokenizer: Tokenizer
    private var text: CompletionText

    /// Tokenizes the prompt (with the tokenizer's special tokens only for a model run without its causal mask, as the
    /// Python package encodes its prompts) and sets up the generation (which checks that the prompt and max_tokens fit
    /// the model); the prompt runs at the first step.
    init(_ request: CompletionRequest, served: ServedModel) throws {
        guard let model = served.causal else { preconditionFailure("CompletionGenerator needs a causal model") }
        let prompt: [Int32]
        do {
            prompt = try served.tokenizer.encodeUnpadded(request.prompt, addSpecialTokens: !model.albert.causal).ids.map { Int32($0) }
        } catch {
            throw APIError.invalid("prompt cannot be tokenized: \(error)", param: "prompt")
        }
        var sampling = request.sampling
        sampling.stopTokens = served.tokenizer.specialTokens.eos.map { [Int32($0.id)] } ?? []
        // The sampling settings are checked already: what the session refuses is the prompt.
        do { session = try GenerationSession(model: model, prompt: prompt, options: sampling) } catch AlbertMoEError.invalidValue(_, let reason) {
            throw APIError.invalid(reason, param: "prompt")
        }
        tokenizer = served.tokenizer
        promptTokens = prompt.count
        text = CompletionText(stops: request.stops)
    }

    /// Makes the next token of each of `generators` (distinct ones), their forwards batched (the new prompts together,
    /// the one-position steps together: see `GenerationSession.next(_:)`), and the text each adds: in order, each one's step or the error it met.
    static func step(_ generators: [CompletionGenerator]) -> [Result<Step, Error>] {
        zip(generators, GenerationSession.next(generators.map(\.session))).map { generator, token in
            token.flatMap { _ in Result { try generator.newText() } }
        }
    }

    /// The text the last token adds, and the finish reason once the generation is over.
    private func newText() throws -> Step {
        let reason = session.finishReason, count = session.generated.count
        let content = reason == .stopToken ? session.generated.dropLast() : session.generated[...]
        let all = try tokenizer.decode(content.map { Int($0) }, skipSpecialTokens: true)
        if reason == .stopToken { return Step(text: text.finish(all), finishReason: "stop", completionTokens: count) }
        let (piece, stopped) = text.update(all)
        if stopped { return Step(text: piece, finishReason: "stop", completionTokens: count) }
        if reason != nil { return Step(text: piece + text.finish(all), finishReason: "length", completionTokens: count) }
        return Step(text: piece, finishReason: nil, completionTokens: count)
    }
}
