import Tensors

/// Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov momentum, as
/// `torch.optim.SGD` (no maximize). For each parameter with a gradient:
///
///     d = g + weightDecay * p
///     buf = d                                          (first step with momentum)
///     buf = momentum * buf + (1 - dampening) * d       (later steps)
///     d = nesterov ? d + momentum * buf : buf          (when momentum != 0)
///     p -= learningRate * d
public final class SGD: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var momentum: Float
    public var dampening: Float
    public var weightDecay: Float
    public var nesterov: Bool

    private var momentumBuffers: [Tensor?]

    public static let kind = "SGD"

    public init(_ parameters: [Tensor], learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                weightDecay: Float = 0, nesterov: Bool = false) {
        do {
            try SGD.validate(learningRate: learningRate, momentum: momentum, dampening: dampening,
                             weightDecay: weightDecay, nesterov: nesterov)
        } catch {
            preconditionFailure("\(error)")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        momentumBuffers = Array(repeating: nil, count: parameters.count)
    }

    /// Throws an `AlbertMoEError.invalidValue` naming the first invalid hyper-parameter (torch's checks).
    public static func validate(learningRate: Float, momentum: Float = 0, dampening: Float = 0,
                                weightDecay: Float = 0, nesterov: Bool = false) throws {
        try checkSetting("learningRate", learningRate,
                         learningRate.isFinite && learningRate >= 0, "must be finite and >= 0")
        try checkSetting("momentum", momentum, momentum.isFinite && momentum >= 0, "must be finite and >= 0")
        try checkSetting("dampening", dampening, dampening.isFinite, "must be finite")
        try checkSetting("weightDecay", weightDecay, weightDecay.isFinite && weightDecay >= 0,
                         "must be finite and >= 0")
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw AlbertMoEError.invalidValue(field: "nesterov",
                                              reason: "needs momentum > 0 and dampening 0 (got momentum \(momentum), "
                                                + "dampening \(dampening))")
        }
    }

    public func step() {
        let lr = learningRate, wd = weightDecay, mu = momentum, nesterov = self.nesterov
        let keep = Float(1 - Double(dampening))
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.count == p.count, "SGD: gradient of shape \(g.shape) for parameter \(i) of shape \(p.shape)")
            let n = p.count
            let pp = p.pointer, gp = g.pointer
            if mu == 0 {
                for j in 0..<n {
                    var d = gp[j]
                    if wd != 0 { d += wd * pp[j] }
                    pp[j] -= lr * d
                }
                continue
            }
            let first = momentumBuffers[i] == nil
            if first { momentumBuffers[i] = Tensor.zeros(p.shape) }
            let bp = momentumBuffers[i]!.pointer
            for j in 0..<n {
                var d = gp[j]
                if wd != 0 { d += wd * pp[j] }
                let b = first ? d : mu * bp[j] + keep * d
                bp[j] = b
                d = nesterov ? d + mu * b : b
                pp[j] -= lr * d
            }
        }
    }

    public func stateDict() -> OptimizerState {
        var state = OptimizerState()
        state.metadata["optimizer"] = SGD.kind
        state.metadata["parameter_count"] = "\(parameters.count)"
        state.metadata["learning_rate"] = metadataString(learningRate)
        state.metadata["momentum"] = metadataString(momentum)
        state.metadata["dampening"] = metadataString(dampening)
        state.metadata["weight_decay"] = metadataString(weightDecay)
        state.metadata["nesterov"] = "\(nesterov)"
        for i in parameters.indices {
            if let b = momentumBuffers[i] { state.tensors["\(i).momentum_buffer"] = b.copy() }
        }
        return state
    }

    /// Restores momentum buffers and hyper-parameters; everything is checked first, on error nothing
    /// changes.
    public func loadStateDict(_ state: OptimizerState) throws {
        let reader = try StateReader(state, kind: SGD.kind, parameterCount: parameters.count,
                                     tensorNames: ["momentum_buffer"])
        let lr = try reader.float("learning_rate"), mu = try reader.float("momentum")
        let damp = try reader.float("dampening"), wd = try reader.float("weight_decay")
        let nest = try reader.bool("nesterov")
        try reader.checked { try SGD.validate(learningRate: lr, momentum: mu, dampening: damp, weightDecay: wd, nesterov: nest) }
        let buffers = try parameters.indices.map { try reader.tensor($0, "momentum_buffer", like: parameters[$0]) }
        if mu == 0, let i = buffers.firstIndex(where: { $0 != nil }) {
            throw AlbertMoEError.invalidValue(field: "\(i).momentum_buffer", reason: "the SGD state has momentum 0")
        }
        learningRate = lr
        momentum = mu
        dampening = damp
        weightDecay = wd
        nesterov = nest
        momentumBuffers = buffers.map { $0?.copy() }
    }
}
