import Foundation
import XCTest
@testable import Optimizers
import Tensors

/// The ChillAdam formula in double precision, straight from SPEC.md, for one parameter tensor.
struct ChillAdamDoubleReference {
    var p: [Double]
    var m: [Double]
    var v: [Double]
    var t = 0
    let minLR: Double, maxLR: Double, eps: Double, b1: Double, b2: Double, wd: Double, multiplier: Double

    init(_ p: [Float], minLR: Float = 1e-4, maxLR: Float = 1, eps: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
         weightDecay: Float = 0, multiplier: Float = 1) {
        self.p = p.map(Double.init)
        m = Array(repeating: 0, count: p.count)
        v = Array(repeating: 0, count: p.count)
        self.minLR = Double(minLR)
        self.maxLR = Double(maxLR)
        self.eps = Double(eps)
        b1 = Double(betas.0)
        b2 = Double(betas.1)
        wd = Double(weightDecay)
        self.multiplier = Double(multiplier)
    }

    mutating func step(_ gFloat: [Float]) {
        t += 1
        let g = gFloat.map(Double.init)
        let gnorm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let clamped = min(max(gnorm, eps), 100)
        let pnorm = p.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let lr = min(max(1 / max(pnorm, eps), minLR), maxLR) * multiplier
        let bc1 = 1 - pow(b1, Double(t)), bc2 = 1 - pow(b2, Double(t))
        for j in p.indices {
            var gj = g[j] / clamped
            if wd != 0 { gj += wd * p[j] }
            m[j] = b1 * m[j] + (1 - b1) * gj
            v[j] = b2 * v[j] + (1 - b2) * gj * gj
            p[j] -= (lr / bc1) * m[j] / (v[j].squareRoot() / bc2.squareRoot() + eps)
        }
    }
}

final class ChillAdamTests: XCTestCase {
    func testMatchesReferenceChillAdamFixtures() {
        for c in OptimizerFixtures.shared.chilladam {
            let h = c.hyper
            let stats = runFixtureCase(c, rtol: 2e-6, atol: 2e-7) { params in
                ChillAdam(params, minLR: Float(h.min_lr!), maxLR: Float(h.max_lr!), eps: Float(h.eps!),
                          betas: (Float(h.betas![0]), Float(h.betas![1])), weightDecay: Float(h.weight_decay!))
            }
            print("ChillAdam vs PyTorch \(c.name): \(stats)")
        }
    }

    func testMatchesDoublePrecisionFormula() {
        // Shapes around the vector width (remainders), norms that hit each clamp, weight decay on and off,
        // and a learning-rate multiplier other than 1.
        let configs: [(shape: [Int], pScale: Float, gScale: Float, wd: Float, multiplier: Float)] = [
            ([37], 0.05, 1.0, 0, 1),          // ||p|| small: lr = maxLR
            ([8, 9], 1.0, 1e-6, 0.01, 1),     // tiny gradient norm: clamp at eps
            ([3, 5, 7], 2.0, 50.0, 0, 1),     // huge gradient norm: clamp at 100
            ([1003], 800.0, 1.0, 0.1, 1),     // ||p|| huge: lr = minLR
            ([2, 16], 0.5, 3.0, 0, 0.25),     // multiplier
        ]
        for (k, c) in configs.enumerated() {
            var gen = SeededGenerator(seed: UInt64(40 + k))
            let p = Tensor.normal(c.shape, std: c.pScale, generator: &gen, requiresGrad: true)
            var reference = ChillAdamDoubleReference(p.scalars, weightDecay: c.wd, multiplier: c.multiplier)
            let optimizer = ChillAdam([p], weightDecay: c.wd, learningRate: c.multiplier)
            var stats = ErrorStats()
            for s in 0..<10 {
                let g = syntheticGradient(c.shape, step: s, index: k, scale: c.gScale)
                p.grad = g
                optimizer.step()
                reference.step(g.scalars)
                let expected = reference.p.map { Float($0) }
                stats.add(p.scalars, expected)
                let scale = reference.p.map { abs($0) }.max()!
                for (a, e) in zip(p.scalars, reference.p) {
                    XCTAssertLessThanOrEqual(abs(Double(a) - e), 1e-5 * abs(e) + 1e-6 * scale,
                                             "config \(k) step \(s + 1)")
                }
            }
            print("ChillAdam vs double formula, config \(k) \(c.shape): \(stats)")
        }
    }

    func testDefaultsAreTheReferenceDefaults() {
        let o = ChillAdam([Tensor([1, 2])])
        XCTAssertEqual(o.minLR, 1e-4)
        XCTAssertEqual(o.maxLR, 1)
        XCTAssertEqual(o.eps, 1e-3)
        XCTAssertEqual(o.betas.0, 0.9)
        XCTAssertEqual(o.betas.1, 0.999)
        XCTAssertEqual(o.weightDecay, 0)
        XCTAssertEqual(o.learningRate, 1)
    }

    func testFirstStepMovesEachElementByTheClampedStepSize() {
        // At t = 1 with no weight decay, m / (1 - b1) = g' and sqrt(v / (1 - b2)) = |g'|, so each element moves by
        // lr * |g'| / (|g'| + eps) in the direction of -g.
        let p = Tensor([3, 4], requiresGrad: true)           // ||p|| = 5, lr = 0.2
        p.grad = Tensor([0, 10])                              // ||g|| = 10, g' = [0, 1]
        ChillAdam([p]).step()
        XCTAssertEqual(p.scalars[0], 3)
        XCTAssertEqual(Double(p.scalars[1]), 4 - 0.2 * 1 / (1 + 1e-3), accuracy: 1e-6)
    }

    func testSkipsParametersWithoutGradientAndCountsStepsPerParameter() {
        let a = Tensor([1, 2, 3], requiresGrad: true)
        let b = Tensor([4, 5], requiresGrad: true)
        let o = ChillAdam([a, b])
        a.grad = Tensor([0.1, 0.2, 0.3])
        o.step()
        XCTAssertEqual(b.scalars, [4, 5])
        XCTAssertEqual(o.steps, [1, 0])
        b.grad = Tensor([1, 1])
        o.step()
        XCTAssertEqual(o.steps, [2, 1])
        o.zeroGrad()
        XCTAssertNil(a.grad)
        XCTAssertNil(b.grad)
    }

    func testLearningRateZeroFreezesParameters() {
        let p = Tensor([0.5, -0.25], requiresGrad: true)
        let o = ChillAdam([p], learningRate: 0)
        p.grad = Tensor([1, 2])
        o.step()
        XCTAssertEqual(p.scalars, [0.5, -0.25])
    }

    func testValidationNamesTheField() {
        XCTAssertThrowsError(try ChillAdam.validate(eps: 0)) { XCTAssertEqual(($0 as? AlbertMoEError)?.field, "eps") }
        XCTAssertThrowsError(try ChillAdam.validate(minLR: 0.5, maxLR: 0.1)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "maxLR")
        }
        XCTAssertThrowsError(try ChillAdam.validate(betas: (1, 0.999))) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "beta1")
        }
        XCTAssertThrowsError(try ChillAdam.validate(weightDecay: -1)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "weightDecay")
        }
        XCTAssertNoThrow(try ChillAdam.validate())
    }
}
