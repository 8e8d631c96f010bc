import XCTest
import Optimizers
import Tensors

final class OptimizerStateTests: XCTestCase {
    let shapes: [[Int]] = [[3, 5], [17], [2, 2, 2]]

    func makeParameters(seed: UInt64) -> [Tensor] {
        var gen = SeededGenerator(seed: seed)
        return shapes.map { Tensor.normal($0, generator: &gen, requiresGrad: true) }
    }

    /// Steps `optimizer` from step `from` to `to`; parameter 1 has no gradient on step 2 (so per-parameter
    /// step counts differ).
    func train(_ optimizer: Optimizer, from: Int, to: Int) {
        for s in from..<to {
            for (i, p) in optimizer.parameters.enumerated() {
                p.grad = (s == 2 && i == 1) ? nil : syntheticGradient(p.shape, step: s, index: i, scale: 0.7)
            }
            optimizer.step()
        }
    }

    /// Uninterrupted run versus save at step 3 → new optimizer (with other hyper-parameters, which the load
    /// must restore) on copied parameters → load → continue; the parameters must agree to the bit.
    func checkResume(_ make: ([Tensor]) -> Optimizer, _ makeOther: ([Tensor]) -> Optimizer, _ name: String) throws {
        let straight = make(makeParameters(seed: 5))
        train(straight, from: 0, to: 7)

        let first = make(makeParameters(seed: 5))
        train(first, from: 0, to: 3)
        let saved = first.stateDict()
        let copies = first.parameters.map { t -> Tensor in
            let c = t.copy()
            c.requiresGrad = true
            return c
        }
        let second = makeOther(copies)
        try second.loadStateDict(saved)
        XCTAssertEqual(second.learningRate, first.learningRate, name)
        train(second, from: 3, to: 7)
        for (a, b) in zip(straight.parameters, second.parameters) {
            XCTAssertEqual(a.scalars, b.scalars, "\(name): resumed run differs")
        }
        // The saved state is a snapshot: training on does not change it.
        train(first, from: 3, to: 4)
        let again = makeOther(copies.map { $0.copy() })
        try again.loadStateDict(saved)
        XCTAssertEqual(again.stateDict().tensors.mapValues(\.scalars), saved.tensors.mapValues(\.scalars), name)
        XCTAssertEqual(again.stateDict().metadata, saved.metadata, name)
    }

    func testChillAdamResumesBitIdentically() throws {
        try checkResume({ ChillAdam($0, weightDecay: 0.01) }, { ChillAdam($0, maxLR: 0.5, learningRate: 0.3) },
                        "ChillAdam")
    }

    func testAdamWResumesBitIdentically() throws {
        try checkResume({ AdamW($0, learningRate: 0.01) }, { AdamW($0, learningRate: 0.5, weightDecay: 0) }, "AdamW")
    }

    func testSGDResumesBitIdentically() throws {
        try checkResume({ SGD($0, learningRate: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true) },
                        { SGD($0, learningRate: 0.5, momentum: 0.5) }, "SGD")
        try checkResume({ SGD($0, learningRate: 0.05, momentum: 0.9, dampening: 0.2) },
                        { SGD($0, learningRate: 0.5) }, "SGD without nesterov")
    }

    func testStateLayout() {
        let params = makeParameters(seed: 1)
        let adam = ChillAdam(params)
        train(adam, from: 0, to: 3)
        let state = adam.stateDict()
        XCTAssertEqual(Set(state.tensors.keys),
                       ["0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq", "2.exp_avg", "2.exp_avg_sq"])
        XCTAssertEqual(state.metadata["optimizer"], "ChillAdam")
        XCTAssertEqual(state.metadata["parameter_count"], "3")
        XCTAssertEqual(state.metadata["0.step"], "3")
        XCTAssertEqual(state.metadata["1.step"], "2")
        XCTAssertEqual(state.metadata["eps"], "0.001")
        XCTAssertEqual(state.tensors["2.exp_avg"]?.shape, [2, 2, 2])

        let sgd = SGD(makeParameters(seed: 1), learningRate: 0.1, momentum: 0.9)
        train(sgd, from: 0, to: 1)
        XCTAssertEqual(Set(sgd.stateDict().tensors.keys), ["0.momentum_buffer", "1.momentum_buffer", "2.momentum_buffer"])
        XCTAssertEqual(sgd.stateDict().metadata["nesterov"], "false")

        let fresh = AdamW(makeParameters(seed: 1)).stateDict()
        XCTAssertTrue(fresh.tensors.isEmpty)
        XCTAssertEqual(fresh.metadata["optimizer"], "AdamW")
    }

    func expectError(_ body: () throws -> Void, mentions words: [String], file: StaticString = #filePath,
                     line: UInt = #line) {
        do {
            try body()
            XCTFail("no error", file: file, line: line)
        } catch let error as AlbertMoEError {
            for w in words {
                XCTAssertTrue(error.description.contains(w), "\"\(error)\" does not mention \(w)", file: file,
                              line: line)
            }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testMismatchedStatesAreRejectedAndChangeNothing() {
        let params = makeParameters(seed: 2)
        let adam = ChillAdam(params)
        train(adam, from: 0, to: 2)
        let good = adam.stateDict()
        let target = ChillAdam(makeParameters(seed: 3), weightDecay: 0.2)
        train(target, from: 0, to: 1)
        let before = target.stateDict()

        // Optimizer kind.
        let adamW = AdamW(makeParameters(seed: 2))
        train(adamW, from: 0, to: 1)
        expectError({ try target.loadStateDict(adamW.stateDict()) }, mentions: ["optimizer kind", "AdamW", "ChillAdam"])
        expectError({ try adamW.loadStateDict(good) }, mentions: ["optimizer kind"])
        var noKind = good
        noKind.metadata["optimizer"] = nil
        expectError({ try target.loadStateDict(noKind) }, mentions: ["optimizer kind"])

        // Parameter count.
        let fewer = ChillAdam(Array(makeParameters(seed: 2).prefix(2)))
        expectError({ try fewer.loadStateDict(good) }, mentions: ["parameter count", "3", "2"])

        // Tensor shape.
        var wrongShape = good
        wrongShape.tensors["1.exp_avg_sq"] = Tensor.zeros([16])
        expectError({ try target.loadStateDict(wrongShape) }, mentions: ["1.exp_avg_sq", "[16]", "[17]"])
        let otherShapes = ChillAdam([Tensor.zeros([3, 5]), Tensor.zeros([17]), Tensor.zeros([8])])
        expectError({ try otherShapes.loadStateDict(good) }, mentions: ["2.exp_avg", "[2, 2, 2]", "[8]"])

        // Missing or stray pieces.
        var missing = good
        missing.tensors["0.exp_avg"] = nil
        expectError({ try target.loadStateDict(missing) }, mentions: ["parameter 0", "0.exp_avg"])
        var stray = good
        stray.tensors["0.momentum_buffer"] = Tensor.zeros([3, 5])
        expectError({ try target.loadStateDict(stray) }, mentions: ["0.momentum_buffer"])
        var outOfRange = good
        outOfRange.tensors["3.exp_avg"] = Tensor.zeros([1])
        expectError({ try target.loadStateDict(outOfRange) }, mentions: ["3.exp_avg", "out of range"])
        var badNumber = good
        badNumber.metadata["eps"] = "tiny"
        expectError({ try target.loadStateDict(badNumber) }, mentions: ["eps"])
        var badHyper = good
        badHyper.metadata["beta2"] = "1.5"
        expectError({ try target.loadStateDict(badHyper) }, mentions: ["beta2"])

        let sgd = SGD(makeParameters(seed: 2), learningRate: 0.1, momentum: 0.9)
        train(sgd, from: 0, to: 1)
        var sgdState = sgd.stateDict()
        sgdState.metadata["momentum"] = "0.0"
        expectError({ try SGD(self.makeParameters(seed: 2), learningRate: 0.1).loadStateDict(sgdState) },
                    mentions: ["momentum_buffer", "momentum 0"])

        // Nothing changed by the failed loads.
        XCTAssertEqual(target.stateDict().metadata, before.metadata)
        XCTAssertEqual(target.stateDict().tensors.mapValues(\.scalars), before.tensors.mapValues(\.scalars))
        XCTAssertEqual(target.weightDecay, 0.2)
    }

    func testTrainingWithAutogradGradients() {
        // Minimise ||w - target||^2 through autograd: every optimizer gets the loss well down.
        let target = Tensor([1, -2, 3, 0.5])
        let makers: [(String, ([Tensor]) -> Optimizer)] = [
            ("ChillAdam", { ChillAdam($0) }),
            ("AdamW", { AdamW($0, learningRate: 0.05, weightDecay: 0) }),
            ("SGD", { SGD($0, learningRate: 0.1, momentum: 0.5) }),
        ]
        for (name, make) in makers {
            let w = Tensor([0.1, 0.1, 0.1, 0.1], requiresGrad: true)
            let optimizer = make([w])
            var first: Float = 0, last: Float = 0
            for s in 0..<200 {
                optimizer.zeroGrad()
                let diff = w - target
                let loss = (diff * diff).sum()
                loss.backward()
                clipGradNorm([w], maxNorm: 10)
                if s == 0 { first = loss.item }
                last = loss.item
                optimizer.step()
            }
            XCTAssertLessThan(last, first * 0.01, name)
        }
    }
}
