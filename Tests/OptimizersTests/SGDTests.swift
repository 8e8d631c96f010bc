import XCTest
import Optimizers
import Tensors

final class SGDTests: XCTestCase {
    func testMatchesTorchSGDFixtures() {
        for c in OptimizerFixtures.shared.sgd {
            let h = c.hyper
            let stats = runFixtureCase(c, rtol: 1e-6, atol: 1e-7) { params in
                SGD(params, learningRate: Float(h.lr!), momentum: Float(h.momentum!), dampening: Float(h.dampening!),
                    weightDecay: Float(h.weight_decay!), nesterov: h.nesterov!)
            }
            print("SGD vs PyTorch \(c.name): \(stats)")
        }
    }

    func testPlainStep() {
        let p = Tensor([1, 2, 3], requiresGrad: true)
        p.grad = Tensor([1, -1, 0.5])
        SGD([p], learningRate: 0.5).step()
        XCTAssertEqual(p.scalars, [0.5, 2.5, 2.75])
    }

    func testNesterovNeedsMomentumAndNoDampening() {
        XCTAssertThrowsError(try SGD.validate(learningRate: 0.1, nesterov: true)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "nesterov")
        }
        XCTAssertThrowsError(try SGD.validate(learningRate: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "nesterov")
        }
        XCTAssertThrowsError(try SGD.validate(learningRate: 0.1, momentum: -0.5)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "momentum")
        }
        XCTAssertNoThrow(try SGD.validate(learningRate: 0.1, momentum: 0.9, nesterov: true))
    }
}
