@_exported import Tensors

/// A building block of a model: it owns parameters (leaf tensors that require grad) and child modules,
/// each under the name it has in a checkpoint's state dict, and a training/evaluation mode.
///
/// Subclasses list their own parameters in `ownParameters` and their children in `children`, with the
/// names of the reference state dict, so `namedParameters()` yields e.g.
/// `albert.shared_layer.ffn.experts.3.linear1.weight`.
open class Module {
    /// True in training mode (dropout active), false in evaluation mode.
    public private(set) var isTraining = true

    public init() {}

    /// This module's own parameters, by local name.
    open var ownParameters: [(String, Tensor)] { [] }

    /// Child modules, by local name.
    open var children: [(String, Module)] { [] }

    /// Every parameter of this module and its descendants, by dotted name, in a stable order.
    public func namedParameters(prefix: String = "") -> [(String, Tensor)] {
        var out = ownParameters.map { (prefix + $0.0, $0.1) }
        for (name, child) in children {
            out += child.namedParameters(prefix: prefix + name + ".")
        }
        return out
    }

    /// Every parameter, in the order of `namedParameters()`.
    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// The number of scalar parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Sets training mode (dropout on) for this module and every module it holds, found by reflection
    /// (so a submodule without parameters, like a dropout, need not be listed in `children`).
    public func train(_ on: Bool = true) {
        isTraining = on
        for child in heldModules() { child.train(on) }
    }

    /// The modules stored in this module's properties (directly, in arrays or optionals), superclasses included.
    func heldModules() -> [Module] {
        var out: [Module] = []
        var mirror: Mirror? = Mirror(reflecting: self)
        while let m = mirror {
            for child in m.children {
                if let module = child.value as? Module { out.append(module) }
                if let modules = child.value as? [Module] { out += modules }
            }
            mirror = m.superclassMirror
        }
        return out
    }

    /// The state of the seeded generator this module itself holds (dropout masks), if any. Modules that hold one
    /// override both accessors.
    open var ownRandomState: [UInt64]? {
        get { nil }
        set {}
    }

    /// The states of every seeded generator in this module and the modules it holds, in a fixed order (the
    /// order of the stored properties), so that a resumed training run draws the same dropout masks.
    public var randomState: [[UInt64]] {
        get { randomStateHolders().map { $0.ownRandomState! } }
        set {
            let holders = randomStateHolders()
            precondition(newValue.count == holders.count,
                         "randomState: \(newValue.count) generator states for \(holders.count) generators")
            for (module, state) in zip(holders, newValue) { module.ownRandomState = state }
        }
    }

    /// Every module in this tree that holds a generator, depth first; a module reached twice counts once.
    func randomStateHolders() -> [Module] {
        var seen = Set<ObjectIdentifier>(), out: [Module] = []
        func visit(_ m: Module) {
            guard seen.insert(ObjectIdentifier(m)).inserted else { return }
            if m.ownRandomState != nil { out.append(m) }
            for child in m.heldModules() { visit(child) }
        }
        visit(self)
        return out
    }

    /// Sets evaluation mode (dropout off).
    public func eval() { train(false) }

    /// Clears the gradients of every parameter.
    public func zeroGrad() {
        for p in parameters() { p.grad = nil }
    }

    /// The parameters as a state dict (name to tensor; the tensors are the live parameters).
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedParameters(), uniquingKeysWith: { a, _ in a })
    }

    /// Copies values into the parameters. Strict: every parameter must be given with its exact shape and no
    /// other name may appear; otherwise nothing is changed and the error (field "state dict") lists every offending
    /// name.
    public func loadStateDict(_ tensors: [String: Tensor]) throws {
        let own = namedParameters()
        let ownNames = Set(own.map(\.0))
        var problems: [String] = []
        let missing = own.map(\.0).filter { tensors[$0] == nil }
        if !missing.isEmpty { problems.append("missing keys: \(missing.joined(separator: ", "))") }
        let unexpected = tensors.keys.filter { !ownNames.contains($0) }.sorted()
        if !unexpected.isEmpty { problems.append("unexpected keys: \(unexpected.joined(separator: ", "))") }
        let mismatched = own.compactMap { name, p -> String? in
            guard let t = tensors[name], t.shape != p.shape else { return nil }
            return "\(name) (checkpoint \(t.shape), model \(p.shape))"
        }
        if !mismatched.isEmpty { problems.append("shape mismatches: \(mismatched.joined(separator: ", "))") }
        guard problems.isEmpty else {
            throw AlbertMoEError.invalidValue(field: "state dict",
                                              reason: "does not match the model: " + problems.joined(separator: "; "))
        }
        for (name, p) in own { p.assign(tensors[name]!) }
    }
}

/// A new parameter: a leaf tensor that requires grad.
public func parameter(_ t: Tensor) -> Tensor {
    t.requiresGrad = true
    return t
}
