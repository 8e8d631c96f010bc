import Foundation
import XCTest
import Optimizers
import Tensors

/// Tests/OptimizersTests/Fixtures/optimizers.json, written by Scripts/make_optimizer_fixtures.py.
struct OptimizerFixtures: Decodable {
    struct Hyper: Decodable {
        var min_lr: Double?
        var max_lr: Double?
        var eps: Double?
        var betas: [Double]?
        var weight_decay: Double?
        var lr: Double?
        var momentum: Double?
        var dampening: Double?
        var nesterov: Bool?
    }

    struct Step: Decodable {
        var grads: [[Double]?]
        var expected: [[Double]]
    }

    struct Case: Decodable {
        var name: String
        var hyper: Hyper
        var shapes: [[Int]]
        var initial: [[Double]]
        var steps: [Step]
    }

    struct ClipCase: Decodable {
        var name: String
        var max_norm: Double
        var shapes: [[Int]]
        var grads: [[Double]]
        var total_norm: Double
        var clipped: [[Double]]
    }

    struct ScheduleCase: Decodable {
        var kind: String
        var lr: Double
        var warmup: Int
        var total: Int
        var min_lr: Double?
        var steps: [Int]
        var values: [Double]
    }

    var torch_version: String
    var chilladam: [Case]
    var adamw: [Case]
    var sgd: [Case]
    var clip: [ClipCase]
    var schedules: [ScheduleCase]

    static let shared: OptimizerFixtures = {
        guard let url = Bundle.module.url(forResource: "optimizers", withExtension: "json", subdirectory: "Fixtures")
        else { fatalError("Fixtures/optimizers.json is missing from the test bundle") }
        let fixtures: OptimizerFixtures
        do {
            fixtures = try JSONDecoder().decode(OptimizerFixtures.self, from: Data(contentsOf: url))
        } catch {
            fatalError("Fixtures/optimizers.json: \(error)")
        }
        if let problem = fixtures.problem { fatalError("Fixtures/optimizers.json: \(problem)") }
        return fixtures
    }()

    /// What makes the fixtures unfit to test with, if anything: a test looping over an empty list, or zipping
    /// lists of different lengths, would pass without checking anything.
    var problem: String? {
        for (kind, cases) in [("chilladam", chilladam), ("adamw", adamw), ("sgd", sgd)] {
            if cases.isEmpty { return "no \(kind) case" }
            for c in cases {
                if c.steps.isEmpty || c.shapes.isEmpty { return "\(kind) case \(c.name) has no step or no parameter" }
                if c.initial.count != c.shapes.count
                    || c.steps.contains(where: { $0.grads.count != c.shapes.count || $0.expected.count != c.shapes.count }) {
                    return "\(kind) case \(c.name): a step does not list every parameter"
                }
            }
        }
        if clip.isEmpty || clip.contains(where: { $0.grads.count != $0.shapes.count || $0.clipped.count != $0.shapes.count }) {
            return "no clipping case, or one that does not list every parameter"
        }
        if schedules.isEmpty || schedules.contains(where: { $0.steps.isEmpty || $0.steps.count != $0.values.count }) {
            return "no schedule case, or one whose steps and values differ in number"
        }
        return nil
    }
}

func floats(_ values: [Double]) -> [Float] { values.map { Float($0) } }

/// Largest element-wise error of `actual` against `expected`: absolute, relative to the element
/// (|expected| floored at 1e-3), and relative to the tensor's largest |expected| element.
struct ErrorStats: CustomStringConvertible {
    var maxAbs: Double = 0
    var maxRel: Double = 0
    var maxScaled: Double = 0

    mutating func add(_ actual: [Float], _ expected: [Float], floor: Double = 1e-3) {
        precondition(actual.count == expected.count)
        let scale = expected.map { abs(Double($0)) }.max() ?? 0
        for (a, e) in zip(actual, expected) {
            let d = abs(Double(a) - Double(e))
            maxAbs = max(maxAbs, d)
            maxRel = max(maxRel, d / max(abs(Double(e)), floor))
            if scale > 0 { maxScaled = max(maxScaled, d / scale) }
        }
    }

    var description: String {
        String(format: "max abs %.3g, max rel/element %.3g, max rel/tensor %.3g", maxAbs, maxRel, maxScaled)
    }
}

/// Runs `optimizer` on a fixture case (parameters built from `initial`, the case's gradients step by step)
/// and returns the error statistics against the recorded parameters, checking every element as it goes:
/// |actual - expected| <= rtol * |expected| + atol * (largest |expected| in that tensor).
@discardableResult
func runFixtureCase(_ c: OptimizerFixtures.Case, rtol: Double, atol: Double,
                    file: StaticString = #filePath, line: UInt = #line,
                    make: ([Tensor]) -> Optimizer) -> ErrorStats {
    let params = zip(c.initial, c.shapes).map { Tensor(floats($0.0), shape: $0.1, requiresGrad: true) }
    let optimizer = make(params)
    var stats = ErrorStats()
    for (s, step) in c.steps.enumerated() {
        for (p, g) in zip(params, step.grads) {
            p.grad = g.map { Tensor(floats($0), shape: p.shape) }
        }
        optimizer.step()
        for (i, (p, expected)) in zip(params, step.expected).enumerated() {
            let e = floats(expected)
            let a = p.scalars
            stats.add(a, e)
            let scale = e.map { abs(Double($0)) }.max() ?? 0
            var worst = 0.0
            var worstAt = -1
            for j in 0..<a.count {
                let excess = abs(Double(a[j]) - Double(e[j])) - (rtol * abs(Double(e[j])) + atol * scale)
                if excess > worst { worst = excess; worstAt = j }
            }
            if worstAt >= 0 {
                XCTFail("\(c.name) step \(s + 1) parameter \(i) element \(worstAt): \(a[worstAt]) vs torch "
                    + "\(e[worstAt])", file: file, line: line)
            }
        }
    }
    return stats
}

/// A deterministic pseudo-random gradient for step `s` of parameter `i`.
func syntheticGradient(_ shape: [Int], step s: Int, index i: Int, scale: Float = 1) -> Tensor {
    var generator = SeededGenerator(seed: UInt64(1000 * s + i + 17))
    return Tensor.normal(shape, std: scale, generator: &generator)
}
