import Foundation
import Tensors
import Tokenizers

/// One candidate for a masked position.
public struct MaskPrediction: Equatable, Sendable {
    public let tokenID: Int
    public let token: String
    public let probability: Float
}

/// The candidates for one mask token of a text.
public struct MaskFill: Equatable, Sendable {
    /// The mask's index among the text's tokens.
    public let position: Int
    /// Best first.
    public let predictions: [MaskPrediction]
}

extension AlbertForMaskedLM {
    /// For each mask token in `text` (the tokenizer's mask token: [MASK], <mask>, ...), the `topK`
    /// most likely tokens with their probabilities. Throws when the tokenizer has no mask token, the text holds
    /// none, or the text is longer than max_position_embeddings.
    public func fillMask(_ text: String, tokenizer: Tokenizer, topK: Int = 5) throws -> [MaskFill] {
        guard topK >= 1 else { throw AlbertMoEError.invalidValue(field: "top_k", reason: "top_k must be at least 1, got \(topK)") }
        guard let mask = tokenizer.specialTokens.mask else {
            throw AlbertMoEError.invalidValue(field: "tokenizer", reason: "the tokenizer has no mask token (\(tokenizer.specialTokens.missing(.mask))): it cannot fill masks")
        }
        let ids = try tokenizer.encodeUnpadded(text).ids
        let positions = ids.indices.filter { ids[$0] == mask.id }
        guard !positions.isEmpty else {
            throw AlbertMoEError.invalidValue(field: "text", reason: "the text holds no mask token: write \(mask.content) where a word should be predicted")
        }
        guard ids.count <= config.maxPositionEmbeddings else {
            throw AlbertMoEError.invalidValue(field: "text", reason: "the text has \(ids.count) tokens, more than max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        let logits = try withNoGrad { try self(IntTensor(ids.map(Int32.init), shape: [1, ids.count])).logits }   // [1, T, V]
        let v = config.vocabSize
        return positions.map { p in
            let row = Tensor(Array(logits.scalars[p * v ..< (p + 1) * v]), shape: [v]).softmax().scalars
            let best = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(topK)
            return MaskFill(position: p, predictions: best.map {
                MaskPrediction(tokenID: $0, token: tokenizer.idToToken($0) ?? "", probability: row[$0])
            })
        }
    }
}
