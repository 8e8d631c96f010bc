import XCTest
import Optimizers
import Tensors

final class GradientClippingTests: XCTestCase {
    func testMatchesTorchClipGradNorm() {
        for c in OptimizerFixtures.shared.clip {
            let params = c.shapes.map { Tensor.zeros($0, requiresGrad: true) }
            for (p, g) in zip(params, c.grads) { p.grad = Tensor(floats(g), shape: p.shape) }
            let total = clipGradNorm(params, maxNorm: Float(c.max_norm))
            XCTAssertEqual(Double(total), c.total_norm, accuracy: 1e-6 * c.total_norm, c.name)
            var stats = ErrorStats()
            for (p, expected) in zip(params, c.clipped) {
                let e = floats(expected)
                stats.add(p.grad!.scalars, e)
                for (a, b) in zip(p.grad!.scalars, e) {
                    XCTAssertEqual(a, b, accuracy: 2e-6 * abs(b) + 1e-12, c.name)
                }
            }
            print("clipGradNorm vs PyTorch \(c.name): total \(total) vs \(c.total_norm); grads \(stats)")
        }
    }

    func testNoClippingBelowTheLimitAndMissingGradients() {
        let a = Tensor([0, 0], requiresGrad: true)
        let b = Tensor([0], requiresGrad: true)
        a.grad = Tensor([3, 4])
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 10), 5)
        XCTAssertEqual(a.grad!.scalars, [3, 4])
        XCTAssertNil(b.grad)
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 1), 5)
        XCTAssertEqual(Double(a.grad!.scalars[0]), 0.6, accuracy: 1e-6)
        XCTAssertEqual(Double(a.grad!.scalars[1]), 0.8, accuracy: 1e-6)
        XCTAssertEqual(gradNorm([a, b]), 1, accuracy: 1e-6)
    }
}
