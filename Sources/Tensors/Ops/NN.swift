import CKernels

extension Tensor {
    private func rows(_ op: String) -> (rows: Int, n: Int) {
        precondition(rank >= 1, "\(op): needs at least one dimension, got a scalar")
        let n = shape[rank - 1]
        return (n == 0 ? 0 : count / n, n)
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let (rows, n) = rows("softmax")
        let y = Tensor(uninitializedShape: shape)
        ak_softmax_rows(pointer, y.pointer, rows, n)
        let yd = y.detach()
        return y.record("softmax", [self]) { g in
            let dx = Tensor(uninitializedShape: yd.shape)
            ak_softmax_backward_rows(yd.pointer, g.pointer, dx.pointer, rows, n)
            return [dx]
        }
    }

    /// Log-softmax over the last axis.
    public func logSoftmax() -> Tensor {
        let (rows, n) = rows("logSoftmax")
        let y = Tensor(uninitializedShape: shape)
        ak_log_softmax_rows(pointer, y.pointer, rows, n)
        let yd = y.detach()
        return y.record("log_softmax", [self]) { g in
            let dx = Tensor(uninitializedShape: yd.shape)
            ak_log_softmax_backward_rows(yd.pointer, g.pointer, dx.pointer, rows, n)
            return [dx]
        }
    }

    /// RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * weight.
    public func rmsNorm(weight: Tensor, eps: Float) -> Tensor {
        let (rows, n) = rows("rmsNorm")
        precondition(weight.shape == [n], "rmsNorm: weight of shape \(weight.shape) for a last dimension of \(n)")
        let y = Tensor(uninitializedShape: shape)
        let rstd = Tensor(uninitializedShape: [rows])
        ak_rmsnorm_forward(pointer, weight.pointer, y.pointer, rstd.pointer, rows, n, eps)
        let (xd, wd, needsW) = (detach(), weight.detach(), weight.requiresGrad)
        return y.record("rms_norm", [self, weight]) { g in
            let dx = Tensor(uninitializedShape: xd.shape)
            let dw = needsW ? Tensor.zeros([n]) : nil
            ak_rmsnorm_backward(xd.pointer, wd.pointer, rstd.pointer, g.pointer, dx.pointer, dw?.pointer, rows, n)
            return [dx, dw]
        }
    }

    /// Inverted dropout: each element is zeroed with probability `p` and the rest scaled by 1/(1-p), when
    /// `training`; otherwise the tensor itself. The mask is derived from one number drawn from `generator`
    /// and regenerated in the backward, so nothing is kept for it.
    public func dropout(_ p: Float, training: Bool, generator: inout SeededGenerator) -> Tensor {
        precondition(p >= 0 && p < 1, "dropout: probability \(p) must be in [0, 1)")
        guard training && p > 0 else { return self }
        let seed = generator.next()
        let y = Tensor(uninitializedShape: shape)
        ak_dropout(pointer, y.pointer, count, p, seed)
        return y.record("dropout", [self]) { g in
            let dx = Tensor(uninitializedShape: g.shape)
            ak_dropout(g.pointer, dx.pointer, g.count, p, seed)
            return [dx]
        }
    }
}

/// Mean cross-entropy of `logits` [N, C] against `targets` [N], leaving out targets equal to `ignoreIndex`
/// (the mean is over the targets kept; 0 when none is kept, like a loss that has nothing to learn from).
public func crossEntropy(_ logits: Tensor, _ targets: IntTensor, ignoreIndex: Int32 = -100) -> Tensor {
    precondition(logits.rank == 2, "crossEntropy: logits must be [N, C], got \(logits.shape)")
    let (rows, n) = (logits.shape[0], logits.shape[1])
    precondition(targets.shape == [rows], "crossEntropy: targets of shape \(targets.shape) for logits \(logits.shape)")
    let lse = Tensor(uninitializedShape: [rows])
    var kept = 0
    let total = targets.scalars.withUnsafeBufferPointer { t in
        ak_cross_entropy_forward(logits.pointer, t.baseAddress, rows, n, ignoreIndex, lse.pointer, &kept)
    }
    precondition(kept >= 0, "crossEntropy: target \(kept < 0 ? targets.scalars[-1 - kept] : 0) at row \(-1 - kept) is out of range [0, \(n))")
    let loss = Tensor(scalar: kept > 0 ? Float(total / Double(kept)) : 0)
    let ld = logits.detach()
    return loss.record("cross_entropy", [logits]) { g in
        let dx = Tensor(uninitializedShape: ld.shape)
        let scale = kept > 0 ? g.item / Float(kept) : 0
        targets.scalars.withUnsafeBufferPointer { t in
            ak_cross_entropy_backward(ld.pointer, t.baseAddress, lse.pointer, rows, n, ignoreIndex, scale, dx.pointer)
        }
        return [dx]
    }
}

/// Rotary position embedding of x [B, T, nH, hd]: the pair (x[2i], x[2i+1]) of the token at position
/// `positionOffset + t` is rotated by the angle position * base^(-2i/hd).
public func rope(_ x: Tensor, base: Float, positionOffset: Int = 0) -> Tensor {
    precondition(x.rank == 4 && x.shape[3] % 2 == 0, "rope: input must be [B, T, heads, headDim] with an even headDim, got \(x.shape)")
    let (b, t, h, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let y = Tensor(uninitializedShape: x.shape)
    ak_rope(x.pointer, y.pointer, b, t, h, d, base, positionOffset, 0)
    return y.record("rope", [x]) { g in
        let dx = Tensor(uninitializedShape: g.shape)
        ak_rope(g.pointer, dx.pointer, b, t, h, d, base, positionOffset, 1)
        return [dx]
    }
}

/// Fused scaled dot-product attention. q [B, nH, Tq, hd], k and v [B, nH, Tk, hd] -> [B, nH, Tq, hd].
/// scores = scale * q k^T (scale defaults to 1/sqrt(hd)); padding keys (keyMask [B, Tk] == 0) get -10000
/// added; with `causal`, query i sees keys j <= i + (Tk - Tq); softmax; dropout on the probabilities with
/// probability `dropout` (a mask derived from `seed`); times v. The probabilities are recomputed in the
/// backward rather than kept.
public func scaledDotProductAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, keyMask: Tensor? = nil,
                                      causal: Bool = false, scale: Float? = nil,
                                      dropout: Float = 0, seed: UInt64 = 0) -> Tensor {
    precondition(q.rank == 4 && k.rank == 4 && v.rank == 4, "attention: q, k, v must be [B, heads, T, headDim], got \(q.shape), \(k.shape), \(v.shape)")
    let (b, h, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let tk = k.shape[2]
    precondition(k.shape == [b, h, tk, d] && v.shape == k.shape,
                 "attention: q \(q.shape), k \(k.shape), v \(v.shape) do not agree")
    let attention = Attention(b: b, h: h, tq: tq, tk: tk, d: d, keyMask: keyMask, causal: causal, scale: scale,
                              dropout: dropout, seed: seed)
    let out = Tensor(uninitializedShape: q.shape)
    let lse = attention.forward(q.pointer, k.pointer, v.pointer, out.pointer)
    let (qd, kd, vd, od) = (q.detach(), k.detach(), v.detach(), out.detach())
    return out.record("attention", [q, k, v]) { g in
        let (dq, dk, dv) = (Tensor(uninitializedShape: qd.shape), Tensor(uninitializedShape: kd.shape),
                            Tensor(uninitializedShape: vd.shape))
        attention.backward(qd.pointer, kd.pointer, vd.pointer, od.pointer, lse, g.pointer, dq.pointer, dk.pointer, dv.pointer)
        return [dq, dk, dv]
    }
}

/// Self-attention on heads packed by `splitHeads`: qkv [3, B, nH, T, hd] -> [B, nH, T, hd], as
/// `scaledDotProductAttention(q, k, v, ...)`, with the gradient written back into one packed tensor.
public func scaledDotProductAttention(packed qkv: Tensor, keyMask: Tensor? = nil, causal: Bool = false,
                                      scale: Float? = nil, dropout: Float = 0, seed: UInt64 = 0) -> Tensor {
    precondition(qkv.rank == 5 && qkv.shape[0] == 3, "attention: packed qkv must be [3, B, heads, T, headDim], got \(qkv.shape)")
    let (b, h, t, d) = (qkv.shape[1], qkv.shape[2], qkv.shape[3], qkv.shape[4])
    let part = b * h * t * d
    let attention = Attention(b: b, h: h, tq: t, tk: t, d: d, keyMask: keyMask, causal: causal, scale: scale,
                              dropout: dropout, seed: seed)
    let out = Tensor(uninitializedShape: [b, h, t, d])
    let p = qkv.pointer
    let lse = attention.forward(p, p + part, p + 2 * part, out.pointer)
    let (xd, od) = (qkv.detach(), out.detach())
    return out.record("attention", [qkv]) { g in
        let dx = Tensor(uninitializedShape: xd.shape)
        let (x, dp) = (xd.pointer, dx.pointer)
        attention.backward(x, x + part, x + 2 * part, od.pointer, lse, g.pointer, dp, dp + part, dp + 2 * part)
        return [dx]
    }
}

/// The settings of one attention call, shared by its forward and backward.
struct Attention {
    let b, h, tq, tk, d: Int
    let keyMask: Tensor?
    let causal: Bool
    let scale: Float
    let dropout: Float
    let seed: UInt64

    init(b: Int, h: Int, tq: Int, tk: Int, d: Int, keyMask: Tensor?, causal: Bool, scale: Float?, dropout: Float, seed: UInt64) {
        if let keyMask {
            precondition(keyMask.shape == [b, tk], "attention: keyMask of shape \(keyMask.shape), expected [\(b), \(tk)]")
        }
        precondition(dropout >= 0 && dropout < 1, "attention: dropout \(dropout) must be in [0, 1)")
        (self.b, self.h, self.tq, self.tk, self.d) = (b, h, tq, tk, d)
        self.keyMask = keyMask?.detach()
        self.causal = causal
        self.scale = scale ?? 1 / Float(d).squareRoot()
        self.dropout = dropout
        self.seed = seed
    }

    /// Writes the output; returns the rows' log-sum-exp [B*nH, Tq] for the backward. The keys and values of
    /// head i start at k + i * kvStride and v + i * kvStride (contiguous by default).
    func forward(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>,
                 _ out: UnsafeMutablePointer<Float>, kvStride: Int? = nil) -> Tensor {
        let lse = Tensor(uninitializedShape: [b * h, tq])
        ak_attention_forward(q, k, v, kvStride ?? tk * d, out, lse.pointer, b, h, tq, tk, d, keyMask?.pointer,
                             causal ? 1 : 0, scale, dropout, seed)
        return lse
    }

    func backward(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ v: UnsafePointer<Float>, _ out: UnsafePointer<Float>,
                  _ lse: Tensor, _ dout: UnsafePointer<Float>, _ dq: UnsafeMutablePointer<Float>,
                  _ dk: UnsafeMutablePointer<Float>, _ dv: UnsafeMutablePointer<Float>) {
        ak_attention_backward(q, k, v, out, lse.pointer, dout, dq, dk, dv, b, h, tq, tk, d, keyMask?.pointer,
                              causal ? 1 : 0, scale, dropout, seed)
    }
}
