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

    /// x [B, T, H]; keyMask [B, T] (1 = token, 0 = padding) -> [B, T, H]. With a cache, x holds the tokens that
    /// follow the cached ones: they sit at positions cache.count ..< cache.count + T, see the cached keys too, and
    /// their keys and values join the cache (inference: no graph, no padding mask).
    public func callAsFunction(_ x: Tensor, keyMask: Tensor? = nil, cache: KeyValueBuffer? = nil) -> Tensor {
        let heads = splitHeads(qkvLayer(x), heads: config.numAttentionHeads, ropeBase: rotary?.base,
                               positionOffset: cache?.count ?? 0)                 // [3, B, nH, T, hd], RoPE on q, k
        let context: Tensor                                                        // [B, nH, T, hd]
        if let cache {
            precondition(keyMask == nil, "attention: a key/value cache takes no padding mask")
            context = cache.attend(heads, causal: causal)
        } else {
            let p = isTraining ? config.attentionProbsDropoutProb : 0
            context = scaledDotProductAttention(packed: heads, keyMask: keyMask, causal: causal, dropout: p,
                                                seed: p > 0 ? dropoutSeeds.next() : 0)
        }
        return outputProj(mergeHeads(context))                                     // [B, T, H]
    }
}
