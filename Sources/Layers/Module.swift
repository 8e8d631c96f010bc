@_exported import Tensors

/// A building block of a model: it owns parameters (leaf tensors that require grad) and child modules,
/// each under the name it has in a checkpoint's state dict, and a training/evaluation mode.
///
/// Subclasses list their own parameters in `ownParameters` and every module they hold in `children` (those
/// without parameters, like a dropout, too), with the names of the reference state dict. `namedModules()`
/// walks that tree, and everything else (parameters, modes, generator states, state dicts) follows it, so
/// `namedParameters()` yields e.g. `albert.shared_layer.ffn.experts.3.linear1.weight`.
open class Module {
    /// True in training mode (dropout active), false in evaluation mode.
    public private(set) var isTraining = true

    public init() {}

    /// This module's own parameters, by local name.
    open var ownParameters: [(String, Tensor)] { [] }

    /// Every module this one holds, by local name. An empty name gives the child's names without a prefix.
    open var children: [(String, Module)] { [] }

    /// The name of `name` inside a module called `prefix` (either may be empty).
    public static func dotted(_ prefix: String, _ name: String) -> String {
        prefix.isEmpty ? name : name.isEmpty ? prefix : prefix + "." + name
    }

    /// This module (named "") and every module below it, by dotted name, depth first in the order of `children`.
    public func namedModules() -> [(String, Module)] {
        [("", self)] + children.flatMap { name, child in
            child.namedModules().map { (Module.dotted(name, $0.0), $0.1) }
        }
    }

    /// Every parameter of this module and its descendants, by dotted name, in a stable order.
    public func namedParameters() -> [(String, Tensor)] {
        namedModules().flatMap { path, module in module.ownParameters.map { (Module.dotted(path, $0.0), $0.1) } }
    }

    /// Every parameter, in the order of `namedParameters()`.
    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    /// The number of scalar parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// Sets training mode (dropout on) for this module and every module below it.
    public func train(_ on: Bool = true) {
        for (_, module) in namedModules() { module.isTraining = on }
    }

    /// The state of the seeded generator this module itself holds (dropout masks), if any. Modules that hold one
    /// override both accessors.
    open var ownRandomState: [UInt64]? {
        get { nil }
        set {}
    }

    /// The states of every seeded generator in this module and below it, by module name, so that a resumed
    /// training run draws the same dropout masks. Setting it takes a state for each of those modules.
    public var randomState: [String: [UInt64]] {
        get {
            Dictionary(uniqueKeysWithValues: namedModules().compactMap { name, m in m.ownRandomState.map { (name, $0) } })
        }
        set {
            let holders = namedModules().filter { $0.1.ownRandomState != nil }
            precondition(Set(newValue.keys) == Set(holders.map(\.0)),
                         "randomState: states for \(newValue.keys.sorted()), generators in \(holders.map(\.0))")
            for (name, module) in holders { module.ownRandomState = newValue[name] }
        }
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
