/// Where an operation's input gradient goes: into a leaf's `.grad`, or on to the node that made the input.
/// A node refers to the nodes of its inputs, not to the input tensors, so an intermediate tensor's memory is
/// freed as soon as nothing but the graph would hold it (a backward keeps only what it captured).
enum Edge {
    case leaf(Tensor)
    case node(Node, shape: [Int])
}

/// One recorded operation: where its inputs came from and how to turn the gradient of its output into
/// gradients of its inputs (nil for an input that needs none).
final class Node {
    let name: String
    private(set) var edges: [Edge?]
    private(set) var backward: ((Tensor) -> [Tensor?])?

    init(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.edges = inputs.map { t in
            guard t.requiresGrad else { return nil }
            if let n = t.node { return .node(n, shape: t.shape) }
            return .leaf(t)
        }
        self.backward = backward
    }

    /// True once a backward pass went through this node (its saved tensors are gone).
    var isReleased: Bool { backward == nil }

    /// Drops the saved tensors and the links to the inputs.
    func release() {
        backward = nil
        edges = []
    }
}

/// Whether operations are recorded for autograd, per thread (or task).
public enum GradMode {
    @TaskLocal static var enabled = true

    /// True while operations are being recorded.
    public static var isEnabled: Bool { enabled }
}

/// Runs `body` without recording operations: results do not require grad and hold no graph (inference).
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(false, operation: body)
}

/// Runs `body` with recording on, even inside a no-grad scope.
public func withGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$enabled.withValue(true, operation: body)
}

extension Tensor {
    /// Records `result = op(inputs)` when grad mode is on and any input requires grad.
    @discardableResult
    func record(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if GradMode.enabled && inputs.contains(where: { $0.requiresGrad }) {
            requiresGrad = true
            node = Node(name, inputs, backward)
        }
        return self
    }

    /// True for tensors made by the user (not by a recorded operation).
    public var isLeaf: Bool { node == nil }

    /// The name of the operation that made this tensor ("" for a leaf or an unrecorded result).
    public var operationName: String { node?.name ?? "" }

    /// Computes the gradient of this scalar with respect to every leaf that requires grad and adds it to
    /// the leaf's `grad`. The graph is released afterwards. `gradient` seeds a non-scalar output.
    public func backward(_ gradient: Tensor? = nil) {
        precondition(requiresGrad, "backward: the tensor of shape \(shape) does not require grad (nothing to differentiate)")
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape, "backward: gradient of shape \(gradient.shape) for a tensor of shape \(shape)")
            seed = gradient
        } else {
            precondition(count == 1, "backward: called on a tensor of shape \(shape); only a scalar (one element) can seed backward without an explicit gradient")
            seed = Tensor.ones(shape)
        }

        guard let root = node else {
            // A leaf: its gradient is the seed itself.
            grad = grad.map { $0 + seed } ?? seed.copy()
            return
        }
        precondition(!root.isReleased, "backward: the graph through this tensor was already released by an earlier backward()")

        // Nodes in topological order (each after every node that uses its output), by depth-first search.
        var order: [Node] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [(Node, Bool)] = [(root, false)]
        while let (n, expanded) = stack.popLast() {
            if expanded { order.append(n); continue }
            guard seen.insert(ObjectIdentifier(n)).inserted else { continue }
            stack.append((n, true))
            for case .node(let input, _)? in n.edges where !seen.contains(ObjectIdentifier(input)) {
                stack.append((input, false))
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        withNoGrad {
            for n in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(n)), let backward = n.backward else { continue }
                let inputGrads = backward(g)
                let edges = n.edges
                n.release()   // free the saved tensors as we go
                for (edge, ig) in zip(edges, inputGrads) {
                    guard let edge, let ig else { continue }
                    switch edge {
                    case .leaf(let t):
                        precondition(ig.shape == t.shape, "backward of \(n.name): gradient shape \(ig.shape) for input shape \(t.shape)")
                        // A private copy, so in-place updates of .grad never alias another tensor.
                        t.grad = t.grad.map { $0 + ig } ?? ig.copy()
                    case .node(let input, let shape):
                        precondition(ig.shape == shape, "backward of \(n.name): gradient shape \(ig.shape) for input shape \(shape)")
                        let key = ObjectIdentifier(input)
                        grads[key] = grads[key].map { $0 + ig } ?? ig
                    }
                }
            }
        }
    }
}
