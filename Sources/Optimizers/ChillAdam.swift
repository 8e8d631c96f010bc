import CKernels
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ChillAdam, the optimizer of the reference package (`albertmoe_ref.py`, class `ChillAdam`).
///
/// For each parameter tensor with a gradient, at its step t = 1, 2, ...:
///
///     g' = g / clamp(||g||_2, eps, 100)            (+ weightDecay * p when weightDecay != 0)
///     m  = b1 m + (1 - b1) g'
///     v  = b2 v + (1 - b2) g'^2
///     lr = clamp(1 / max(||p||_2, eps), minLR, maxLR)
///     p -= (learningRate * lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
///
/// Norms are sums of squares accumulated in double (`ak_sum_squares`); the moment update and the step are
/// one pass of `ak_adam_update`. The bias corrections use the Float betas actually applied by the kernel,
/// so that the moments and their corrections agree exactly (at t = 1, m / (1 - b1) is g' to the bit).
///
/// **`learningRate` is a multiplier** on the per-tensor step size (default 1). The reference has no global
/// learning rate: its step size is the clamp above. With `learningRate == 1` (the default, and whatever
/// `loadStateDict` restores from a reference-style state) the update is exactly the reference's.
/// Schedules set it like any optimizer's learning rate: build a schedule with peak learning rate 1 to
/// get warm-up/decay *factors* (e.g. `LinearWarmupSchedule(learningRate: 1, warmupSteps: 100,
/// totalSteps: 10_000)`), and the per-tensor clamp keeps doing its job underneath. A factor rather than a
/// replacement of `maxLR` keeps `minLR <= maxLR` meaningful and scales the whole step, floor included.
public final class ChillAdam: Optimizer {
    public let parameters: [Tensor]
    /// Multiplier on the per-tensor step size; 1 reproduces the reference exactly.
    public var learningRate: Float
    public var minLR: Float
    public var maxLR: Float
    public var eps: Float
    public var betas: (Float, Float)
    public var weightDecay: Float

    /// Per parameter: steps taken (0 = no state yet), first and second moments (allocated at the first step).
    public private(set) var steps: [Int]
    private var expAvg: [Tensor?]
    private var expAvgSq: [Tensor?]

    public static let kind = "ChillAdam"

    public init(_ parameters: [Tensor], minLR: Float = 1e-4, maxLR: Float = 1.0, eps: Float = 1e-3,
                betas: (Float, Float) = (0.9, 0.999), weightDecay: Float = 0, learningRate: Float = 1) {
        do {
            try ChillAdam.validate(minLR: minLR, maxLR: maxLR, eps: eps, betas: betas, weightDecay: weightDecay,
                                   learningRate: learningRate)
        } catch {
            preconditionFailure("\(error)")
        }
        self.parameters = parameters
        self.learningRate = learningRate
        self.minLR = minLR
        self.maxLR = maxLR
        self.eps = eps
        self.betas = betas
        self.weightDecay = weightDecay
        steps = Array(repeating: 0, count: parameters.count)
        expAvg = Array(repeating: nil, count: parameters.count)
        expAvgSq = Array(repeating: nil, count: parameters.count)
    }

    /// Throws an `AlbertMoEError.invalidValue` naming the first invalid hyper-parameter (the initializer
    /// stops the program on the same conditions; call this first for values a user typed).
    public static func validate(minLR: Float = 1e-4, maxLR: Float = 1.0, eps: Float = 1e-3,
                                betas: (Float, Float) = (0.9, 0.999), weightDecay: Float = 0,
                                learningRate: Float = 1) throws {
        try checkSetting("minLR", minLR, minLR.isFinite && minLR >= 0, "must be finite and >= 0")
        try checkSetting("maxLR", maxLR, maxLR.isFinite && maxLR >= minLR, "must be finite and >= minLR (\(minLR))")
        try checkSetting("eps", eps, eps.isFinite && eps > 0, "must be finite and > 0")
        try checkSetting("beta1", betas.0, betas.0 >= 0 && betas.0 < 1, "must be in [0, 1)")
        try checkSetting("beta2", betas.1, betas.1 >= 0 && betas.1 < 1, "must be in [0, 1)")
        try checkSetting("weightDecay", weightDecay, weightDecay.isFinite && weightDecay >= 0,
                         "must be finite and >= 0")
        try checkSetting("learningRate", learningRate,
                         learningRate.isFinite && learningRate >= 0, "must be finite and >= 0")
    }

    public func step() {
        let (b1, b2) = betas
        let epsD = Double(eps)
        for (i, p) in parameters.enumerated() {
            guard let g = p.grad else { continue }
            precondition(g.count == p.count,
                         "ChillAdam: gradient of shape \(g.shape) for parameter \(i) of shape \(p.shape)")
            if expAvg[i] == nil {
                expAvg[i] = Tensor.zeros(p.shape)
                expAvgSq[i] = Tensor.zeros(p.shape)
            }
            steps[i] += 1
            let t = Double(steps[i])
            let gradNorm = ak_sum_squares(g.pointer, p.count).squareRoot()
            let gscale = 1 / min(max(gradNorm, epsD), 100)
            let paramNorm = ak_sum_squares(p.pointer, p.count).squareRoot()
            let lr = min(max(1 / max(paramNorm, epsD), Double(minLR)), Double(maxLR))
            let bc1 = 1 - pow(Double(b1), t)
            let bc2 = 1 - pow(Double(b2), t)
            let stepSize = Double(learningRate) * lr / bc1
            ak_adam_update(p.pointer, g.pointer, expAvg[i]!.pointer, expAvgSq[i]!.pointer, p.count, Float(gscale),
                           weightDecay, b1, b2, Float(stepSize), Float(1 / bc2.squareRoot()), eps)
        }
    }

    public func stateDict() -> OptimizerState {
        adamState(kind: ChillAdam.kind,
                  hyperParameters: [("learning_rate", learningRate), ("min_lr", minLR), ("max_lr", maxLR), ("eps", eps),
                                    ("beta1", betas.0), ("beta2", betas.1), ("weight_decay", weightDecay)],
                  steps: steps, expAvg: expAvg, expAvgSq: expAvgSq)
    }

    /// Restores moments, step counts and hyper-parameters (as torch's `load_state_dict` restores its
    /// param groups). Everything is checked first; on error nothing changes.
    public func loadStateDict(_ state: OptimizerState) throws {
        let reader = try StateReader(state, kind: ChillAdam.kind, parameterCount: parameters.count,
                                     tensorNames: ["exp_avg", "exp_avg_sq"])
        let lr = try reader.float("learning_rate")
        let minLR = try reader.float("min_lr"), maxLR = try reader.float("max_lr")
        let eps = try reader.float("eps"), b1 = try reader.float("beta1"), b2 = try reader.float("beta2")
        let wd = try reader.float("weight_decay")
        try reader.checked {
            try ChillAdam.validate(minLR: minLR, maxLR: maxLR, eps: eps, betas: (b1, b2), weightDecay: wd, learningRate: lr)
        }
        let loaded = try parameters.indices.map { try reader.adamState($0, like: parameters[$0]) }
        learningRate = lr
        self.minLR = minLR
        self.maxLR = maxLR
        self.eps = eps
        betas = (b1, b2)
        weightDecay = wd
        for i in parameters.indices {
            steps[i] = loaded[i]?.step ?? 0
            expAvg[i] = loaded[i]?.m
            expAvgSq[i] = loaded[i]?.v
        }
    }
}
