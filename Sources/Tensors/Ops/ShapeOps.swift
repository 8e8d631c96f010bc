extension Tensor {
    /// The same elements with another shape (one dimension may be -1). Shares storage.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let target = Shape.resolve(newShape, count: count)
        let oldShape = shape
        return Tensor(shape: target, storage: storage).record("reshape", [self]) { g in [g.reshaped(oldShape)] }
    }

    /// Adds a dimension of size 1 at `axis`.
    public func unsqueezed(_ axis: Int) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank + 1) }
        var s = shape
        s.insert(1, at: a)
        return reshaped(s)
    }

    /// Removes the dimension of size 1 at `axis`.
    public func squeezed(_ axis: Int) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(shape[a] == 1, "squeezed: dimension \(axis) of shape \(shape) is not 1")
        var s = shape
        s.remove(at: a)
        return reshaped(s)
    }

    /// Dimensions reordered: output dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        let perm = order.map { a in Shape.check { try Shape.axis(a, rank: rank) } }
        precondition(perm.count == rank && Set(perm).count == rank,
                     "permuted: \(order) is not a permutation of the \(rank) dimensions of shape \(shape)")
        let own = Tensor.strides(shape)
        let out = Tensor.stridedCopy(pointer, strides: perm.map { own[$0] }, shape: perm.map { shape[$0] })
        var inverse = [Int](repeating: 0, count: rank)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return out.record("permute", [self]) { g in [g.permuted(inverse)] }
    }

    /// Two dimensions swapped (the last two by default).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        let (x, y) = (Shape.check { try Shape.axis(a, rank: rank) }, Shape.check { try Shape.axis(b, rank: rank) })
        var order = Array(0..<rank)
        order.swapAt(x, y)
        return permuted(order)
    }

    /// This tensor broadcast to `target` (copied); the gradient is summed back.
    public func broadcast(to target: [Int]) -> Tensor {
        let own = shape
        return expanded(to: target).record("broadcast", [self]) { g in [g.sumTo(own)] }
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[a],
                     "slice: range \(range) out of bounds for dimension \(axis) of shape \(shape)")
        let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
        var outShape = shape
        outShape[a] = range.count
        let out = Tensor(uninitializedShape: outShape)
        let rowIn = shape[a] * inner, rowOut = range.count * inner
        for o in 0..<outer where rowOut > 0 {
            (out.pointer + o * rowOut).update(from: pointer + o * rowIn + range.lowerBound * inner, count: rowOut)
        }
        let inShape = shape
        return out.record("slice", [self]) { g in
            let t = Tensor.zeros(inShape)
            for o in 0..<outer where rowOut > 0 {
                (t.pointer + o * rowIn + range.lowerBound * inner).update(from: g.pointer + o * rowOut, count: rowOut)
            }
            return [t]
        }
    }

    /// Splits along `axis` into pieces of the given sizes (summing to the dimension).
    public func split(_ sizes: [Int], axis: Int = -1) -> [Tensor] {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[a],
                     "split: sizes \(sizes) do not add up to dimension \(axis) of shape \(shape)")
        var start = 0
        return sizes.map { s in
            defer { start += s }
            return slice(axis: a, start..<(start + s))
        }
    }

    /// Splits along `axis` into `chunks` pieces of equal size (the last smaller when it does not divide),
    /// as PyTorch's chunk.
    public func chunked(_ chunks: Int, axis: Int = -1) -> [Tensor] {
        let a = Shape.check { try Shape.axis(axis, rank: rank) }
        precondition(chunks > 0, "chunked: number of chunks must be positive, got \(chunks)")
        let size = (shape[a] + chunks - 1) / chunks
        var sizes: [Int] = []
        var left = shape[a]
        while left > 0 { sizes.append(Swift.min(size, left)); left -= size }
        return split(sizes.isEmpty ? [0] : sizes, axis: a)
    }
}

/// Tensors joined along `axis`; all other dimensions must match.
public func concat(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    precondition(!tensors.isEmpty, "concat: no tensors")
    let first = tensors[0]
    let a = Shape.check { try Shape.axis(axis, rank: first.rank) }
    for t in tensors {
        var s1 = t.shape, s0 = first.shape
        precondition(s1.count == s0.count, "concat: shapes \(tensors.map(\.shape)) differ in rank")
        s1[a] = 0; s0[a] = 0
        precondition(s1 == s0, "concat: shapes \(tensors.map(\.shape)) differ outside dimension \(axis)")
    }
    let outer = first.shape[..<a].reduce(1, *), inner = first.shape[(a + 1)...].reduce(1, *)
    var outShape = first.shape
    outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
    let out = Tensor(uninitializedShape: outShape)
    let rowOut = outShape[a] * inner
    var offset = 0
    for t in tensors {
        let row = t.shape[a] * inner
        for o in 0..<outer where row > 0 {
            (out.pointer + o * rowOut + offset).update(from: t.pointer + o * row, count: row)
        }
        offset += row
    }
    let sizes = tensors.map { $0.shape[a] }
    return out.record("concat", tensors) { g in g.split(sizes, axis: a) }
}

/// Tensors of one shape stacked along a new dimension `axis`.
public func stack(_ tensors: [Tensor], axis: Int = 0) -> Tensor {
    precondition(!tensors.isEmpty, "stack: no tensors")
    return concat(tensors.map { $0.unsqueezed(axis) }, axis: axis)
}
