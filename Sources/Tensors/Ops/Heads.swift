import CKernels

/// Splits a fused projection into attention heads in one pass: qkv [B, T, nH * 3 * hd], where head h's
/// features are q (hd), then k (hd), then v (hd), becomes [3, B, nH, T, hd] (q, k, v stacked), with RoPE applied
/// to q and k when `ropeBase` is given (positions positionOffset ..< positionOffset + T).
public func splitHeads(_ qkv: Tensor, heads: Int, ropeBase: Float? = nil, positionOffset: Int = 0) -> Tensor {
    precondition(qkv.rank == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0,
                 "splitHeads: expected [B, T, heads * 3 * headDim] with \(heads) heads, got \(qkv.shape)")
    let (b, t, hd) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / (3 * heads))
    precondition(ropeBase == nil || hd % 2 == 0, "splitHeads: RoPE needs an even head size, got \(hd)")
    let part = b * heads * t * hd
    let out = Tensor(uninitializedShape: [3, b, heads, t, hd])
    // out[c, b, h, t, :] = qkv[b, t, h, c*hd ..< (c+1)*hd]
    for bi in 0..<b {
        for ti in 0..<t {
            let src = qkv.pointer + (bi * t + ti) * heads * 3 * hd
            for h in 0..<heads {
                let dst = out.pointer + ((bi * heads + h) * t + ti) * hd
                for c in 0..<3 { (dst + c * part).update(from: src + (h * 3 + c) * hd, count: hd) }
            }
        }
    }
    if let ropeBase {
        // q and k are [B*nH, T, 1, hd]: rotate each row by its token position.
        ak_rope(out.pointer, out.pointer, b * heads, t, 1, hd, ropeBase, positionOffset, 0)
        ak_rope(out.pointer + part, out.pointer + part, b * heads, t, 1, hd, ropeBase, positionOffset, 0)
    }
    let inShape = qkv.shape
    return out.record("split_heads", [qkv]) { g in
        var gq = g
        if let ropeBase {
            gq = g.copy()
            ak_rope(gq.pointer, gq.pointer, b * heads, t, 1, hd, ropeBase, positionOffset, 1)
            ak_rope(gq.pointer + part, gq.pointer + part, b * heads, t, 1, hd, ropeBase, positionOffset, 1)
        }
        let dx = Tensor(uninitializedShape: inShape)
        for bi in 0..<b {
            for ti in 0..<t {
                let dst = dx.pointer + (bi * t + ti) * heads * 3 * hd
                for h in 0..<heads {
                    let src = gq.pointer + ((bi * heads + h) * t + ti) * hd
                    for c in 0..<3 { (dst + (h * 3 + c) * hd).update(from: src + c * part, count: hd) }
                }
            }
        }
        return [dx]
    }
}

/// Joins attention heads back: [B, nH, T, hd] -> [B, T, nH * hd].
public func mergeHeads(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "mergeHeads: expected [B, heads, T, headDim], got \(x.shape)")
    let (b, h, t, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return x.permuted([0, 2, 1, 3]).reshaped([b, t, h * d])
}
