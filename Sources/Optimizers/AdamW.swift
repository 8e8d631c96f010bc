import CKernels
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Adam with decoupled weight decay, as `torch.optim.AdamW` (amsgrad off, no maximize). For each
/// parameter with a gradient, at its step t:
///
///     p *= 1 - learningRate * weightDecay
///     m  = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
///     p -= (learningRate / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// One pass of `ak_adamw_update` per tensor. The bias corrections use the Float betas the kernel applies.
public final class AdamW: Optimizer {
    public let parameters: [Tensor]
    public var learningRate: Float
    public var betas: (Float, Float)
    public var eps: Float
    public var weightDecay: Float

    /// Per parameter: steps taken (0 = no state yet).
    public private(set) var steps: [Int]
    private var expAvg: [Tensor?]
    private var expAvgSq: [Tensor?]

    public static let kind = "AdamW"

    public init(_ parameters: [Tensor], learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 0.01) {
        do {
            try AdamW.validate(learningRate: learningRate, betas: betas, eps: eps, weightDecay: weightDecay)
        } catch {
            preconditionFailure("\(error)")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        steps = Array(repeating: 0, count: parameters.count)
        expAvg = Array(repeating: nil, count: parameters.count)
        expAvgSq = Array(repeating: nil, count: parameters.count)
    }

    /// Throws an `AlbertMoEError.invalidValue` naming the first invalid hyper-parameter (torch's checks).
    public static func validate(learningRate: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                                eps: Float = 1e-8, weightDecay: Float = 0.01) throws {
        try checkSetting("learningRate", learningRate,
                         learningRate.isFinite && learningRate >= 0, "must be finite and >= 0")
        try checkSetting("beta1", betas.0, betas.0 >= 0 && betas.0 < 1, "must be in [0, 1)")
        try checkSetting("beta2", betas.1, betas.1 >= 0 && betas.1 < 1, "must be in [0, 1)")
        try checkSetting("eps", eps, eps.isFinite && eps >= 0, "must be finite and >= 0")
        try checkSetting("weightDecay", weightDecay, weightDecay.isFinite && weightDecay >= 0,
                         "must be finite and >= 0")
    }

    public func step() {
        let (b1, b2) = betas
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.count == p.count,
                         "AdamW: gradient of shape \(g.shape) for parameter \(i) of shape \(p.shape)")
            if expAvg[i] == nil {
                expAvg[i] = Tensor.zeros(p.shape)
                expAvgSq[i] = Tensor.zeros(p.shape)
            }
            steps[i] += 1
            let t = Double(steps[i])
            let bc1 = 1 - pow(Double(b1), t)
            let bc2 = 1 - pow(Double(b2), t)
            let stepSize = Double(learningRate) / bc1
            ak_adamw_update(p.pointer, g.pointer, expAvg[i]!.pointer, expAvgSq[i]!.pointer, p.count, learningRate,
                            weightDecay, b1, b2, Float(stepSize), Float(1 / bc2.squareRoot()), eps)
        }
    }

    public func stateDict() -> OptimizerState {
        adamState(kind: AdamW.kind, hyperParameters: [("learning_rate", learningRate), ("beta1", betas.0),
                                                      ("beta2", betas.1), ("eps", eps), ("weight_decay", weightDecay)],
                  steps: steps, expAvg: expAvg, expAvgSq: expAvgSq)
    }

    /// Restores moments, step counts and hyper-parameters; everything is checked first, on error nothing
    /// changes.
    public func loadStateDict(_ state: OptimizerState) throws {
        let reader = try StateReader(state, kind: AdamW.kind, parameterCount: parameters.count,
                                     tensorNames: ["exp_avg", "exp_avg_sq"])
        let lr = try reader.float("learning_rate")
        let b1 = try reader.float("beta1"), b2 = try reader.float("beta2")
        let eps = try reader.float("eps"), wd = try reader.float("weight_decay")
        try reader.checked { try AdamW.validate(learningRate: lr, betas: (b1, b2), eps: eps, weightDecay: wd) }
        let loaded = try parameters.indices.map { try reader.adamState($0, like: parameters[$0]) }
        learningRate = lr
        betas = (b1, b2)
        self.eps = eps
        weightDecay = wd
        for i in parameters.indices {
            steps[i] = loaded[i]?.step ?? 0
            expAvg[i] = loaded[i]?.m
            expAvgSq[i] = loaded[i]?.v
        }
    }
}
