import CKernels

/// The keys and values one self-attention layer has seen, for incremental decoding: a new token's query attends
/// to every earlier token's key without recomputing it. Holds `capacity` positions per head.
public final class KeyValueBuffer {
    public let batch: Int, heads: Int, headDim: Int, capacity: Int
    /// [B * nH, capacity, hd] each; rows 0 ..< count are filled.
    let keys: Tensor, values: Tensor
    /// Positions filled so far.
    public private(set) var count = 0

    public init(batch: Int, heads: Int, headDim: Int, capacity: Int) {
        precondition(batch > 0 && heads > 0 && headDim > 0 && capacity > 0, "KeyValueBuffer: sizes must be positive")
        (self.batch, self.heads, self.headDim, self.capacity) = (batch, heads, headDim, capacity)
        keys = Tensor.zeros([batch * heads, capacity, headDim])
        values = Tensor.zeros([batch * heads, capacity, headDim])
    }

    /// Forgets every position (the buffer can be reused for another sequence).
    public func reset() { count = 0 }

    /// Appends the keys and values of `qkv` ([3, B, nH, T, hd], as `splitHeads` makes them, RoPE applied at
    /// positions count ..< count + T) and returns the attention of its queries over all the positions so far,
    /// query i seeing keys 0 ... count + i when `causal`: [B, nH, T, hd]. No graph is recorded.
    public func attend(_ qkv: Tensor, causal: Bool) -> Tensor {
        precondition(qkv.rank == 5 && qkv.shape[0] == 3 && qkv.shape[1] == batch && qkv.shape[2] == heads
                     && qkv.shape[4] == headDim, "KeyValueBuffer: qkv of shape \(qkv.shape) for [3, \(batch), \(heads), T, \(headDim)]")
        let t = qkv.shape[3]
        precondition(count + t <= capacity, "KeyValueBuffer: \(count) + \(t) positions exceed the capacity \(capacity)")
        let part = batch * heads * t * headDim
        let out = Tensor.zeros([batch, heads, t, headDim])
        let lse = Tensor.zeros([1, t])
        let scale = 1 / Float(headDim).squareRoot()
        for bh in 0..<(batch * heads) {
            let row = bh * capacity * headDim + count * headDim, src = bh * t * headDim
            (keys.pointer + row).update(from: qkv.pointer + part + src, count: t * headDim)
            (values.pointer + row).update(from: qkv.pointer + 2 * part + src, count: t * headDim)
            ak_attention_forward(qkv.pointer + src, keys.pointer + bh * capacity * headDim,
                                 values.pointer + bh * capacity * headDim, out.pointer + src, lse.pointer,
                                 1, 1, t, count + t, headDim, nil, causal ? 1 : 0, scale, 0, 0)
        }
        count += t
        return out
    }
}
