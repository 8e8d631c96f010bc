import Foundation

// The JSON bodies the server answers with. Field names follow the OpenAI API where it has the endpoint.

/// `{"error": {"message", "type", "param"}}`.
struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let message: String
        let type: String
        let param: String?

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(message, forKey: .message)
            try c.encode(type, forKey: .type)
            try c.encode(param, forKey: .param)            // null when absent, as OpenAI writes it
        }
        enum CodingKeys: String, CodingKey { case message, type, param }
    }
    let error: Detail

    init(_ error: APIError) {
        self.error = Detail(message: error.message, type: error.type, param: error.param)
    }
}

/// Token counts of a request.
struct Usage: Encodable {
    let promptTokens: Int
    let completionTokens: Int?
    let totalTokens: Int

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

/// A `/v1/completions` answer, or one chunk of a streamed one (then `usage` is absent).
struct CompletionBody: Encodable {
    struct Choice: Encodable {
        let text: String
        let index: Int
        /// "stop" or "length"; null in the chunks of a stream before the last.
        let finishReason: String?

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(index, forKey: .index)
            try c.encodeNil(forKey: .logprobs)
            try c.encode(finishReason, forKey: .finishReason)
        }
        enum CodingKeys: String, CodingKey { case text, index, logprobs, finishReason = "finish_reason" }
    }

    let id: String
    let object = "text_completion"
    let created: Int
    let model: String
    let choices: [Choice]
    let usage: Usage?

    enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
}

/// A `/v1/embeddings` answer.
struct EmbeddingsBody: Encodable {
    /// How the vectors are written (the request's `encoding_format`).
    enum Encoding: String {
        /// A JSON array of numbers.
        case float
        /// The little-endian float32 bytes in base64, as OpenAI writes them.
        case base64
    }

    /// A vector as its encoding writes it.
    enum Vector: Encodable {
        case float([Float])
        case base64(String)

        init(_ vector: [Float], encoding: Encoding) {
            switch encoding {
            case .float: self = .float(vector)
            case .base64:
                var bytes = Data(capacity: 4 * vector.count)
                for x in vector { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                self = .base64(bytes.base64EncodedString())
            }
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .float(let vector): try c.encode(vector)
            case .base64(let text): try c.encode(text)
            }
        }
    }

    struct Item: Encodable {
        let object = "embedding"
        let index: Int
        let embedding: Vector
        enum CodingKeys: String, CodingKey { case object, index, embedding }
    }
    let object = "list"
    let data: [Item]
    let model: String
    let usage: Usage

    enum CodingKeys: String, CodingKey { case object, data, model, usage }
}

/// A `/v1/fill-mask` answer: for each mask token of the text (in order), its position among the text's tokens and
/// the most likely tokens for it, best first.
struct FillMaskBody: Encodable {
    struct Candidate: Encodable {
        let token: String
        let tokenID: Int
        let probability: Float
        enum CodingKeys: String, CodingKey { case token, tokenID = "token_id", probability }
    }
    struct Prediction: Encodable {
        let position: Int
        let candidates: [Candidate]
    }
    let model: String
    let predictions: [Prediction]
}

/// A `/v1/models` answer.
struct ModelListBody: Encodable {
    struct Model: Encodable {
        let id: String
        let object = "model"
        let created: Int
        let ownedBy = "albertmoe"
        enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by" }
    }
    let object = "list"
    let data: [Model]
    enum CodingKeys: String, CodingKey { case object, data }
}

/// JSON encoding of the answers, with a stable key order.
enum JSONBody {
    static func encode(_ value: some Encodable) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}
