import CKernels
import XCTest
@testable import Tensors

final class NNOpTests: XCTestCase {
    /// The unfused composition of attention from basic ops, as SPEC.md states it.
    func unfusedAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, mask: Tensor?, causal: Bool) -> Tensor {
        let (b, tq, tk, d) = (q.shape[0], q.shape[2], k.shape[2], q.shape[3])
        var s = matmul(q, k, transposeB: true) / Float(d).squareRoot()       // [B, nH, Tq, Tk]
        if let mask { s = s + ((1 - mask) * -10000).reshaped([b, 1, 1, tk]) }
        if causal {
            var future = [Float](repeating: 0, count: tq * tk)
            for i in 0..<tq { for j in 0..<tk where j > i + (tk - tq) { future[i * tk + j] = 1 } }
            s = s.maskedFill(Tensor(future, shape: [tq, tk]), -.infinity)
        }
        return matmul(s.softmax(), v)
    }

    /// Elementwise ops split large tensors across the kernel threads: the same bits with one thread or several,
    /// in each broadcasting case (same shape, scalar, a row repeated along the leading dimensions).
    func testElementwiseThreadsAgree() {
        let a = randn([97, 1031], seed: 5), b = randn([97, 1031], seed: 6), row = randn([1031], seed: 7)
        let one = Tensor([2.5], shape: [1])
        func run() -> [[UInt32]] {
            [a + b, a * b, a / b, a - row, row * a, a * one, one - a, a.map { $0 * 3 }].map { $0.scalars.map(\.bitPattern) }
        }
        let saved = ak_get_num_threads()
        defer { ak_set_num_threads(saved) }
        ak_set_num_threads(1)
        let single = run()
        ak_set_num_threads(3)
        XCTAssertEqual(run(), single)
    }

    /// A key/value buffer that starts small and doubles gives the bits of one allocated for its whole capacity up
    /// front, over seeded random head shapes and chunks of positions (causal and not), and its storage never passes
    /// twice what was filled (nor the capacity).
    func testGrowingKeyValueBufferMatchesPreallocated() {
        var g = SeededGenerator(seed: 41)
        for trial in 0..<12 {
            let (b, h, d) = (1 + g.nextInt(below: 2), 1 + g.nextInt(below: 3), 2 * (1 + g.nextInt(below: 4)))
            let capacity = 20 + g.nextInt(below: 120), causal = g.nextInt(below: 2) == 0
            let growing = KeyValueBuffer(batch: b, heads: h, headDim: d, capacity: capacity, initialPositions: 1 + g.nextInt(below: 8))
            let preallocated = KeyValueBuffer(batch: b, heads: h, headDim: d, capacity: capacity, initialPositions: capacity)
            while growing.count < capacity {
                let t = min(1 + g.nextInt(below: growing.count == 0 ? 12 : 3), capacity - growing.count)
                let qkv = randn([3, b, h, t, d], seed: g.next())
                XCTAssertEqual(growing.attend(qkv, causal: causal).scalars, preallocated.attend(qkv, causal: causal).scalars,
                               "trial \(trial) at \(growing.count)")
                XCTAssertLessThanOrEqual(growing.allocated, min(capacity, max(2 * growing.count, 8)), "trial \(trial)")
            }
            XCTAssertEqual(growing.allocated, capacity)
        }
        let huge = KeyValueBuffer(batch: 1, heads: 2, headDim: 4, capacity: 1_000_000_000)
        _ = huge.attend(randn([3, 1, 2, 5, 4], seed: 1), causal: true)
        XCTAssertEqual(huge.allocated, 64, "a buffer allocates as positions come, not its whole capacity")
    }

    func testFusedAttentionMatchesComposition() {
        for (t, tq, d, causal, masked) in [(13, 13, 8, false, false), (13, 13, 8, true, true), (70, 70, 16, true, false),
                                           (70, 3, 16, true, true), (130, 130, 64, false, true), (9, 1, 8, true, false)] {
            let (b, h) = (2, 3)
            let q = randn([b, h, tq, d], seed: 1), k = randn([b, h, t, d], seed: 2), v = randn([b, h, t, d], seed: 3)
            var m = [Float](repeating: 1, count: b * t)
            for j in (t - t / 3)..<t { m[t + j] = 0 }       // the second sequence is right-padded
            let mask = masked ? Tensor(m, shape: [b, t]) : nil
            let r = randn([b, h, tq, d], seed: 4)
            for x in [q, k, v] { x.requiresGrad = true }
            let fused = scaledDotProductAttention(q, k, v, keyMask: mask, causal: causal)
            (fused * r).sum().backward()
            let grads = [q, k, v].map { $0.grad! }
            for x in [q, k, v] { x.grad = nil }
            let plain = unfusedAttention(q, k, v, mask: mask, causal: causal)
            (plain * r).sum().backward()
            let label = "T \(t) Tq \(tq) hd \(d) causal \(causal) mask \(masked)"
            XCTAssertLessThan(maxAbsDiff(fused, plain), 2e-5, label)
            for (name, x, g) in zip3(["dq", "dk", "dv"], [q, k, v], grads) {
                XCTAssertLessThan(maxAbsDiff(g, x.grad!), 5e-5, "\(label) \(name)")
            }
        }
    }

    func testSplitHeadsMatchesComposition() {
        let (b, t, h, d) = (2, 5, 3, 4)
        let qkv = randn([b, t, h * 3 * d], seed: 40)
        for base: Float? in [nil, 10000] {
            let packed = splitHeads(qkv, heads: h, ropeBase: base, positionOffset: 2)
            var parts = qkv.reshaped([b, t, h, 3 * d]).split([d, d, d], axis: -1)
            if let base { parts[0] = rope(parts[0], base: base, positionOffset: 2); parts[1] = rope(parts[1], base: base, positionOffset: 2) }
            let expected = stack(parts.map { $0.permuted([0, 2, 1, 3]) }, axis: 0)
            XCTAssertLessThan(maxAbsDiff(packed, expected), 1e-6)
            checkGradients([qkv], "splitHeads rope \(String(describing: base))") { splitHeads($0[0], heads: h, ropeBase: base) }
        }
        let x = randn([b, h, t, d], seed: 41)
        XCTAssertEqual(mergeHeads(x).scalars, x.permuted([0, 2, 1, 3]).reshaped([b, t, h * d]).scalars)
    }

    func testPackedAttentionMatchesSeparate() {
        let qkv = randn([3, 2, 2, 6, 4], seed: 42)
        let mask = Tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], shape: [2, 6])
        let parts = qkv.split([1, 1, 1], axis: 0).map { $0.squeezed(0) }
        let a = scaledDotProductAttention(packed: qkv, keyMask: mask, causal: true)
        let b = scaledDotProductAttention(parts[0], parts[1], parts[2], keyMask: mask, causal: true)
        XCTAssertLessThan(maxAbsDiff(a, b), 1e-6)
        checkGradients([qkv], "packed attention") { scaledDotProductAttention(packed: $0[0], keyMask: mask, causal: true, dropout: 0.1, seed: 3) }
    }

    func testSoftmaxAndCrossEntropyStableAtLargeLogits() {
        let x = Tensor([1e4, -1e4, 0, 1e4 - 1, 2e4, 2e4], shape: [2, 3])
        let p = x.softmax()
        XCTAssertEqual(p.scalars[0], 1, accuracy: 1e-6)
        XCTAssertEqual(p.scalars[3], 0, accuracy: 1e-6)
        XCTAssertEqual(p.scalars[4], 0.5, accuracy: 1e-6)
        XCTAssertTrue(p.scalars.allSatisfy { $0.isFinite })
        let lp = x.logSoftmax()
        XCTAssertEqual(lp.scalars[1], -2e4, accuracy: 1)
        XCTAssertTrue(lp.scalars.allSatisfy { $0.isFinite })
        let logits = Tensor([1e4, -1e4, 0, 0, 1e4, 1e4], shape: [2, 3], requiresGrad: true)
        let loss = crossEntropy(logits, IntTensor([Int32(1), 2]))
        // Row 0: -log softmax = 2e4; row 1: log 2. Mean over both.
        XCTAssertEqual(loss.item, (2e4 + log(2)) / 2, accuracy: 1)
        loss.backward()
        XCTAssertTrue(logits.grad!.scalars.allSatisfy { $0.isFinite })
        XCTAssertEqual(logits.grad!.scalars[1], -0.5, accuracy: 1e-6)
    }

    func testCrossEntropyIgnoresAndAverages() {
        let logits = randn([4, 6], seed: 9)
        let targets = IntTensor([Int32(2), -100, 5, -100])
        let loss = crossEntropy(logits, targets)
        let lp = logits.logSoftmax()
        let expected = -(lp[0, 2] + lp[2, 5]) / 2
        XCTAssertEqual(loss.item, expected, accuracy: 1e-5)
        XCTAssertEqual(crossEntropy(logits, IntTensor([Int32](repeating: -100, count: 4))).item, 0)
    }

    func testRMSNormValues() {
        let x = Tensor([3, 4], shape: [1, 2])
        let y = x.rmsNorm(weight: Tensor([1, 2]), eps: 0)
        let rms = Float(12.5).squareRoot()
        XCTAssertEqual(y.scalars[0], 3 / rms, accuracy: 1e-6)
        XCTAssertEqual(y.scalars[1], 8 / rms, accuracy: 1e-6)
    }

    func testRoPERotatesByPosition() {
        // One head, hd = 2: the pair at position t rotates by angle t.
        let x = Tensor([1, 0, 1, 0, 1, 0], shape: [1, 3, 1, 2])
        let y = rope(x, base: 10000)
        for t in 0..<3 {
            XCTAssertEqual(y.scalars[2 * t], cos(Float(t)), accuracy: 1e-6)
            XCTAssertEqual(y.scalars[2 * t + 1], sin(Float(t)), accuracy: 1e-6)
        }
        // Attention scores depend only on relative positions.
        let q = randn([1, 4, 1, 8], seed: 3)
        let rq = rope(q, base: 10000), shifted = rope(q, base: 10000, positionOffset: 7)
        let s1 = matmul(rq.reshaped([4, 8]), rq.reshaped([4, 8]), transposeB: true)
        let s2 = matmul(shifted.reshaped([4, 8]), shifted.reshaped([4, 8]), transposeB: true)
        XCTAssertLessThan(maxAbsDiff(s1, s2), 1e-4)
    }
}

func zip3<A, B, C>(_ a: [A], _ b: [B], _ c: [C]) -> [(A, B, C)] {
    (0..<min(a.count, b.count, c.count)).map { (a[$0], b[$0], c[$0]) }
}
