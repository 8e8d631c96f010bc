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

    /// x [B, T, H]; keyMask [B, T] (1 = token, 0 = padding) -> [B, T, H]. With caches, x holds the tokens that
    /// follow the cached ones (inference: no graph, no padding mask): the caches take the rows in order, each as many
    /// as its batch (one buffer for all rows, or one per sequence, each with its own length). A row's tokens sit at
    /// positions cache.count ..< cache.count + T of its cache, see the cached keys too, and their keys and values
    /// join the cache.
    public func callAsFunction(_ x: Tensor, keyMask: Tensor? = nil, caches: [KeyValueBuffer] = []) -> Tensor {
        let qkv = qkvLayer(x)                                                      // [B, T, 3H]
        let context: Tensor                                                        // [B, nH, T, hd]
        if caches.isEmpty {
            let heads = splitHeads(qkv, heads: config.numAttentionHeads, ropeBase: rotary?.base)   // [3, B, nH, T, hd]
            let p = isTraining ? config.attentionProbsDropoutProb : 0
            context = scaledDotProductAttention(packed: heads, keyMask: keyMask, causal: causal, dropout: p,
                                                seed: p > 0 ? dropoutSeeds.next() : 0)
        } else {
            precondition(keyMask == nil, "attention: a key/value cache takes no padding mask")
            precondition(caches.reduce(0) { $0 + $1.batch } == x.shape[0],
                         "attention: caches for \(caches.map(\.batch)) rows, x of shape \(x.shape)")
            var row = 0
            let parts = caches.map { cache in
                defer { row += cache.batch }
                let rows = caches.count == 1 ? qkv : qkv.slice(axis: 0, row..<(row + cache.batch))
                return cache.attend(splitHeads(rows, heads: config.numAttentionHeads, ropeBase: rotary?.base,
                                               positionOffset: cache.count), causal: causal)
            }
            context = parts.count == 1 ? parts[0] : concat(parts, axis: 0)
        }
        return outputProj(mergeHeads(context))                                     // [B, T, H]
    }
}
