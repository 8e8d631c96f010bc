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
///
/// Layout used by this target's optimizers: tensors "<i>.exp_avg" and "<i>.exp_avg_sq" (ChillAdam, AdamW)
/// or "<i>.momentum_buffer" (SGD) for each parameter index i that has state; metadata "optimizer" (the
/// kind: "ChillAdam", "AdamW", "SGD"), "parameter_count", "<i>.step" (Adam kinds) and the hyper-parameters
/// ("learning_rate", "eps", "beta1", ... as Float strings that parse back to the same bits). The tensors are
/// copies (a snapshot), both when saved and when loaded.
public struct OptimizerState {
    public var tensors: [String: Tensor]
    public var metadata: [String: String]
    public init(tensors: [String: Tensor] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }
}

// MARK: - Shared state-dict plumbing (internal)

/// Floats as metadata strings: Swift's shortest round-trip form, so `Float(string)` gives back the same bits.
func metadataString(_ x: Float) -> String { "\(x)" }

/// The state of an Adam-style optimizer: its kind, hyper-parameters and, for every parameter that has taken a
/// step, the step count and both moments.
func adamState(kind: String, hyperParameters: [(String, Float)], steps: [Int], expAvg: [Tensor?],
               expAvgSq: [Tensor?]) -> OptimizerState {
    var state = OptimizerState()
    state.metadata["optimizer"] = kind
    state.metadata["parameter_count"] = "\(steps.count)"
    for (name, value) in hyperParameters { state.metadata[name] = metadataString(value) }
    for i in steps.indices where steps[i] > 0 {
        state.metadata["\(i).step"] = "\(steps[i])"
        state.tensors["\(i).exp_avg"] = expAvg[i]!.copy()
        state.tensors["\(i).exp_avg_sq"] = expAvgSq[i]!.copy()
    }
    return state
}

/// Reads and checks an `OptimizerState` for one optimizer kind before anything is changed, so that a
/// failed load leaves the optimizer as it was.
struct StateReader {
    let state: OptimizerState
    let kind: String

    /// Checks the kind, the parameter count and that every tensor key is "<index>.<name>" with a known name
    /// and an index in range.
    init(_ state: OptimizerState, kind: String, parameterCount: Int, tensorNames: Set<String>) throws {
        self.state = state
        self.kind = kind
        guard let saved = state.metadata["optimizer"] else {
            throw AlbertMoEError.invalidValue(field: "optimizer", reason: "the state names no optimizer kind (expected \(kind))")
        }
        guard saved == kind else {
            throw AlbertMoEError.invalidValue(field: "optimizer",
                                              reason: "the state's optimizer kind is \(saved), this optimizer is \(kind)")
        }
        guard let countString = state.metadata["parameter_count"], let count = Int(countString) else {
            throw AlbertMoEError.invalidValue(field: "parameter_count",
                                              reason: "the \(kind) state gives no valid parameter count")
        }
        guard count == parameterCount else {
            throw AlbertMoEError.invalidValue(field: "parameter_count",
                                              reason: "the \(kind) state's parameter count is \(count), "
                                              + "this optimizer has \(parameterCount)")
        }
        for key in state.tensors.keys.sorted() {
            let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2, let index = Int(parts[0]), tensorNames.contains(parts[1]) else {
                throw AlbertMoEError.invalidValue(field: key, reason: "not a \(kind) state tensor (expected \"<index>."
                                                  + "\(tensorNames.sorted().joined(separator: "|"))\")")
            }
            guard index >= 0 && index < parameterCount else {
                throw AlbertMoEError.invalidValue(field: key,
                                                  reason: "parameter index \(index) out of range for \(parameterCount) parameters")
            }
        }
    }

    /// A hyper-parameter stored as a Float string.
    func float(_ key: String) throws -> Float {
        guard let s = state.metadata[key] else {
            throw AlbertMoEError.invalidValue(field: key, reason: "missing from the \(kind) state")
        }
        guard let x = Float(s), x.isFinite else {
            throw AlbertMoEError.invalidValue(field: key, reason: "\"\(s)\" in the \(kind) state is not a finite number")
        }
        return x
    }

    func bool(_ key: String) throws -> Bool {
        guard let s = state.metadata[key] else {
            throw AlbertMoEError.invalidValue(field: key, reason: "missing from the \(kind) state")
        }
        guard let b = Bool(s) else {
            throw AlbertMoEError.invalidValue(field: key, reason: "\"\(s)\" in the \(kind) state is not true or false")
        }
        return b
    }

    /// A non-negative integer, or nil when absent.
    func optionalCount(_ key: String) throws -> Int? {
        guard let s = state.metadata[key] else { return nil }
        guard let n = Int(s), n >= 0 else {
            throw AlbertMoEError.invalidValue(field: key, reason: "\"\(s)\" in the \(kind) state is not a non-negative integer")
        }
        return n
    }

    /// Runs an optimizer's `validate` on hyper-parameters read from the state; an error says they come from it.
    func checked(_ validate: () throws -> Void) throws {
        do { try validate() } catch let AlbertMoEError.invalidValue(field, reason) {
            throw AlbertMoEError.invalidValue(field: field, reason: "\(reason) (in the \(kind) state)")
        }
    }

    /// The tensor "<index>.<name>" if present, checked against the parameter's shape.
    func tensor(_ index: Int, _ name: String, like parameter: Tensor) throws -> Tensor? {
        let key = "\(index).\(name)"
        guard let t = state.tensors[key] else { return nil }
        guard t.shape == parameter.shape else {
            throw AlbertMoEError.invalidValue(
                field: key, reason: "shape \(t.shape) in the \(kind) state, parameter \(index) has shape \(parameter.shape)")
        }
        return t
    }

    /// Both Adam moments of parameter `index` and its step count: all present (step >= 1) or all absent.
    func adamState(_ index: Int, like parameter: Tensor) throws -> (step: Int, m: Tensor, v: Tensor)? {
        let step = try optionalCount("\(index).step")
        let m = try tensor(index, "exp_avg", like: parameter)
        let v = try tensor(index, "exp_avg_sq", like: parameter)
        switch (step, m, v) {
        case (nil, nil, nil), (0?, nil, nil):
            return nil
        case let (step?, m?, v?) where step >= 1:
            return (step, m.copy(), v.copy())
        default:
            throw AlbertMoEError.invalidValue(field: "\(index).step", reason: "the \(kind) state must give parameter \(index) "
                + "\"\(index).step\" (>= 1), \"\(index).exp_avg\" and \"\(index).exp_avg_sq\" together, or none of them")
        }
    }
}

/// Throws an `AlbertMoEError.invalidValue` for a hyper-parameter that is not `ok` (e.g. a negative learning rate
/// typed on the command line): "field: value requirement".
func checkSetting(_ field: String, _ value: Float, _ ok: Bool, _ requirement: String) throws {
    if !ok { throw AlbertMoEError.invalidValue(field: field, reason: "\(value) \(requirement)") }
}
