import XCTest
@testable import Tensors

final class AutogradTests: XCTestCase {
    func testGradientsAccumulateUntilZeroed() {
        let x = Tensor([1, 2, 3], requiresGrad: true)
        (x * x).sum().backward()
        XCTAssertEqual(x.grad!.scalars, [2, 4, 6])
        (x * 3).sum().backward()
        XCTAssertEqual(x.grad!.scalars, [5, 7, 9])
        x.zeroGrad()
        XCTAssertNil(x.grad)
        x.sum().backward()
        XCTAssertEqual(x.grad!.scalars, [1, 1, 1])
    }

    func testSharedSubexpressionAndLeafFlags() {
        let x = Tensor([2], requiresGrad: true)
        let y = x * x          // used twice below
        let z = (y + y * x).sum()
        XCTAssertTrue(x.isLeaf)
        XCTAssertFalse(y.isLeaf)
        XCTAssertEqual(y.operationName, "mul")
        z.backward()
        // z = x^2 + x^3, dz/dx = 2x + 3x^2 = 16
        XCTAssertEqual(x.grad!.item, 16)
        XCTAssertNil(y.grad, "non-leaf tensors keep no gradient")
    }

    func testNoGradRecordsNothing() {
        let w = Tensor([1, 2], requiresGrad: true)
        let y = withNoGrad { (w * 2).exp().sum() }
        XCTAssertFalse(y.requiresGrad)
        XCTAssertEqual(y.operationName, "")
        XCTAssertTrue(y.isLeaf)
        XCTAssertTrue(GradMode.isEnabled, "the scope ends with the closure")
        let nested = withNoGrad { withGrad { w * 2 } }
        XCTAssertTrue(nested.requiresGrad)
        // Constants do not require grad, and neither do results of them.
        XCTAssertFalse((Tensor([1]) + Tensor([2])).requiresGrad)
    }

    func testDetachStopsGradient() {
        let x = Tensor([3], requiresGrad: true)
        let y = x * x.detach()
        y.sum().backward()
        XCTAssertEqual(x.grad!.item, 3)
        XCTAssertFalse(x.detach().requiresGrad)
    }

    func testGraphIsReleasedAfterBackward() {
        weak var intermediate: Tensor?
        let x = Tensor.ones([16], requiresGrad: true)
        do {
            let y = (x * 2).exp()
            intermediate = y
            let loss = y.sum()
            loss.backward()
            XCTAssertTrue(y.node!.isReleased, "the graph is released by backward")
        }
        XCTAssertNil(intermediate, "nothing keeps the intermediate alive once the step is over")
        XCTAssertNotNil(x.grad)
    }

    func testGraphKeepsOnlyWhatBackwardNeeds() {
        // The graph refers to nodes, not to intermediate tensors: an intermediate that no backward saved is
        // freed before backward runs.
        let x = Tensor.ones([16], requiresGrad: true)
        weak var intermediate: Tensor?
        let loss: Tensor
        do {
            let t = x * 2          // its backward needs nothing saved
            intermediate = t
            loss = t.sum()
        }
        XCTAssertNil(intermediate)
        loss.backward()
        XCTAssertEqual(x.grad!.scalars, [Float](repeating: 2, count: 16))
    }

    func testBackwardsKeepNoInputTensor() {
        // A backward keeps values (shapes, flags, detached tensors), never an input tensor itself; one that reads
        // no input values keeps no input memory either. Checked before backward runs, over random shapes.
        final class Weak { weak var object: AnyObject?; init(_ o: AnyObject) { object = o } }
        // (name, whether the backward reads its inputs' values, the op on intermediates a and c [R, C], b [C])
        let ops: [(String, Bool, (Tensor, Tensor, Tensor) -> Tensor)] = [
            ("add", false, { a, _, b in a + b }),
            ("sub", false, { a, _, b in b - a }),
            ("mul", true, { a, _, b in a * b }),
            ("div", true, { a, c, _ in a / c }),
            ("index_add", false, { a, c, _ in
                a.indexAdd(axis: 0, IntTensor((0..<a.shape[0]).map { Int32(($0 * 7 + 3) % a.shape[0]) }), c) }),
            ("index_select", false, { a, _, _ in a.indexSelect(axis: 1, IntTensor([0, 2, 2, 1])) }),
            ("matmul", true, { a, c, _ in matmul(a, c, transposeB: true) }),
            ("grouped_matmul", true, { a, c, _ in groupedMatmul(a, [c], groupOffsets: [0, a.shape[0]]) }),
            ("rms_norm", true, { a, _, b in a.rmsNorm(weight: b, eps: 1e-6) }),
            ("max", true, { a, _, _ in a.max(axis: 1) }),
            ("topk", false, { a, _, _ in a.topk(2).values }),
            ("sum", false, { a, _, _ in a.sum(axis: 0) }),
            ("slice", false, { a, _, _ in a.slice(axis: 1, 1..<3) }),
            ("permute", false, { a, _, _ in a.transposed() }),
            ("concat", false, { a, c, _ in concat([a, c], axis: 1) }),
            ("exp", false, { a, _, _ in a.exp() }),            // keeps its output, not its input
            ("softmax", false, { a, _, _ in a.softmax() }),
            ("gelu", true, { a, _, _ in a.gelu() }),
        ]
        var g = SeededGenerator(seed: 17)
        for (name, readsInputs, op) in ops {
            for trial in 0..<4 {
                let (rows, cols) = (2 + g.nextInt(below: 30), 3 + g.nextInt(below: 60))
                let leaves = [randn([rows, cols], seed: g.next()), randn([rows, cols], seed: g.next()), randn([cols], seed: g.next())]
                leaves.forEach { $0.requiresGrad = true }
                var inputs: [Weak] = [], storages: [Weak] = []
                let loss: Tensor
                do {
                    let (a, c, b) = (leaves[0] * 1.5, leaves[1] * 0.25 + 2, leaves[2] * 0.5 + 1)
                    inputs = [a, c, b].map(Weak.init)
                    storages = [a, c, b].map { Weak($0.storage) }
                    loss = op(a, c, b).sum()
                }
                let tag = "\(name) [\(rows), \(cols)] trial \(trial)"
                XCTAssertTrue(inputs.allSatisfy { $0.object == nil }, "\(tag): the graph keeps an input tensor")
                if !readsInputs {
                    XCTAssertTrue(storages.allSatisfy { $0.object == nil }, "\(tag): the graph keeps input memory it never reads")
                }
                loss.backward()
                XCTAssertNotNil(leaves[0].grad, tag)
            }
        }
    }

    func testNoGrowthAcrossSteps() {
        // Many steps of a small model: the number of live graph nodes must not grow.
        let w = randn([8, 8], seed: 1)
        w.requiresGrad = true
        weak var lastOutput: Tensor?
        for step in 0..<50 {
            let x = randn([4, 8], seed: UInt64(step))
            let out = matmul(x, w, transposeB: true).gelu().softmax()
            lastOutput = out
            out.sum().backward()
            w.zeroGrad()
        }
        XCTAssertNil(lastOutput)
    }

    func testSeededRandomIsReproducible() {
        // The first outputs of xoshiro256** seeded through SplitMix64 with 12345, as the published
        // algorithms define them (computed independently of this package).
        var g = SeededGenerator(seed: 12345)
        XCTAssertEqual([g.next(), g.next(), g.next(), g.next()],
                       [13720838825685603483, 2398916695208396998, 17770384849984869256, 891717726879801395])
        var a = SeededGenerator(seed: 7), b = SeededGenerator(seed: 7), c = SeededGenerator(seed: 8)
        let ta = Tensor.normal([1000], generator: &a), tb = Tensor.normal([1000], generator: &b)
        let tc = Tensor.normal([1000], generator: &c)
        XCTAssertEqual(ta.scalars, tb.scalars)
        XCTAssertNotEqual(ta.scalars, tc.scalars)
        var s = SeededGenerator(seed: 3)
        let n = Tensor.normal([20000], mean: 1, std: 2, generator: &s)
        XCTAssertEqual(n.mean().item, 1, accuracy: 0.05)
        XCTAssertEqual(((n - 1) * (n - 1)).mean().sqrt().item, 2, accuracy: 0.05)
        let u = Tensor.uniform([20000], low: -1, high: 3, generator: &s)
        XCTAssertGreaterThanOrEqual(u.scalars.min()!, -1)
        XCTAssertLessThan(u.scalars.max()!, 3)
        XCTAssertEqual(u.mean().item, 1, accuracy: 0.05)
    }

    func testCreation() {
        XCTAssertEqual(Tensor.arange(0, 5).scalars, [0, 1, 2, 3, 4])
        XCTAssertEqual(Tensor.arange(1, 2, step: 0.25).scalars, [1, 1.25, 1.5, 1.75])
        XCTAssertEqual(Tensor.full([2, 2], 7).scalars, [7, 7, 7, 7])
        XCTAssertEqual(Tensor.zeros([0, 3]).count, 0)
        XCTAssertEqual(Tensor(scalar: 4).shape, [])
        XCTAssertEqual(Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])[1, 2], 6)
    }

    func testGradientCheckerCatchesAWrongBackward() {
        // An op whose backward is off by a factor of 2 must be reported.
        func wrongSquare(_ x: Tensor) -> Tensor {
            let xd = x.detach()
            return Tensor.zipMap(x, x, *).record("wrong_square", [x]) { g in [g * xd] }
        }
        let x = randn([5], seed: 1)
        XCTAssertEqual(gradientProblems([x]) { wrongSquare($0[0]) }.count, 1)
        XCTAssertEqual(gradientProblems([x]) { $0[0] * $0[0] }, [])
    }

    func testMisuseIsNamed() {
        XCTAssertThrowsError(try Shape.broadcast([2, 3], [4])) { e in
            XCTAssertEqual("\(e)", "shapes [2, 3] and [4] cannot be broadcast together (dimension 1: 3 vs 4)")
        }
        XCTAssertThrowsError(try MatmulPlan([2, 3], [4, 5], false, false)) { e in
            XCTAssertTrue("\(e)".contains("[2, 3] @ [4, 5]"), "\(e)")
        }
        XCTAssertThrowsError(try MatmulPlan([2, 2, 3], [3, 3, 5], false, false)) { e in
            XCTAssertTrue("\(e)".contains("batch dimensions differ"), "\(e)")
        }
        XCTAssertThrowsError(try checkIndices(IntTensor([1, 7, 2]), size: 5, "embedding")) { e in
            XCTAssertEqual("\(e)", "embedding: index 7 at position 1 is out of range [0, 5)")
        }
        XCTAssertThrowsError(try Shape.resolving([4, -1], count: 10)) { e in
            XCTAssertTrue("\(e)".contains("[4, -1]"), "\(e)")
        }
        XCTAssertThrowsError(try Shape.axis(3, rank: 2))
    }
}
