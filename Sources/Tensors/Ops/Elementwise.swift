import CKernels
import Foundation

// MARK: - Loops

/// `body(lo, hi)` over pieces of [0, n) of `grain` each, run on the kernel threads when there is more than one
/// piece (inline otherwise). Each index belongs to exactly one piece, whatever the thread count.
@inline(__always)
func parallelRanges(_ n: Int, grain: Int, _ body: (Int, Int) -> Void) {
    if n <= grain {
        if n > 0 { body(0, n) }
        return
    }
    withoutActuallyEscaping(body) { body in
        var job = body
        withUnsafeMutablePointer(to: &job) { job in
            ak_parallel_ranges(n, grain, { ctx, lo, hi in
                ctx!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(lo, hi)
            }, job)
        }
    }
}

/// Elements per piece of an elementwise loop (see ak_rows_grain).
let elementwiseGrain = ak_rows_grain(1)

extension Tensor {
    /// `f` applied to every element.
    @inline(__always)
    func map(_ f: (Float) -> Float) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let x = pointer, y = out.pointer
        parallelRanges(count, grain: elementwiseGrain) { lo, hi in
            for i in lo..<hi { y[i] = f(x[i]) }
        }
        return out
    }

    /// `f` applied to matching elements of `a` and `b`, broadcast to a common shape.
    @inline(__always)
    static func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        let shape = Shape.check { try Shape.broadcast(a.shape, b.shape) }
        let out = Tensor(uninitializedShape: shape)
        let n = out.count, y = out.pointer
        if n == 0 { return out }
        if a.count == n && b.count == n {
            let pa = a.pointer, pb = b.pointer
            parallelRanges(n, grain: elementwiseGrain) { lo, hi in
                for i in lo..<hi { y[i] = f(pa[i], pb[i]) }
            }
        } else if b.count == 1 && a.count == n {
            let pa = a.pointer, s = b.pointer[0]
            parallelRanges(n, grain: elementwiseGrain) { lo, hi in
                for i in lo..<hi { y[i] = f(pa[i], s) }
            }
        } else if a.count == 1 && b.count == n {
            let s = a.pointer[0], pb = b.pointer
            parallelRanges(n, grain: elementwiseGrain) { lo, hi in
                for i in lo..<hi { y[i] = f(s, pb[i]) }
            }
        } else if a.count == n && Array(a.shape.suffix(b.rank)) == b.shape {
            // b repeats along the leading dimensions of a (a bias, a row of weights).
            let pa = a.pointer, pb = b.pointer, inner = b.count
            parallelRanges(n / inner, grain: ak_rows_grain(inner)) { lo, hi in
                for r in lo..<hi {
                    let o = r * inner
                    for j in 0..<inner { y[o + j] = f(pa[o + j], pb[j]) }
                }
            }
        } else {
            let ea = a.count == n ? a : a.expanded(to: shape)
            let eb = b.count == n ? b : b.expanded(to: shape)
            let pa = ea.pointer, pb = eb.pointer
            for i in 0..<n { y[i] = f(pa[i], pb[i]) }
        }
        return out
    }

    /// A copy of this tensor broadcast to `shape` (no autograd; see `broadcast(to:)`).
    func expanded(to target: [Int]) -> Tensor {
        let full = Shape.check { try Shape.broadcast(shape, target) }
        precondition(full == target, "broadcast: shape \(shape) cannot be broadcast to \(target)")
        let lead = target.count - rank
        let own = Tensor.strides(shape)
        var strides = [Int](repeating: 0, count: target.count)
        for i in 0..<rank where shape[i] != 1 { strides[lead + i] = own[i] }
        return Tensor.stridedCopy(pointer, strides: strides, shape: target)
    }

    /// out[i0, i1, ...] = src[i0*strides[0] + i1*strides[1] + ...]: the one loop behind permute and broadcast.
    static func stridedCopy(_ src: UnsafePointer<Float>, strides: [Int], shape: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        let n = out.count
        if n == 0 { return out }
        if shape.isEmpty { out.pointer[0] = src[0]; return out }
        let r = shape.count, inner = shape[r - 1], step = strides[r - 1]
        var index = [Int](repeating: 0, count: r)
        var offset = 0
        var y = out.pointer
        for _ in 0..<(n / inner) {
            let s = src + offset
            if step == 1 {
                y.update(from: s, count: inner)
            } else if step == 0 {
                y.update(repeating: s[0], count: inner)
            } else {
                for j in 0..<inner { y[j] = s[j * step] }
            }
            y += inner
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// This gradient summed over broadcast dimensions, back to `target` (the shape of an operand).
    func sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let lead = rank - target.count
        var axes = Array(0..<lead)
        for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 { axes.append(lead + i) }
        return sum(axes: axes, keepDims: true).reshaped(target)
    }
}

// MARK: - Arithmetic with broadcasting

// A backward captures values (shapes, flags, detached tensors), never an input itself: the graph refers to
// the inputs' nodes, so an input's memory is freed as soon as no backward needs its values.

public func + (a: Tensor, b: Tensor) -> Tensor {
    let (sa, sb) = (a.shape, b.shape)
    return Tensor.zipMap(a, b, +).record("add", [a, b]) { g in [g.sumTo(sa), g.sumTo(sb)] }
}

public func - (a: Tensor, b: Tensor) -> Tensor {
    let (sa, sb) = (a.shape, b.shape)
    return Tensor.zipMap(a, b, -).record("sub", [a, b]) { g in [g.sumTo(sa), (-g).sumTo(sb)] }
}

public func * (a: Tensor, b: Tensor) -> Tensor {
    let (ad, bd, ga, gb) = (a.detach(), b.detach(), a.requiresGrad, b.requiresGrad)
    return Tensor.zipMap(a, b, *).record("mul", [a, b]) { g in
        [ga ? (g * bd).sumTo(ad.shape) : nil, gb ? (g * ad).sumTo(bd.shape) : nil]
    }
}

public func / (a: Tensor, b: Tensor) -> Tensor {
    let (ad, bd, ga, gb) = (a.detach(), b.detach(), a.requiresGrad, b.requiresGrad)
    return Tensor.zipMap(a, b, /).record("div", [a, b]) { g in
        [ga ? (g / bd).sumTo(ad.shape) : nil,
         gb ? Tensor.zipMap(Tensor.zipMap(g, ad, *), bd) { gy, y in -gy / (y * y) }.sumTo(bd.shape) : nil]
    }
}

public prefix func - (x: Tensor) -> Tensor {
    x.map { -$0 }.record("neg", [x]) { g in [-g] }
}

// MARK: - Scalar variants

public func + (a: Tensor, s: Float) -> Tensor { a.map { $0 + s }.record("add_scalar", [a]) { g in [g] } }
public func + (s: Float, a: Tensor) -> Tensor { a + s }
public func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
public func - (s: Float, a: Tensor) -> Tensor { a.map { s - $0 }.record("rsub_scalar", [a]) { g in [-g] } }
public func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s }.record("mul_scalar", [a]) { g in [g * s] } }
public func * (s: Float, a: Tensor) -> Tensor { a * s }
public func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
public func / (s: Float, a: Tensor) -> Tensor {
    let ad = a.detach()
    return a.map { s / $0 }.record("rdiv_scalar", [a]) { g in [Tensor.zipMap(g, ad) { gy, x in -s * gy / (x * x) }] }
}

// MARK: - Unary functions

extension Tensor {
    public func exp() -> Tensor {
        let y = map { Foundation.exp($0) }
        let yd = y.detach()
        return y.record("exp", [self]) { g in [g * yd] }
    }

    public func log() -> Tensor {
        let xd = detach()
        return map { Foundation.log($0) }.record("log", [self]) { g in [g / xd] }
    }

    public func sqrt() -> Tensor {
        let y = map { $0.squareRoot() }
        let yd = y.detach()
        return y.record("sqrt", [self]) { g in [Tensor.zipMap(g, yd) { gy, r in gy * 0.5 / r }] }
    }

    /// Elementwise power with a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        let xd = detach()
        return map { Foundation.pow($0, p) }.record("pow", [self]) { g in
            [Tensor.zipMap(g, xd) { gy, x in gy * p * Foundation.pow(x, p - 1) }]
        }
    }

    public func tanh() -> Tensor {
        let y = map { Foundation.tanh($0) }
        let yd = y.detach()
        return y.record("tanh", [self]) { g in [Tensor.zipMap(g, yd) { gy, t in gy * (1 - t * t) }] }
    }

    public func sigmoid() -> Tensor {
        let y = map { 1 / (1 + Foundation.exp(-$0)) }
        let yd = y.detach()
        return y.record("sigmoid", [self]) { g in [Tensor.zipMap(g, yd) { gy, s in gy * s * (1 - s) }] }
    }

    public func relu() -> Tensor {
        let xd = detach()
        return map { Swift.max($0, 0) }.record("relu", [self]) { g in [Tensor.zipMap(g, xd) { gy, x in x > 0 ? gy : 0 }] }
    }

    /// Exact GELU, x * Phi(x) with the normal CDF through erf.
    public func gelu() -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        ak_gelu_forward(pointer, out.pointer, count)
        let xd = detach()
        return out.record("gelu", [self]) { g in
            let dx = Tensor(uninitializedShape: xd.shape)
            ak_gelu_backward(xd.pointer, g.pointer, dx.pointer, xd.count)
            return [dx]
        }
    }

    /// Values limited to [min, max]; the gradient passes where min <= x <= max.
    public func clamp(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        precondition(!(lo > hi), "clamp: min \(lo) is greater than max \(hi)")
        let xd = detach()
        return map { Swift.min(Swift.max($0, lo), hi) }.record("clamp", [self]) { g in
            [Tensor.zipMap(g, xd) { gy, x in (x >= lo && x <= hi) ? gy : 0 }]
        }
    }

    /// Elements where `mask` is nonzero (broadcast to this shape) replaced by `value`; no gradient flows
    /// to the replaced elements.
    public func maskedFill(_ mask: Tensor, _ value: Float) -> Tensor {
        let m = mask.shape == shape ? mask : mask.expanded(to: shape)
        let keep = Tensor.zipMap(self, m) { x, k in k != 0 ? value : x }
        let md = m.detach()
        return keep.record("masked_fill", [self]) { g in [Tensor.zipMap(g, md) { gy, k in k != 0 ? 0 : gy }] }
    }
}
