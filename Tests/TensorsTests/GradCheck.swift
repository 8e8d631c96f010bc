import XCTest
@testable import Tensors

/// Finite-difference gradient check: for a function of several tensors returning a tensor, compares the
/// gradient that autograd gives for the scalar L = sum(f(x) * r) (r a fixed random weighting) with central
/// differences (L(x + h) - L(x - h)) / 2h taken element by element, L accumulated in double.
func checkGradients(_ inputs: [Tensor], h: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
                    _ name: String = "", file: StaticString = #filePath, line: UInt = #line,
                    _ f: ([Tensor]) -> Tensor) {
    for problem in gradientProblems(inputs, h: h, rtol: rtol, atol: atol, f) {
        XCTFail("\(name): \(problem)", file: file, line: line)
    }
}

/// The disagreements between autograd and finite differences, one line per input (empty when they agree).
func gradientProblems(_ inputs: [Tensor], h: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
                      _ f: ([Tensor]) -> Tensor) -> [String] {
    var problems: [String] = []
    for x in inputs { x.requiresGrad = true; x.grad = nil }
    let out = f(inputs)
    var gen = SeededGenerator(seed: 99)
    let r = Tensor.uniform(out.shape, low: -1, high: 1, generator: &gen)
    func loss() -> Double {
        let y = withNoGrad { f(inputs) }
        var s = 0.0
        for i in 0..<y.count { s += Double(y.pointer[i]) * Double(r.pointer[i]) }
        return s
    }
    out.backward(r)
    for (n, x) in inputs.enumerated() {
        guard let g = x.grad else {
            problems.append("input \(n) got no gradient")
            continue
        }
        guard g.shape == x.shape else {
            problems.append("input \(n): gradient shape \(g.shape) for shape \(x.shape)")
            continue
        }
        var worst: (Float, Int, Float, Float) = (0, -1, 0, 0)
        for i in 0..<x.count {
            let keep = x.pointer[i]
            x.pointer[i] = keep + h
            let up = loss()
            x.pointer[i] = keep - h
            let down = loss()
            x.pointer[i] = keep
            let numeric = Float((up - down) / Double(2 * h))
            let analytic = g.pointer[i]
            let err = abs(numeric - analytic) - (atol + rtol * abs(numeric))
            if err > worst.0 { worst = (err, i, numeric, analytic) }
        }
        if worst.1 >= 0 {
            problems.append("input \(n) shape \(x.shape) element \(worst.1): numeric \(worst.2) vs autograd \(worst.3)")
        }
    }
    return problems
}

/// Max |a - b| over all elements.
func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in 0..<a.count { m = max(m, abs(a.pointer[i] - b.pointer[i])) }
    return m
}

func randn(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor.normal(shape, std: scale, generator: &g)
}

func randu(_ shape: [Int], seed: UInt64, low: Float, high: Float) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor.uniform(shape, low: low, high: high, generator: &g)
}
