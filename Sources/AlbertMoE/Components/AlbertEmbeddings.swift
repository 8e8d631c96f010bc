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

    /// ids [B, T] -> [B, T, H].
    public func callAsFunction(_ ids: IntTensor, tokenTypeIDs: IntTensor? = nil, positionOffset: Int = 0) -> Tensor {
        let types = tokenTypeIDs ?? IntTensor.full(ids.shape, 0)
        let e = wordEmbeddings(ids) + tokenTypeEmbeddings(types)       // [B, T, E]
        var h = embeddingHiddenMappingIn(e)                            // [B, T, H]
        if let positionEmbeddings {
            h = h + positionEmbeddings(length: ids.shape[1], positionOffset: positionOffset)   // + [T, H]
        }
        return dropout(norm(h))
    }
}
