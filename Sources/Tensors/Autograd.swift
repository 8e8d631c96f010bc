/// One recorded operation: its inputs and how to turn the gradient of its output into gradients of its
/// inputs (nil for an input that needs none).
final class Node {
    let name: String
    let inputs: [Tensor]
    let backward: (Tensor) -> [Tensor?]

    init(_ name: String, _ inputs: [Tensor], _ backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
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
            recorded = true
            node = Node(name, inputs, backward)
        }
        return self
    }

    /// True for tensors made by the user (not by a recorded operation).
    public var isLeaf: Bool { !recorded }

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

        // Topological order (inputs before outputs) by iterative depth-first search.
        var order: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (t, expanded) = stack.popLast() {
            if expanded { order.append(t); continue }
            if !seen.insert(ObjectIdentifier(t)).inserted { continue }
            stack.append((t, true))
            if let node = t.node {
                for input in node.inputs where input.requiresGrad && !seen.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        withNoGrad {
            for t in order.reversed() {
                guard let g = grads.removeValue(forKey: ObjectIdentifier(t)) else { continue }
                guard let node = t.node else {
                    precondition(!t.recorded, "backward: the graph through this tensor was already released by an earlier backward()")
                    // A leaf: accumulate into .grad (a private copy, so in-place updates never alias).
                    t.grad = t.grad.map { $0 + g } ?? g.copy()
                    continue
                }
                let inputGrads = node.backward(g)
                t.node = nil   // release the graph as we go
                for (input, ig) in zip(node.inputs, inputGrads) where input.requiresGrad {
                    guard let ig else { continue }
                    precondition(ig.shape == input.shape,
                                 "backward of \(node.name): gradient shape \(ig.shape) for input shape \(input.shape)")
                    let key = ObjectIdentifier(input)
                    grads[key] = grads[key].map { $0 + ig } ?? ig
                }
            }
        }
    }
}
