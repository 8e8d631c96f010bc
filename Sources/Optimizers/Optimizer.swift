import Tensors

/// Updates parameters from their gradients. Parameters without a gradient are skipped.
public protocol Optimizer: AnyObject {
    /// The parameters this optimizer updates, in a fixed order (their indices name their state).
    var parameters: [Tensor] { get }
    /// The learning rate used by the next step (schedules set it before each step).
    var learningRate: Float { get set }
    /// One update of every parameter that has a gradient.
    func step()
    /// The optimizer's state (moments, step counts, hyper-parameters) as tensors and string metadata, so
    /// training can resume exactly.
    func stateDict() -> OptimizerState
    /// Restores a state written by `stateDict()`; throws when it does not fit these parameters.
    func loadStateDict(_ state: OptimizerState) throws
}

extension Optimizer {
    /// Clears every parameter's gradient.
    public func zeroGrad() {
        for p in parameters { p.grad = nil }
    }
}

/// An optimizer's saved state: tensors by name (e.g. "3.exp_avg" for parameter 3) and metadata.
public struct OptimizerState {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }
}

/// An optimizer state that does not fit, naming what is wrong.
public struct OptimizerStateError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
