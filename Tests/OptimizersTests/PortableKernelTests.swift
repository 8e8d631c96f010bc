import CKernels
import XCTest
import Optimizers
import Tensors

final class PortableKernelTests: XCTestCase {
    /// The same fixtures through the portable (non-AVX2) kernels.
    func testFixturesThroughPortableKernels() {
        ak_force_portable(1)
        defer { ak_force_portable(0) }
        for c in OptimizerFixtures.shared.chilladam {
            let h = c.hyper
            runFixtureCase(c, rtol: 2e-6, atol: 2e-7) { params in
                ChillAdam(params, minLR: Float(h.min_lr!), maxLR: Float(h.max_lr!), eps: Float(h.eps!),
                          betas: (Float(h.betas![0]), Float(h.betas![1])), weightDecay: Float(h.weight_decay!))
            }
        }
        for c in OptimizerFixtures.shared.adamw {
            let h = c.hyper
            runFixtureCase(c, rtol: 2e-6, atol: 2e-7) { params in
                AdamW(params, learningRate: Float(h.lr!), betas: (Float(h.betas![0]), Float(h.betas![1])),
                      eps: Float(h.eps!), weightDecay: Float(h.weight_decay!))
            }
        }
    }
}
