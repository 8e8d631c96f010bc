import Layers

/// The transformer layer shared by every pass (post-norm):
/// x = RMSNorm1(x + dropout(attn(x))); x = RMSNorm2(x + dropout(moe(x))).
public final class AlbertLayer: Module {
    public let attention: MultiHeadAttention
    public let ffn: MoE
    public let norm1: RMSNorm
    public let norm2: RMSNorm
    public let dropout1: Dropout
    public let dropout2: Dropout

    public init(_ config: AlbertMoEConfig, causal: Bool, generator: inout SeededGenerator) {
        attention = MultiHeadAttention(config, causal: causal, generator: &generator)
        ffn = MoE(config, generator: &generator)
        norm1 = RMSNorm(config.hiddenSize)
        norm2 = RMSNorm(config.hiddenSize)
        dropout1 = Dropout(config.hiddenDropoutProb, seed: generator.next())
        dropout2 = Dropout(config.hiddenDropoutProb, seed: generator.next())
    }

    public override var children: [(String, Module)] {
        [("attention", attention), ("ffn", ffn), ("norm1", norm1), ("norm2", norm2),
         ("dropout1", dropout1), ("dropout2", dropout2)]
    }

    /// x [B, T, H] -> ([B, T, H], the MoE's extras). With caches, x follows the cached tokens (see
    /// `MultiHeadAttention`).
    public func callAsFunction(_ x: Tensor, keyMask: Tensor? = nil, caches: [KeyValueBuffer] = []) -> (Tensor, MoEOutput) {
        let a = norm1(x + dropout1(attention(x, keyMask: keyMask, caches: caches)))
        let moe = ffn(a)
        return (norm2(a + dropout2(moe.output)), moe)
    }
}
