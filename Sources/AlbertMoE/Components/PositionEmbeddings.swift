import Layers

/// Rotary position embedding: rotates interleaved pairs of each head's query and key by the token position.
public final class RotaryEmbedding: Module {
    public let headDim: Int
    public let base: Float

    public init(headDim: Int, base: Float = 10000) {
        self.headDim = headDim
        self.base = base
    }

    /// x [B, T, nH, hd] for tokens at positions offset ..< offset + T.
    public func callAsFunction(_ x: Tensor, positionOffset: Int = 0) -> Tensor {
        rope(x, base: base, positionOffset: positionOffset)
    }
}

/// Learned absolute position embeddings [max_position_embeddings, H], added to the hidden states.
public final class AbsolutePositionalEmbedding: Module {
    /// [max_position_embeddings, H], initialised N(0, 1).
    public let weight: Tensor

    public init(maxPositions: Int, hiddenSize: Int, generator: inout SeededGenerator) {
        weight = parameter(Tensor.normal([maxPositions, hiddenSize], generator: &generator))
    }

    public override var ownParameters: [(String, Tensor)] { [("weight", weight)] }

    /// The embeddings of `positions` [...]: [..., H].
    public func callAsFunction(_ positions: IntTensor) -> Tensor { embedding(weight, positions) }
}
