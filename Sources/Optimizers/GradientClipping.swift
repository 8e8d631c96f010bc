import CKernels
import Tensors

/// The L2 norm of all gradients together, as if they were one vector (parameters without a gradient
/// count as zero). Sums of squares are accumulated in double.
public func gradNorm(_ parameters: [Tensor]) -> Double {
    var sum = 0.0
    for p in parameters {
        if let g = p.grad { sum += ak_sum_squares(g.pointer, g.count) }
    }
    return sum.squareRoot()
}

/// Scales the gradients in place so that their total L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_` (norm type 2): with `total` the norm of all gradients together, every
/// gradient is multiplied by `maxNorm / (total + 1e-6)` when that factor is below 1, and left alone
/// otherwise. Returns `total`, the norm before clipping.
///
/// Scaling in place is safe because autograd gives each leaf its own gradient tensor. Unlike torch (which
/// multiplies every gradient by NaN when the norm is NaN), a non-finite total leaves the gradients as they
/// are; the returned norm shows it, so callers can skip the step.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    precondition(maxNorm >= 0 && !maxNorm.isNaN, "clipGradNorm: maxNorm must be >= 0 (got \(maxNorm))")
    let total = gradNorm(parameters)
    let coefficient = Double(maxNorm) / (total + 1e-6)
    if total.isFinite && coefficient < 1 {
        let scale = Float(coefficient)
        for p in parameters {
            guard let g = p.grad else { continue }
            let gp = g.pointer
            for j in 0..<g.count { gp[j] *= scale }
        }
    }
    return Float(total)
}
