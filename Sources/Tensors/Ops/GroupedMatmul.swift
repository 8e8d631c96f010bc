import CKernels

/// Row groups times their own weight: rows `offsets[g] ..< offsets[g + 1]` of x [R, in] are multiplied by
/// `weights[g]^T` (each [out, in], as a Linear layer without bias), giving [R, out]. One GEMM per group in
/// the forward and two in the backward; a weight whose group is empty gets no gradient (nil), as a layer that
/// was not used.
///
/// With `geluInput`, the product is taken of GELU(x) instead of x, and GELU(x) is not kept: the backward
/// computes it again from x (cheap next to the GEMMs), which saves a tensor as large as x.
public func groupedMatmul(_ x: Tensor, _ weights: [Tensor], groupOffsets offsets: [Int], geluInput: Bool = false) -> Tensor {
    precondition(x.rank == 2, "groupedMatmul: x must be [rows, in], got \(x.shape)")
    precondition(!weights.isEmpty && offsets.count == weights.count + 1,
                 "groupedMatmul: \(weights.count) weights need \(weights.count + 1) offsets, got \(offsets.count)")
    let (rows, inF) = (x.shape[0], x.shape[1])
    let outF = weights[0].shape[0]
    for (g, w) in weights.enumerated() {
        precondition(w.shape == [outF, inF], "groupedMatmul: weight \(g) has shape \(w.shape), expected [\(outF), \(inF)]")
        precondition(offsets[g] <= offsets[g + 1], "groupedMatmul: offsets \(offsets) are not increasing")
    }
    precondition(offsets.first == 0 && offsets.last == rows, "groupedMatmul: offsets \(offsets) do not cover \(rows) rows")

    /// GELU(x) when asked for, else x itself.
    func input(_ x: Tensor) -> Tensor {
        guard geluInput else { return x }
        let a = Tensor(uninitializedShape: x.shape)
        ak_gelu_forward(x.pointer, a.pointer, x.count)
        return a
    }
    let groups = weights.indices.filter { offsets[$0 + 1] > offsets[$0] }
    let out = Tensor(uninitializedShape: [rows, outF])
    do {
        let a = input(x)
        for g in groups {
            let (r0, n) = (offsets[g], offsets[g + 1] - offsets[g])
            gemm(false, true, m: n, n: outF, k: inF, a.pointer + r0 * inF, strideA: 0, weights[g].pointer, strideB: 0,
                 out.pointer + r0 * outF, strideC: 0, batch: 1)
        }
    }
    let xd = x.detach(), wd = weights.map { $0.detach() }
    let needsX = x.requiresGrad, needsW = weights.map(\.requiresGrad)
    return out.record(geluInput ? "grouped_matmul_gelu" : "grouped_matmul", [x] + weights) { g in
        var grads: [Tensor?] = [nil]
        if needsX {
            let da = Tensor.zeros([rows, inF])
            for e in groups {
                let (r0, n) = (offsets[e], offsets[e + 1] - offsets[e])
                // da_g [n, in] = g_g [n, out] W_g [out, in]
                gemm(false, false, m: n, n: inF, k: outF, g.pointer + r0 * outF, strideA: 0, wd[e].pointer, strideB: 0,
                     da.pointer + r0 * inF, strideC: 0, batch: 1)
            }
            if geluInput {
                ak_gelu_backward(xd.pointer, da.pointer, da.pointer, da.count)
            }
            grads[0] = da
        }
        let a = needsW.contains(true) ? input(xd) : xd
        for e in wd.indices {
            guard needsW[e], offsets[e + 1] > offsets[e] else { grads.append(nil); continue }
            let (r0, n) = (offsets[e], offsets[e + 1] - offsets[e])
            // dW_g [out, in] = g_g^T [out, n] a_g [n, in]
            let dw = Tensor(uninitializedShape: [outF, inF])
            gemm(true, false, m: outF, n: inF, k: n, g.pointer + r0 * outF, strideA: 0, a.pointer + r0 * inF, strideB: 0,
                 dw.pointer, strideC: 0, batch: 1)
            grads.append(dw)
        }
        return grads
    }
}
