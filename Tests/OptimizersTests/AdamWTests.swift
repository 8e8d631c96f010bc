import XCTest
import Optimizers
import Tensors

final class AdamWTests: XCTestCase {
    func testMatchesTorchAdamWFixtures() {
        for c in OptimizerFixtures.shared.adamw {
            let h = c.hyper
            let stats = runFixtureCase(c, rtol: 2e-6, atol: 2e-7) { params in
                AdamW(params, learningRate: Float(h.lr!), betas: (Float(h.betas![0]), Float(h.betas![1])),
                      eps: Float(h.eps!), weightDecay: Float(h.weight_decay!))
            }
            print("AdamW vs PyTorch \(c.name): \(stats)")
        }
    }

    func testDefaultsAreTorchDefaults() {
        let o = AdamW([Tensor([1])])
        XCTAssertEqual(o.learningRate, 1e-3)
        XCTAssertEqual(o.betas.0, 0.9)
        XCTAssertEqual(o.betas.1, 0.999)
        XCTAssertEqual(o.eps, 1e-8)
        XCTAssertEqual(o.weightDecay, 0.01)
    }

    func testScheduledLearningRateIsUsedByTheNextStep() {
        // With zero gradients only the decoupled decay acts: p *= 1 - lr * wd.
        let p = Tensor([2, -4], requiresGrad: true)
        let o = AdamW([p], learningRate: 0.1, weightDecay: 0.5)
        p.grad = Tensor([0, 0])
        o.learningRate = 0.2
        o.step()
        XCTAssertEqual(p.scalars, [2 * 0.9, -4 * 0.9])
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsError(try AdamW.validate(learningRate: -1)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "learningRate")
        }
        XCTAssertThrowsError(try AdamW.validate(betas: (0.9, 1.5))) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "beta2")
        }
        XCTAssertThrowsError(try AdamW.validate(eps: -1e-8)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "eps")
        }
    }
}
