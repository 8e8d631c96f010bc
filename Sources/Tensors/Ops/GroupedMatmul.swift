/// Row groups times their own weight: rows `offsets[g] ..< offsets[g + 1]` of x [R, in] are multiplied by
/// `weights[g]^T` (each [out, in], as a Linear layer without bias), giving [R, out]. One GEMM per group in
/// the forward and two in the backward; a weight whose group is empty gets no gradient (nil), as a layer that
/// was not used.
public func groupedMatmul(_ x: Tensor, _ weights: [Tensor], groupOffsets offsets: [Int]) -> Tensor {
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
    let out = Tensor(uninitializedShape: [rows, outF])
    for (g, w) in weights.enumerated() where offsets[g + 1] > offsets[g] {
        let (r0, n) = (offsets[g], offsets[g + 1] - offsets[g])
        gemm(false, true, m: n, n: outF, k: inF, x.pointer + r0 * inF, strideA: 0, w.pointer, strideB: 0,
             out.pointer + r0 * outF, strideC: 0, batch: 1)
    }
    let xd = x.detach(), wd = weights.map { $0.detach() }
    return out.record("grouped_matmul", [x] + weights) { g in
        var grads: [Tensor?] = []
        if x.requiresGrad {
            let dx = Tensor.zeros([rows, inF])
            for (e, w) in wd.enumerated() where offsets[e + 1] > offsets[e] {
                let (r0, n) = (offsets[e], offsets[e + 1] - offsets[e])
                // dx_g [n, in] = g_g [n, out] W_g [out, in]
                gemm(false, false, m: n, n: inF, k: outF, g.pointer + r0 * outF, strideA: 0, w.pointer, strideB: 0,
                     dx.pointer + r0 * inF, strideC: 0, batch: 1)
            }
            grads.append(dx)
        } else {
            grads.append(nil)
        }
        for (e, w) in weights.enumerated() {
            guard w.requiresGrad, offsets[e + 1] > offsets[e] else { grads.append(nil); continue }
            let (r0, n) = (offsets[e], offsets[e + 1] - offsets[e])
            // dW_g [out, in] = g_g^T [out, n] x_g [n, in]
            let dw = Tensor(uninitializedShape: [outF, inF])
            gemm(true, false, m: outF, n: inF, k: n, g.pointer + r0 * outF, strideA: 0, xd.pointer + r0 * inF, strideB: 0,
                 dw.pointer, strideC: 0, batch: 1)
            grads.append(dw)
        }
        return grads
    }
}
