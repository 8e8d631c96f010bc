import CKernels

extension Tensor {
    /// The reduction loop shared by sum and max: combines the elements along `axes` (normalised, sorted),
    /// returning the result with those axes kept as size 1.
    private func reduce(axes: [Int], initial: Float, _ combine: (Float, Float) -> Float) -> Tensor {
        var keptShape = shape
        for a in axes { keptShape[a] = 1 }
        let out = Tensor.full(keptShape, initial)
        if count == 0 || rank == 0 {
            if rank == 0 { out.pointer[0] = pointer[0] }
            return out
        }
        var outStrides = Tensor.strides(keptShape)
        for a in axes { outStrides[a] = 0 }
        let r = rank, inner = shape[r - 1]
        let innerReduced = axes.contains(r - 1)
        var index = [Int](repeating: 0, count: r)
        var o = 0
        var x = UnsafePointer(pointer)
        let y = out.pointer
        for _ in 0..<(count / inner) {
            if innerReduced {
                var acc = y[o]
                for j in 0..<inner { acc = combine(acc, x[j]) }
                y[o] = acc
            } else {
                let yo = y + o
                for j in 0..<inner { yo[j] = combine(yo[j], x[j]) }
            }
            x += inner
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                o += outStrides[d]
                if index[d] < shape[d] { break }
                o -= outStrides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    private func normalisedAxes(_ axes: [Int]?) -> [Int] {
        guard let axes else { return Array(0..<rank) }
        let normal = axes.map { a in Shape.check { try Shape.axis(a, rank: rank) } }
        precondition(Set(normal).count == normal.count, "reduction: repeated axis in \(axes) for shape \(shape)")
        return normal.sorted()
    }

    private func reducedShape(_ axes: [Int], keepDims: Bool) -> [Int] {
        keepDims ? shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                 : shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// The sum over `axes` (all axes when nil).
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalisedAxes(axes)
        let kept = reduce(axes: ax, initial: 0, +)
        let out = Tensor(shape: reducedShape(ax, keepDims: keepDims), storage: kept.storage)
        let inShape = shape, keptShape = kept.shape
        return out.record("sum", [self]) { g in [g.reshaped(keptShape).expanded(to: inShape)] }
    }

    public func sum(axis: Int, keepDims: Bool = false) -> Tensor { sum(axes: [axis], keepDims: keepDims) }

    /// The mean over `axes` (all axes when nil).
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalisedAxes(axes)
        let n = ax.reduce(1) { $0 * shape[$1] }
        return sum(axes: ax, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    public func mean(axis: Int, keepDims: Bool = false) -> Tensor { mean(axes: [axis], keepDims: keepDims) }

    /// The maximum over `axes` (all axes when nil). The gradient is shared equally among tied maxima.
    public func max(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        let ax = normalisedAxes(axes)
        precondition(ax.allSatisfy { shape[$0] > 0 }, "max: reduction over an empty axis of shape \(shape)")
        let kept = reduce(axes: ax, initial: -.infinity) { Swift.max($0, $1) }
        let out = Tensor(shape: reducedShape(ax, keepDims: keepDims), storage: kept.storage)
        let xd = detach(), keptShape = kept.shape
        return out.record("max", [self]) { g in
            let hits = Tensor.zipMap(xd, kept) { x, mx in x == mx ? 1 : 0 }
            let ties = hits.reduce(axes: ax, initial: 0, +)
            let share = Tensor.zipMap(g.reshaped(keptShape), ties, /)
            return [Tensor.zipMap(hits, share, *)]
        }
    }

    public func max(axis: Int, keepDims: Bool = false) -> Tensor { max(axes: [axis], keepDims: keepDims) }

    /// The L2 norm over `axes` (all elements when nil).
    public func norm(axes: [Int]? = nil, keepDims: Bool = false) -> Tensor {
        (self * self).sum(axes: axes, keepDims: keepDims).sqrt()
    }

    /// Rows scaled to unit L2 norm along `axis`: x / max(||x||, eps).
    public func normalized(axis: Int = -1, eps: Float = 1e-12) -> Tensor {
        self / norm(axes: [axis], keepDims: true).clamp(min: eps)
    }

    /// The L2 norm of all elements as a Double, outside of autograd (accumulated in double precision).
    public var l2Norm: Double { ak_sum_squares(pointer, count).squareRoot() }
}
