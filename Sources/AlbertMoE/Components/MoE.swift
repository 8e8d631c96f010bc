import Layers

/// One expert: Linear H -> I (no bias), exact GELU, Linear I -> H (no bias). (The MoE layer applies the
/// dropout, to all experts' outputs at once.)
public final class Expert: Module {
    public let linear1: Linear
    public let linear2: Linear

    public init(_ config: AlbertMoEConfig, generator: inout SeededGenerator) {
        linear1 = Linear(config.hiddenSize, config.intermediateSize, bias: false, generator: &generator)
        linear2 = Linear(config.intermediateSize, config.hiddenSize, bias: false, generator: &generator)
        _ = generator.next()   // the seed of a former per-expert dropout: a seed keeps giving the same weights
    }

    public override var children: [(String, Module)] { [("linear1", linear1), ("linear2", linear2)] }

    /// x [..., H] -> [..., H], for using one expert on its own. The MoE layer runs all experts at once.
    public func callAsFunction(_ x: Tensor) -> Tensor { linear2(linear1(x).gelu()) }

    /// The module names of an unnamed generator-state list as checkpoints wrote it while each expert held a
    /// dropout (which never ran): depth first, that dropout (`….experts.i.dropout`) where its expert comes.
    static func formerRandomStateOrder(of model: Module) -> [String] {
        model.namedModules().flatMap { name, module in
            module is Expert ? [Module.dotted(name, "dropout")] : module.ownRandomState == nil ? [] : [name]
        }
    }
}

/// What one MoE forward produced, besides its output.
public struct MoEOutput {
    /// [B, T, H].
    public let output: Tensor
    /// The load-balancing loss X * sum_i f_i P_i (a scalar; perfectly balanced routing gives k).
    public let auxLoss: Tensor
    /// The router z-loss, mean over tokens of logsumexp(gate logits)^2; nil when its coefficient is 0.
    public let routerZLoss: Tensor?
    /// Fraction of the routed (token, slot) pairs that chose each expert (sums to 1).
    public let expertLoad: [Float]
    /// (token, slot) pairs that overflowed an expert's capacity and skipped it (0 when dropless).
    public let droppedSlots: Int
}

/// Top-k Mixture of Experts. All tokens are routed at once; the (token, slot) pairs are grouped by expert
/// with a counting sort, each expert runs one GEMM over its contiguous rows, and the weighted results are
/// scatter-added back to their tokens.
public final class MoE: Module {
    public let config: AlbertMoEConfig
    public let experts: [Expert]
    public let gate: Linear
    /// Dropout applied to the expert outputs (the experts' dropout probability).
    private let expertDropout: Dropout

    public init(_ config: AlbertMoEConfig, generator: inout SeededGenerator) {
        self.config = config
        var experts: [Expert] = []
        for _ in 0..<config.numExperts { experts.append(Expert(config, generator: &generator)) }
        self.experts = experts
        gate = Linear(config.hiddenSize, config.numExperts, bias: false, generator: &generator)
        expertDropout = Dropout(config.hiddenDropoutProb, seed: generator.next())
    }

    public override var children: [(String, Module)] {
        experts.enumerated().map { ("experts.\($0.offset)", $0.element) } + [("gate", gate), ("expert_dropout", expertDropout)]
    }

    /// The routing of one batch: slots grouped by expert.
    struct Routing {
        /// For each routed slot, in expert order: its token and its index in the flattened [N * k] choices.
        var tokens: [Int32] = []
        var slots: [Int32] = []
        /// Expert e owns rows offsets[e] ..< offsets[e + 1].
        var offsets: [Int] = []
        var counts: [Int] = []
        var dropped = 0
    }

    /// Counting sort of the N*k choices by expert (stable: token order within an expert), keeping at most
    /// `capacity` slots per expert.
    static func route(_ selected: IntTensor, numExperts: Int, capacity: Int?) -> Routing {
        var r = Routing()
        r.counts = [Int](repeating: 0, count: numExperts)
        for e in selected.scalars { r.counts[Int(e)] += 1 }
        let kept = r.counts.map { min($0, capacity ?? Int.max) }
        r.offsets = [0]
        for c in kept { r.offsets.append(r.offsets.last! + c) }
        r.dropped = selected.count - r.offsets.last!
        var next = Array(r.offsets.dropLast())
        r.tokens = [Int32](repeating: 0, count: r.offsets.last!)
        r.slots = r.tokens
        let k = selected.shape.last ?? 1
        for (s, e) in selected.scalars.enumerated() {
            let e = Int(e)
            guard next[e] < r.offsets[e + 1] else { continue }
            r.tokens[next[e]] = Int32(s / k)
            r.slots[next[e]] = Int32(s)
            next[e] += 1
        }
        return r
    }

    /// x [B, T, H].
    public func callAsFunction(_ x: Tensor) -> MoEOutput {
        let (b, t, h) = (x.shape[0], x.shape[1], x.shape[2])
        let (n, k, numExperts) = (b * t, config.topKExperts, config.numExperts)
        let flat = x.reshaped([n, h])                                    // [N, H]
        let logits = gate(flat)                                          // [N, X]
        let probs = logits.softmax()                                     // [N, X]
        let (top, selected) = probs.topk(k)                              // [N, k]
        let weights = top / top.sum(axis: -1, keepDims: true)            // renormalised over the k

        let counts = oneHotCounts(selected, numClasses: numExperts)      // [X], no gradient
        let aux = (counts * (1 / Float(n)) * probs.mean(axis: 0)).sum() * Float(numExperts)

        var capacity: Int? = nil
        if !config.dropless {
            capacity = config.capacityFactor.map { Int((($0 * Float(n * k)) / Float(numExperts)).rounded(.up)) }
                ?? config.expertCapacity
        }
        let routing = MoE.route(selected, numExperts: numExperts, capacity: capacity)
        let tokenIndex = IntTensor(routing.tokens)
        let rows = flat.indexSelect(axis: 0, tokenIndex)                 // [S, H], grouped by expert
        let hidden = groupedMatmul(rows, experts.map(\.linear1.weight), groupOffsets: routing.offsets)   // [S, I], before GELU
        let expertOut = expertDropout(groupedMatmul(hidden, experts.map(\.linear2.weight), groupOffsets: routing.offsets,
                                                    geluInput: true))                                  // [S, H]
        let slotWeights = weights.reshaped([n * k]).indexSelect(axis: 0, IntTensor(routing.slots))  // [S]
        let combined = Tensor.zeros([n, h]).indexAdd(axis: 0, tokenIndex, expertOut * slotWeights.reshaped([-1, 1]))  // [N, H]

        var zLoss: Tensor? = nil
        if config.routerZLossCoefficient > 0 {
            let m = logits.max(axis: -1, keepDims: true).detach()        // [N, 1]
            let lse = (logits - m).exp().sum(axis: -1, keepDims: true).log() + m
            zLoss = (lse * lse).mean()
        }
        let total = Float(max(n * k, 1))
        return MoEOutput(output: combined.reshaped([b, t, h]), auxLoss: aux, routerZLoss: zLoss,
                         expertLoad: routing.counts.map { Float($0) / total }, droppedSlots: routing.dropped)
    }
}
