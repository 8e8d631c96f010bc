import CKernels

/// One SGEMM call on whole tensors: C = op(A) op(B) (+ C when `accumulate`), batched over the leading
/// dimensions. Batch strides of 0 share a matrix across the batch.
@inline(__always)
func gemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int,
          _ a: UnsafePointer<Float>, strideA: Int, _ b: UnsafePointer<Float>, strideB: Int,
          _ c: UnsafeMutablePointer<Float>, strideC: Int, batch: Int, accumulate: Bool = false) {
    let lda = transA ? m : k, ldb = transB ? k : n
    ak_sgemm_strided_batched(transA ? 1 : 0, transB ? 1 : 0, m, n, k, 1, a, lda, strideA, b, ldb, strideB,
                             accumulate ? 1 : 0, c, n, strideC, batch)
}

/// Matrix product of the last two dimensions, `op(a) @ op(b)`, where op transposes when the flag is set
/// (without copying). `a` is [..., M, K] ([..., K, M] with transposeA), `b` is [..., K, N] ([..., N, K] with
/// transposeB). Leading (batch) dimensions must match, or one side is a plain matrix shared by the batch.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let plan = Shape.check { try MatmulPlan(a.shape, b.shape, transposeA, transposeB) }
    let (m, n, k, batch) = (plan.m, plan.n, plan.k, plan.batch)
    let out = Tensor(uninitializedShape: plan.outShape)
    let sa = plan.aBatched ? m * k : 0, sb = plan.bBatched ? k * n : 0
    if plan.flattenA {
        // [batch*M, K] @ [K, N] in one call.
        gemm(false, transposeB, m: batch * m, n: n, k: k, a.pointer, strideA: 0, b.pointer, strideB: 0,
             out.pointer, strideC: 0, batch: 1)
    } else {
        gemm(transposeA, transposeB, m: m, n: n, k: k, a.pointer, strideA: sa, b.pointer, strideB: sb,
             out.pointer, strideC: m * n, batch: batch)
    }
    let (ad, bd, needsA, needsB) = (a.detach(), b.detach(), a.requiresGrad, b.requiresGrad)
    return out.record("matmul", [a, b]) { g in
        var ga: Tensor? = nil, gb: Tensor? = nil
        if needsA {
            let t = Tensor.zeros(ad.shape)
            if plan.flattenA {
                // dA = dC op(B)^T
                gemm(false, !transposeB, m: batch * m, n: k, k: n, g.pointer, strideA: 0, bd.pointer, strideB: 0,
                     t.pointer, strideC: 0, batch: 1)
            } else if !transposeA {
                // dA [M,K] = dC [M,N] op(B)^T
                gemm(false, !transposeB, m: m, n: k, k: n, g.pointer, strideA: m * n, bd.pointer, strideB: sb,
                     t.pointer, strideC: sa, batch: plan.aBatched ? batch : 1, accumulate: true)
                if !plan.aBatched { accumulateBatch(g, bd, into: t) }
            } else {
                // A stored [K,M]: dA = op(B) dC^T
                gemm(transposeB, true, m: k, n: m, k: n, bd.pointer, strideA: sb, g.pointer, strideB: m * n,
                     t.pointer, strideC: sa, batch: plan.aBatched ? batch : 1, accumulate: true)
                if !plan.aBatched { accumulateBatch(g, bd, into: t) }
            }
            ga = t
        }
        if needsB {
            let t = Tensor.zeros(bd.shape)
            if plan.flattenA {
                // dB = A^T dC over all rows (or dC^T A when B is stored transposed)
                if transposeB {
                    gemm(true, false, m: n, n: k, k: batch * m, g.pointer, strideA: 0, ad.pointer, strideB: 0,
                         t.pointer, strideC: 0, batch: 1)
                } else {
                    gemm(true, false, m: k, n: n, k: batch * m, ad.pointer, strideA: 0, g.pointer, strideB: 0,
                         t.pointer, strideC: 0, batch: 1)
                }
            } else {
                let count = plan.bBatched ? batch : 1
                // When B is shared, loop the batch and accumulate into the single dB.
                let rounds = plan.bBatched ? 1 : batch
                for r in 0..<rounds {
                    let gp = g.pointer + r * m * n, ap = ad.pointer + r * sa
                    if !transposeB {
                        // dB [K,N] = op(A)^T dC
                        gemm(!transposeA, false, m: k, n: n, k: m, ap, strideA: sa, gp, strideB: m * n,
                             t.pointer, strideC: sb, batch: count, accumulate: true)
                    } else {
                        // B stored [N,K]: dB = dC^T op(A)
                        gemm(true, transposeA, m: n, n: k, k: m, gp, strideA: m * n, ap, strideB: sa,
                             t.pointer, strideC: sb, batch: count, accumulate: true)
                    }
                }
            }
            gb = t
        }
        return [ga, gb]

        /// dA for a shared A (the batch lives on B): the first batch element was done above; add the rest.
        func accumulateBatch(_ g: Tensor, _ bd: Tensor, into t: Tensor) {
            for r in 1..<max(batch, 1) {
                let gp = g.pointer + r * m * n, bp = bd.pointer + r * sb
                if !transposeA {
                    gemm(false, !transposeB, m: m, n: k, k: n, gp, strideA: 0, bp, strideB: 0,
                         t.pointer, strideC: 0, batch: 1, accumulate: true)
                } else {
                    gemm(transposeB, true, m: k, n: m, k: n, bp, strideA: 0, gp, strideB: 0,
                         t.pointer, strideC: 0, batch: 1, accumulate: true)
                }
            }
        }
    }
}

/// How a matmul maps onto SGEMM calls.
struct MatmulPlan {
    var m = 0, n = 0, k = 0, batch = 1
    var outShape: [Int] = []
    var aBatched = false, bBatched = false
    /// `a` has batch dimensions, `b` is a plain matrix and A is not transposed: one big GEMM.
    var flattenA = false

    init(_ sa: [Int], _ sb: [Int], _ ta: Bool, _ tb: Bool) throws {
        guard sa.count >= 2, sb.count >= 2 else {
            throw TensorError("matmul: operands need at least 2 dimensions, got \(sa) and \(sb)")
        }
        let (ra, rb) = (sa.count, sb.count)
        m = ta ? sa[ra - 1] : sa[ra - 2]
        k = ta ? sa[ra - 2] : sa[ra - 1]
        let kb = tb ? sb[rb - 1] : sb[rb - 2]
        n = tb ? sb[rb - 2] : sb[rb - 1]
        guard k == kb else {
            throw TensorError("matmul: inner dimensions differ: \(sa)\(ta ? "ᵀ" : "") @ \(sb)\(tb ? "ᵀ" : "") (\(k) vs \(kb))")
        }
        let (ba, bb) = (Array(sa.dropLast(2)), Array(sb.dropLast(2)))
        aBatched = !ba.isEmpty
        bBatched = !bb.isEmpty
        if aBatched && bBatched && ba != bb {
            throw TensorError("matmul: batch dimensions differ: \(sa) @ \(sb)")
        }
        let lead = aBatched ? ba : bb
        batch = lead.reduce(1, *)
        outShape = lead + [m, n]
        flattenA = aBatched && !bBatched && !ta
    }
}
