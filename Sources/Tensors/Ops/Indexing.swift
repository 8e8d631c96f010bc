/// Checks that every index lies in [0, size), naming the first one that does not.
func checkIndices(_ indices: IntTensor, size: Int, _ what: String) throws {
    for (i, v) in indices.scalars.enumerated() where v < 0 || Int(v) >= size {
        throw TensorError("\(what): index \(v) at position \(i) is out of range [0, \(size))")
    }
}

/// Rows of `weight` [V, E] picked by `ids` (any shape): the result is ids.shape + [E]. The row
/// `paddingIndex`, when given, receives no gradient.
public func embedding(_ weight: Tensor, _ ids: IntTensor, paddingIndex: Int? = nil) -> Tensor {
    precondition(weight.rank == 2, "embedding: weight must be [V, E], got \(weight.shape)")
    let (v, e) = (weight.shape[0], weight.shape[1])
    Shape.check { try checkIndices(ids, size: v, "embedding") }
    let out = Tensor(uninitializedShape: ids.shape + [e])
    for (i, id) in ids.scalars.enumerated() {
        (out.pointer + i * e).update(from: weight.pointer + Int(id) * e, count: e)
    }
    return out.record("embedding", [weight]) { g in
        let dw = Tensor.zeros([v, e])
        for (i, id) in ids.scalars.enumerated() where Int(id) != paddingIndex {
            let dst = dw.pointer + Int(id) * e, src = g.pointer + i * e
            for j in 0..<e { dst[j] += src[j] }
        }
        return [dw]
    }
}

extension Tensor {
    /// Decomposes the shape around `axis` as (outer, size, inner).
    func around(_ axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// Slices along `axis` picked by a 1-D list of indices (repeats allowed).
    public func indexSelect(axis: Int, _ indices: IntTensor) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(indices.rank == 1, "indexSelect: indices must be 1-D, got shape \(indices.shape)")
        let (outer, size, inner) = around(a)
        Shape.check { try checkIndices(indices, size: size, "indexSelect") }
        var outShape = shape
        outShape[a] = indices.count
        let out = Tensor(uninitializedShape: outShape)
        let n = indices.count
        for o in 0..<outer {
            for (j, idx) in indices.scalars.enumerated() {
                (out.pointer + (o * n + j) * inner).update(from: pointer + (o * size + Int(idx)) * inner, count: inner)
            }
        }
        let inShape = shape
        return out.record("index_select", [self]) { g in
            [Tensor.zeros(inShape).indexAdd(axis: a, indices, g)]
        }
    }

    /// This tensor plus `source` added into the slices along `axis` named by `indices` (repeats add up):
    /// PyTorch's index_add. Differentiable in both tensors.
    public func indexAdd(axis: Int, _ indices: IntTensor, _ source: Tensor) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(indices.rank == 1, "indexAdd: indices must be 1-D, got shape \(indices.shape)")
        var expected = shape
        expected[a] = indices.count
        precondition(source.shape == expected,
                     "indexAdd: source of shape \(source.shape) for \(indices.count) indices into shape \(shape) along axis \(axis) (expected \(expected))")
        let (outer, size, inner) = around(a)
        Shape.check { try checkIndices(indices, size: size, "indexAdd") }
        let out = copy()
        let n = indices.count, needsSource = source.requiresGrad
        for o in 0..<outer {
            for (j, idx) in indices.scalars.enumerated() {
                let dst = out.pointer + (o * size + Int(idx)) * inner, src = source.pointer + (o * n + j) * inner
                for i in 0..<inner { dst[i] += src[i] }
            }
        }
        return out.record("index_add", [self, source]) { g in
            [g, needsSource ? g.indexSelect(axis: a, indices) : nil]
        }
    }

    /// out[..., j, ...] = self[..., index[..., j, ...], ...] along `axis` (PyTorch's gather); `index` has
    /// this tensor's shape except along `axis`.
    public func gather(axis: Int, _ index: IntTensor) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        var s1 = shape, s2 = index.shape
        precondition(s2.count == rank, "gather: index of shape \(index.shape) for a tensor of shape \(shape)")
        s1[a] = 0; s2[a] = 0
        precondition(s1 == s2, "gather: index of shape \(index.shape) must match shape \(shape) outside axis \(axis)")
        let (outer, size, inner) = around(a)
        Shape.check { try checkIndices(index, size: size, "gather") }
        let n = index.shape[a]
        let out = Tensor(uninitializedShape: index.shape)
        index.scalars.withUnsafeBufferPointer { idx in
            for o in 0..<outer {
                for j in 0..<n {
                    for i in 0..<inner {
                        let p = (o * n + j) * inner + i
                        out.pointer[p] = pointer[(o * size + Int(idx[p])) * inner + i]
                    }
                }
            }
        }
        let inShape = shape
        return out.record("gather", [self]) { g in
            let t = Tensor.zeros(inShape)
            index.scalars.withUnsafeBufferPointer { idx in
                for o in 0..<outer {
                    for j in 0..<n {
                        for i in 0..<inner {
                            let p = (o * n + j) * inner + i
                            t.pointer[(o * size + Int(idx[p])) * inner + i] += g.pointer[p]
                        }
                    }
                }
            }
            return [t]
        }
    }

    /// The `k` largest values along the last axis, in descending order (ties: lower index first), and
    /// their indices. Values are differentiable; indices are not.
    public func topk(_ k: Int) -> (values: Tensor, indices: IntTensor) {
        precondition(rank >= 1, "topk: needs at least one dimension, got a scalar")
        let n = shape[rank - 1]
        precondition(k >= 1 && k <= n, "topk: k = \(k) out of range for a last dimension of \(n)")
        let rows = n == 0 ? 0 : count / n
        let outShape = Array(shape.dropLast()) + [k]
        let values = Tensor(uninitializedShape: outShape)
        var indices = [Int32](repeating: 0, count: rows * k)
        var order = [Int](repeating: 0, count: n)
        for r in 0..<rows {
            let x = pointer + r * n
            if k <= 8 {
                // Selection: k passes, each taking the largest not yet taken.
                var taken = [Bool](repeating: false, count: n)
                for slot in 0..<k {
                    var best = -1
                    for j in 0..<n where !taken[j] && (best < 0 || x[j] > x[best]) {
                        best = j
                    }
                    taken[best] = true
                    indices[r * k + slot] = Int32(best)
                    values.pointer[r * k + slot] = x[best]
                }
            } else {
                for j in 0..<n { order[j] = j }
                order.sort { x[$0] > x[$1] || (x[$0] == x[$1] && $0 < $1) }
                for slot in 0..<k {
                    indices[r * k + slot] = Int32(order[slot])
                    values.pointer[r * k + slot] = x[order[slot]]
                }
            }
        }
        let idx = IntTensor(indices, shape: outShape)
        let inShape = shape
        values.record("topk", [self]) { g in
            let t = Tensor.zeros(inShape)
            for r in 0..<rows {
                for slot in 0..<k { t.pointer[r * n + Int(idx.scalars[r * k + slot])] += g.pointer[r * k + slot] }
            }
            return [t]
        }
        return (values, idx)
    }
}

/// How many times each class in [0, numClasses) occurs in `indices` (one-hot, summed), as Float. Carries no
/// gradient.
public func oneHotCounts(_ indices: IntTensor, numClasses: Int) -> Tensor {
    Shape.check { try checkIndices(indices, size: numClasses, "oneHotCounts") }
    let out = Tensor.zeros([numClasses])
    for v in indices.scalars { out.pointer[Int(v)] += 1 }
    return out
}
