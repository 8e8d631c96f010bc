import Layers

/// Factorised embeddings: word (V x E) + token type (2 x E), projected E -> H, plus absolute positions when
/// configured, then RMSNorm and dropout.
public final class AlbertEmbeddings: Module {
    public let config: AlbertMoEConfig
    public let wordEmbeddings: Embedding
    public let tokenTypeEmbeddings: Embedding
    public let embeddingHiddenMappingIn: Linear
    public let positionEmbeddings: AbsolutePositionalEmbedding?
    public let norm: RMSNorm
    public let dropout: Dropout

    public init(_ config: AlbertMoEConfig, generator: inout SeededGenerator) {
        self.config = config
        wordEmbeddings = Embedding(config.vocabSize, config.embeddingSize, paddingIndex: config.padTokenID, generator: &generator)
        tokenTypeEmbeddings = Embedding(config.typeVocabSize, config.embeddingSize, generator: &generator)
        embeddingHiddenMappingIn = Linear(config.embeddingSize, config.hiddenSize, generator: &generator)
        positionEmbeddings = config.positionEmbeddingType == "absolute"
            ? AbsolutePositionalEmbedding(maxPositions: config.maxPositionEmbeddings, hiddenSize: config.hiddenSize, generator: &generator)
            : nil
        norm = RMSNorm(config.hiddenSize, eps: config.layerNormEps)
        dropout = Dropout(config.hiddenDropoutProb, seed: generator.next())
    }

    public override var children: [(String, Module)] {
        var c: [(String, Module)] = [("word_embeddings", wordEmbeddings), ("token_type_embeddings", tokenTypeEmbeddings),
                                     ("embedding_hidden_mapping_in", embeddingHiddenMappingIn), ("norm", norm),
                                     ("dropout", dropout)]
        if let positionEmbeddings { c.append(("position_embeddings", positionEmbeddings)) }
        return c
    }

    /// ids [B, T] -> [B, T, H]. The tokens of row b sit at positions positionOffsets[b] ..< positionOffsets[b] + T;
    /// one offset is every row's.
    public func callAsFunction(_ ids: IntTensor, tokenTypeIDs: IntTensor? = nil, positionOffsets: [Int] = [0]) -> Tensor {
        let (b, t) = (ids.shape[0], ids.shape[1])
        precondition(positionOffsets.count == 1 || positionOffsets.count == b,
                     "AlbertEmbeddings: \(positionOffsets.count) position offsets for \(b) rows")
        let types = tokenTypeIDs ?? IntTensor.full(ids.shape, 0)
        let e = wordEmbeddings(ids) + tokenTypeEmbeddings(types)       // [B, T, E]
        var h = embeddingHiddenMappingIn(e)                            // [B, T, H]
        if let positionEmbeddings {
            if let offset = positionOffsets.first, positionOffsets.count == 1 {
                h = h + positionEmbeddings(IntTensor((offset..<(offset + t)).map { Int32($0) }, shape: [t]))   // + [T, H]
            } else {
                let positions = positionOffsets.flatMap { offset in (offset..<(offset + t)).map { Int32($0) } }
                h = h + positionEmbeddings(IntTensor(positions, shape: [b, t]))                               // + [B, T, H]
            }
        }
        return dropout(norm(h))
    }
}
