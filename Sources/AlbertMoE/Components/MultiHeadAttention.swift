import Layers

/// Multi-head self-attention with one fused q|k|v projection (per head: q, then k, then v rows), RoPE or
/// nothing on q and k, an additive -10000 padding mask, optional causal masking, and an output projection.
public final class MultiHeadAttention: Module {
    public let config: AlbertMoEConfig
    public let causal: Bool
    public let qkvLayer: Linear
    public let outputProj: Linear
    public let rotary: RotaryEmbedding?
    private var dropoutSeeds: SeededGenerator

    public init(_ config: AlbertMoEConfig, causal: Bool, generator: inout SeededGenerator) {
        self.config = config
        self.causal = causal
        qkvLayer = Linear(config.hiddenSize, 3 * config.hiddenSize, bias: false, generator: &generator)
        outputProj = Linear(config.hiddenSize, config.hiddenSize, bias: false, generator: &generator)
        rotary = config.positionEmbeddingType == "rope" ? RotaryEmbedding(headDim: config.headDim, base: config.ropeBase) : nil
        dropoutSeeds = SeededGenerator(seed: generator.next())
    }

    public override var children: [(String, Module)] {
        [("qkv_layer", qkvLayer), ("output_proj", outputProj)] + (rotary.map { [("rotary", $0)] } ?? [])
    }

    public override var ownRandomState: [UInt64]? {
        get { dropoutSeeds.state }
        set { if let newValue { dropoutSeeds.state = newValue } }
    }

    /// x [B, T, H]; keyMask [B, T] (1 = token, 0 = padding) -> [B, T, H].
    public func callAsFunction(_ x: Tensor, keyMask: Tensor? = nil) -> Tensor {
        let heads = splitHeads(qkvLayer(x), heads: config.numAttentionHeads,
                               ropeBase: rotary?.base)                             // [3, B, nH, T, hd], RoPE on q, k
        let p = isTraining ? config.attentionProbsDropoutProb : 0
        let context = scaledDotProductAttention(packed: heads, keyMask: keyMask, causal: causal, dropout: p,
                                                seed: p > 0 ? dropoutSeeds.next() : 0)   // [B, nH, T, hd]
        return outputProj(mergeHeads(context))                                         // [B, T, H]
    }
}
