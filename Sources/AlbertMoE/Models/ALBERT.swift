import Layers

/// What the encoder produced.
public struct EncoderOutput {
    /// [B, T, H].
    public let hiddenStates: Tensor
    /// Mean of the per-pass load-balancing losses (a scalar).
    public let auxLoss: Tensor
    /// Mean of the per-pass router z-losses; nil when its coefficient is 0.
    public let routerZLoss: Tensor?
    /// Per-expert fraction of routed slots, averaged over the passes.
    public let expertLoad: [Float]
    /// Slots that skipped an expert for lack of capacity, summed over the passes.
    public let droppedSlots: Int
}

/// The encoder: embeddings, then one shared layer applied `num_hidden_layers` times.
public final class ALBERT: Module {
    public let config: AlbertMoEConfig
    public let causal: Bool
    public let embeddings: AlbertEmbeddings
    public let sharedLayer: AlbertLayer

    /// A new encoder with weights initialised from `seed` (as PyTorch's defaults: uniform Linear, normal
    /// embeddings, unit norms). The config must be valid (see `AlbertMoEConfig.validate()`).
    public init(_ config: AlbertMoEConfig, causal: Bool = false, seed: UInt64 = 0) {
        do { try config.validate() } catch { preconditionFailure("ALBERT: \(error)") }
        self.config = config
        self.causal = causal
        var generator = SeededGenerator(seed: seed)
        embeddings = AlbertEmbeddings(config, generator: &generator)
        sharedLayer = AlbertLayer(config, causal: causal, generator: &generator)
    }

    public override var children: [(String, Module)] { [("embeddings", embeddings), ("shared_layer", sharedLayer)] }

    /// Checks ids, masks and lengths against the config, naming what is wrong.
    public func checkInputs(_ ids: IntTensor, attentionMask: IntTensor?, tokenTypeIDs: IntTensor?) throws {
        guard ids.rank == 2, ids.shape[0] > 0, ids.shape[1] > 0 else {
            throw TensorError("input ids must be [batch, length] with both positive, got \(ids.shape)")
        }
        if let bad = ids.scalars.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw TensorError("input id \(bad) is outside the vocabulary [0, \(config.vocabSize))")
        }
        if config.positionEmbeddingType == "absolute" && ids.shape[1] > config.maxPositionEmbeddings {
            throw TensorError("sequence length \(ids.shape[1]) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        if let m = attentionMask, m.shape != ids.shape {
            throw TensorError("attention mask of shape \(m.shape) for input ids of shape \(ids.shape)")
        }
        if let tt = tokenTypeIDs {
            guard tt.shape == ids.shape else { throw TensorError("token type ids of shape \(tt.shape) for input ids of shape \(ids.shape)") }
            if let bad = tt.scalars.first(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
                throw TensorError("token type id \(bad) is outside [0, \(config.typeVocabSize))")
            }
        }
    }

    /// ids [B, T]; attentionMask [B, T] (1 = token, 0 = padding). With a cache, ids follow the cached tokens,
    /// which they see (incremental decoding: call inside `withNoGrad` on a model in eval mode, without a mask).
    public func callAsFunction(_ ids: IntTensor, attentionMask: IntTensor? = nil, tokenTypeIDs: IntTensor? = nil,
                               cache: KVCache? = nil) -> EncoderOutput {
        do { try checkInputs(ids, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs) } catch {
            preconditionFailure("ALBERT: \(error)")
        }
        let offset = cache?.count ?? 0
        if let cache {
            precondition(!GradMode.isEnabled, "incremental decoding records no graph: call it inside withNoGrad")
            precondition(offset + ids.shape[1] <= cache.capacity,
                         "the sequence would reach \(offset + ids.shape[1]) positions, beyond max_position_embeddings \(cache.capacity)")
        }
        let keyMask = attentionMask?.toFloat()                                        // [B, T]
        var x = embeddings(ids, tokenTypeIDs: tokenTypeIDs, positionOffset: offset)   // [B, T, H]
        var auxLosses: [Tensor] = [], zLosses: [Tensor] = []
        var load = [Float](repeating: 0, count: config.numExperts)
        var dropped = 0
        for pass in 0..<config.numHiddenLayers {
            let (y, moe) = sharedLayer(x, keyMask: keyMask, cache: cache?.buffers[pass])
            x = y
            auxLosses.append(moe.auxLoss)
            if let z = moe.routerZLoss { zLosses.append(z) }
            for e in 0..<load.count { load[e] += moe.expertLoad[e] / Float(config.numHiddenLayers) }
            dropped += moe.droppedSlots
        }
        let passes = Float(config.numHiddenLayers)
        let aux = auxLosses.dropFirst().reduce(auxLosses[0], +) / passes
        let z = zLosses.isEmpty ? nil : zLosses.dropFirst().reduce(zLosses[0], +) / passes
        return EncoderOutput(hiddenStates: x, auxLoss: aux, routerZLoss: z, expertLoad: load, droppedSlots: dropped)
    }
}
