/// y = x W^T + b, with W [out, in] as in PyTorch; initialised U(-1/sqrt(in), 1/sqrt(in)) like PyTorch.
public final class Linear: Module {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, generator: inout SeededGenerator) {
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = parameter(Tensor.uniform([outFeatures, inFeatures], low: -bound, high: bound, generator: &generator))
        self.bias = bias ? parameter(Tensor.uniform([outFeatures], low: -bound, high: bound, generator: &generator)) : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public override var ownParameters: [(String, Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// x [..., in] -> [..., out].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y = matmul(x, weight, transposeB: true)
        return bias.map { y + $0 } ?? y
    }
}

/// A lookup table [count, dim] initialised N(0, 1); the padding row starts at zero and gets no gradient.
public final class Embedding: Module {
    public let weight: Tensor
    public let paddingIndex: Int?

    public init(_ count: Int, _ dim: Int, paddingIndex: Int? = nil, generator: inout SeededGenerator) {
        let w = Tensor.normal([count, dim], generator: &generator)
        if let p = paddingIndex, p >= 0, p < count { (w.pointer + p * dim).update(repeating: 0, count: dim) }
        weight = parameter(w)
        self.paddingIndex = paddingIndex
    }

    public override var ownParameters: [(String, Tensor)] { [("weight", weight)] }

    /// ids [...] -> [..., dim].
    public func callAsFunction(_ ids: IntTensor) -> Tensor { embedding(weight, ids, paddingIndex: paddingIndex) }
}

/// x / sqrt(mean(x^2) + eps) * weight over the last axis; weight starts at 1.
public final class RMSNorm: Module {
    public let weight: Tensor
    public let eps: Float

    public init(_ dim: Int, eps: Float = Float.ulpOfOne) {
        weight = parameter(Tensor.ones([dim]))
        self.eps = eps
    }

    public override var ownParameters: [(String, Tensor)] { [("weight", weight)] }

    public func callAsFunction(_ x: Tensor) -> Tensor { x.rmsNorm(weight: weight, eps: eps) }
}

/// Inverted dropout with its own seeded generator, active only in training mode.
public final class Dropout: Module {
    public let probability: Float
    private var generator: SeededGenerator

    public init(_ probability: Float, seed: UInt64) {
        precondition(probability >= 0 && probability < 1, "Dropout: probability \(probability) must be in [0, 1)")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        x.dropout(probability, training: isTraining, generator: &generator)
    }

    public override var ownRandomState: [UInt64]? {
        get { generator.state }
        set { if let newValue { generator.state = newValue } }
    }
}
