import Foundation
@testable import AlbertMoEServer

/// A request body, read as each endpoint reads it: completions, embeddings and fill-mask.
func fuzzServerRequest(_ data: Data) {
    expecting(APIError.self) {
        let fields = try RequestFields(body: data)
        expecting(APIError.self) { _ = try CompletionRequest(fields, maxTokensLimit: 4096) }
        expecting(APIError.self) { _ = try EmbeddingsRequest(fields) }
        expecting(APIError.self) { _ = try FillMaskRequest(fields) }
    }
}
