import XCTest
@testable import Tensors

/// Finite-difference checks of every differentiable operation.
final class OpGradientTests: XCTestCase {
    func testBroadcastArithmetic() {
        let pairs: [([Int], [Int])] = [([2, 3], [2, 3]), ([2, 3], [3]), ([2, 1, 4], [3, 1]), ([], [2, 3]),
                                        ([4], [1]), ([3, 1], [1, 5]), ([2, 3, 4], [2, 1, 4])]
        for (i, (sa, sb)) in pairs.enumerated() {
            let a = randn(sa, seed: UInt64(10 + i)), b = randu(sb, seed: UInt64(20 + i), low: 0.5, high: 2)
            checkGradients([a, b], "add \(sa) \(sb)") { $0[0] + $0[1] }
            checkGradients([a, b], "sub \(sa) \(sb)") { $0[0] - $0[1] }
            checkGradients([a, b], "mul \(sa) \(sb)") { $0[0] * $0[1] }
            checkGradients([a, b], "div \(sa) \(sb)") { $0[0] / $0[1] }
            checkGradients([b, a], "div reversed \(sb) \(sa)") { $0[1] / $0[0] }
        }
    }

    func testScalarVariants() {
        let x = randu([3, 4], seed: 1, low: 0.5, high: 2)
        checkGradients([x], "x + s") { $0[0] + 2 }
        checkGradients([x], "s - x") { 3 - $0[0] }
        checkGradients([x], "x * s") { $0[0] * -1.5 }
        checkGradients([x], "x / s") { $0[0] / 4 }
        checkGradients([x], "s / x") { 2 / $0[0] }
        checkGradients([x], "-x") { -$0[0] }
    }

    func testUnaryFunctions() {
        let pos = randu([2, 5], seed: 2, low: 0.5, high: 2)
        let any = randn([2, 5], seed: 3)
        checkGradients([any], "exp") { $0[0].exp() }
        checkGradients([pos], "log") { $0[0].log() }
        checkGradients([pos], "sqrt") { $0[0].sqrt() }
        checkGradients([pos], "pow 2.5") { $0[0].pow(2.5) }
        checkGradients([any], "pow 3") { $0[0].pow(3) }
        checkGradients([any], "tanh") { $0[0].tanh() }
        checkGradients([any], "sigmoid") { $0[0].sigmoid() }
        checkGradients([any], "gelu") { $0[0].gelu() }
        let away = Tensor([-1.5, -0.7, -0.2, 0.3, 0.8, 1.6], shape: [2, 3])
        checkGradients([away], "relu") { $0[0].relu() }
        checkGradients([away], "clamp") { $0[0].clamp(min: -0.5, max: 1) }
        let mask = Tensor([1, 0, 0], shape: [3])
        checkGradients([away], "maskedFill") { $0[0].maskedFill(mask, -3) }
    }

    func testMatmulEveryLayout() {
        let (m, n, k) = (3, 4, 5)
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randn(ta ? [k, m] : [m, k], seed: 4), b = randn(tb ? [n, k] : [k, n], seed: 5)
                checkGradients([a, b], "2-D ta \(ta) tb \(tb)") { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                let ba = randn([2] + (ta ? [k, m] : [m, k]), seed: 6), bb = randn([2] + (tb ? [n, k] : [k, n]), seed: 7)
                checkGradients([ba, bb], "batched ta \(ta) tb \(tb)") { matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
                checkGradients([ba, b], "batched A, shared B, ta \(ta) tb \(tb)") {
                    matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
                checkGradients([a, bb], "shared A, batched B, ta \(ta) tb \(tb)") {
                    matmul($0[0], $0[1], transposeA: ta, transposeB: tb)
                }
            }
        }
        let x = randn([2, 3, k], seed: 8), w = randn([n, k], seed: 9)
        checkGradients([x, w], "linear [2,3,5] @ [4,5]^T") { matmul($0[0], $0[1], transposeB: true) }
    }

    func testMatmulValues() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = Tensor([7, 8, 9, 10, 11, 12], shape: [3, 2])
        XCTAssertEqual(matmul(a, b).scalars, [58, 64, 139, 154])
        XCTAssertEqual(matmul(a, a, transposeB: true).scalars, [14, 32, 32, 77])
        XCTAssertEqual(matmul(a, a, transposeA: true).shape, [3, 3])
        XCTAssertEqual(matmul(a, a, transposeA: true).scalars, [17, 22, 27, 22, 29, 36, 27, 36, 45])
    }

    func testGroupedMatmul() {
        let x = randn([7, 3], seed: 30)
        let ws = (0..<3).map { randn([4, 3], seed: UInt64(31 + $0)) }
        // Groups of 2, 0 and 5 rows: the empty group's weight gets no gradient.
        let offsets = [0, 2, 2, 7]
        for w in ws { w.requiresGrad = true }
        let y = groupedMatmul(x, ws, groupOffsets: offsets)
        let expected = concat([matmul(x.slice(axis: 0, 0..<2), ws[0], transposeB: true),
                               matmul(x.slice(axis: 0, 2..<7), ws[2], transposeB: true)], axis: 0)
        XCTAssertLessThan(maxAbsDiff(y, expected), 1e-5)
        y.sum().backward()
        XCTAssertNil(ws[1].grad)
        checkGradients([x, ws[0], ws[2]], "grouped matmul") { t in
            groupedMatmul(t[0], [t[1], ws[1], t[2]], groupOffsets: offsets)
        }
        let geluFirst = groupedMatmul(x, ws, groupOffsets: offsets, geluInput: true)
        XCTAssertLessThan(maxAbsDiff(geluFirst, groupedMatmul(x.gelu(), ws, groupOffsets: offsets)), 1e-6)
        checkGradients([x, ws[0], ws[2]], "grouped matmul of gelu") { t in
            groupedMatmul(t[0], [t[1], ws[1], t[2]], groupOffsets: offsets, geluInput: true)
        }
    }

    func testReductions() {
        let x = randn([2, 3, 4], seed: 11)
        for axes: [Int]? in [nil, [0], [1], [2], [-1], [0, 2], [1, 2]] {
            for keep in [false, true] {
                checkGradients([x], "sum \(String(describing: axes)) keep \(keep)") { $0[0].sum(axes: axes, keepDims: keep) }
                checkGradients([x], "mean \(String(describing: axes)) keep \(keep)") { $0[0].mean(axes: axes, keepDims: keep) }
                checkGradients([x], "max \(String(describing: axes)) keep \(keep)") { $0[0].max(axes: axes, keepDims: keep) }
            }
        }
        checkGradients([x], "norm") { $0[0].norm() }
        checkGradients([x], "norm axis") { $0[0].norm(axes: [-1], keepDims: true) }
        checkGradients([x], "normalized") { $0[0].normalized(axis: -1) }
    }

    func testReductionValues() {
        let x = Tensor([1, 5, 3, 4, 2, 6], shape: [2, 3])
        XCTAssertEqual(x.sum().item, 21)
        XCTAssertEqual(x.sum(axis: 0).scalars, [5, 7, 9])
        XCTAssertEqual(x.sum(axis: 1, keepDims: true).shape, [2, 1])
        XCTAssertEqual(x.max(axis: 1).scalars, [5, 6])
        XCTAssertEqual(x.mean(axis: 0).scalars, [2.5, 3.5, 4.5])
        XCTAssertEqual(Tensor([3, 4]).norm().item, 5)
        // Ties share the gradient.
        let t = Tensor([2, 2, 1], requiresGrad: true)
        t.max().backward()
        XCTAssertEqual(t.grad!.scalars, [0.5, 0.5, 0])
    }

    func testShapeOps() {
        let x = randn([2, 3, 4], seed: 12)
        checkGradients([x], "reshape") { $0[0].reshaped([4, -1]) }
        checkGradients([x], "permute") { $0[0].permuted([2, 0, 1]) }
        checkGradients([x], "transpose") { $0[0].transposed(0, 2) }
        checkGradients([x], "slice") { $0[0].slice(axis: 1, 1..<3) }
        checkGradients([x], "split") { t in let p = t[0].split([1, 3], axis: -1); return p[0] * 2 + p[1].sum(axis: -1, keepDims: true) }
        checkGradients([x], "chunk") { t in let p = t[0].chunked(2, axis: 1); return concat([p[1], p[0]], axis: 1) }
        checkGradients([x], "unsqueeze/squeeze") { $0[0].unsqueezed(1).squeezed(1) }
        let y = randn([2, 1, 4], seed: 13)
        checkGradients([x, y], "concat") { concat([$0[0], $0[1]], axis: 1) }
        checkGradients([y], "broadcast") { $0[0].broadcast(to: [3, 2, 5, 4]) }
        checkGradients([x, x.copy()], "stack") { stack([$0[0], $0[1]], axis: 1) }
    }

    func testShapeValues() {
        let x = Tensor((0..<6).map(Float.init), shape: [2, 3])
        XCTAssertEqual(x.transposed().scalars, [0, 3, 1, 4, 2, 5])
        XCTAssertEqual(x.slice(axis: 1, 1..<3).scalars, [1, 2, 4, 5])
        XCTAssertEqual(concat([x, x], axis: 0).shape, [4, 3])
        XCTAssertEqual(concat([x, x], axis: 1).scalars, [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        XCTAssertEqual(x.chunked(2, axis: 1).map(\.shape), [[2, 2], [2, 1]])
        XCTAssertEqual(x.reshaped([3, -1]).shape, [3, 2])
    }

    func testIndexingOps() {
        let w = randn([6, 3], seed: 14)
        let ids = IntTensor([1, 0, 4, 1, 0, 5], shape: [2, 3])
        checkGradients([w], "embedding") { embedding($0[0], ids) }
        // The padding row receives no gradient.
        w.requiresGrad = true
        w.grad = nil
        embedding(w, ids, paddingIndex: 0).sum().backward()
        XCTAssertEqual(Array(w.grad!.scalars[0..<3]), [0, 0, 0])
        XCTAssertEqual(Array(w.grad!.scalars[3..<6]), [2, 2, 2])

        let x = randn([4, 3, 2], seed: 15)
        let idx = IntTensor([2, 0, 2, 3])
        checkGradients([x], "indexSelect axis 0") { $0[0].indexSelect(axis: 0, idx) }
        checkGradients([x], "indexSelect axis 1") { $0[0].indexSelect(axis: 1, IntTensor([1, 1, 0])) }
        let src = randn([4, 3, 2], seed: 16)
        checkGradients([x, src], "indexAdd") { $0[0].indexAdd(axis: 0, idx, $0[1]) }
        let gidx = IntTensor([0, 2, 1, 1, 0, 0, 2, 1], shape: [4, 2, 1]).reshaped([4, 2, 1])
        let g3 = randn([4, 3, 1], seed: 17)
        checkGradients([g3], "gather axis 1") { $0[0].gather(axis: 1, gidx) }
        let scores = Tensor([0.1, 0.9, 0.4, 0.3, 0.8, -0.2, 0.05, 0.6], shape: [2, 4])
        checkGradients([scores], "topk values") { $0[0].topk(2).values }
    }

    func testIndexingValues() {
        let x = Tensor([3, 1, 4, 1, 5, 9, 2, 6], shape: [2, 4])
        let (v, i) = x.topk(2)
        XCTAssertEqual(v.scalars, [4, 3, 9, 6])
        XCTAssertEqual(i.scalars, [2, 0, 1, 3])
        XCTAssertEqual(x.topk(1).indices.scalars, [2, 1])
        // Ties: the lower index first.
        XCTAssertEqual(Tensor([1, 2, 2, 0]).topk(2).indices.scalars, [1, 2])
        XCTAssertEqual(oneHotCounts(IntTensor([0, 2, 2, 3, 2]), numClasses: 4).scalars, [1, 0, 3, 1])
        let added = Tensor.zeros([3]).indexAdd(axis: 0, IntTensor([1, 1, 2]), Tensor([1, 2, 3]))
        XCTAssertEqual(added.scalars, [0, 3, 3])
        let g = x.gather(axis: 1, IntTensor([3, 0, 1, 1], shape: [2, 2]))
        XCTAssertEqual(g.scalars, [1, 3, 9, 9])
    }

    func testNormalizationAndSoftmax() {
        let x = randn([3, 5], seed: 18, scale: 2)
        checkGradients([x], "softmax") { $0[0].softmax() }
        checkGradients([x], "logSoftmax") { $0[0].logSoftmax() }
        let w = randu([5], seed: 19, low: 0.5, high: 1.5)
        checkGradients([x, w], "rmsNorm") { $0[0].rmsNorm(weight: $0[1], eps: 1e-6) }
        let targets = IntTensor([Int32(1), -100, 4])
        checkGradients([x], "crossEntropy with ignored row") { crossEntropy($0[0], targets) }
    }

    func testDropout() {
        let x = randn([4, 8], seed: 20)
        checkGradients([x], "dropout") { t in
            var g = SeededGenerator(seed: 5)
            return t[0].dropout(0.3, training: true, generator: &g)
        }
        var g = SeededGenerator(seed: 1)
        XCTAssertTrue(x.dropout(0.5, training: false, generator: &g) === x, "eval mode leaves the tensor alone")
        let big = Tensor.ones([10000]).dropout(0.25, training: true, generator: &g)
        let kept = big.scalars.filter { $0 != 0 }
        XCTAssertEqual(Double(kept.count) / 10000, 0.75, accuracy: 0.02)
        XCTAssertEqual(kept[0], 1 / 0.75, accuracy: 1e-6)
    }

    func testRoPEAndAttention() {
        let x = randn([2, 3, 2, 4], seed: 21)
        checkGradients([x], "rope") { rope($0[0], base: 10000) }
        checkGradients([x], "rope offset") { rope($0[0], base: 100, positionOffset: 5) }

        let (b, h, t, d) = (2, 2, 5, 4)
        let q = randn([b, h, t, d], seed: 22), k = randn([b, h, t, d], seed: 23), v = randn([b, h, t, d], seed: 24)
        let mask = Tensor([1, 1, 1, 1, 1, 1, 1, 1, 0, 0], shape: [b, t])
        for causal in [false, true] {
            checkGradients([q, k, v], "attention causal \(causal)") {
                scaledDotProductAttention($0[0], $0[1], $0[2], keyMask: mask, causal: causal)
            }
        }
        checkGradients([q, k, v], "attention with dropout") {
            scaledDotProductAttention($0[0], $0[1], $0[2], causal: true, dropout: 0.2, seed: 7)
        }
        let q1 = randn([b, h, 2, d], seed: 25)
        checkGradients([q1, k, v], "attention Tq < Tk causal") {
            scaledDotProductAttention($0[0], $0[1], $0[2], keyMask: mask, causal: true)
        }
    }
}
