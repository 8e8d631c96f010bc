/// The keys and values one self-attention layer has seen, for incremental decoding: a new token's query attends
/// to every earlier token's key without recomputing it. Holds up to `capacity` positions per head; its storage
/// starts small and doubles as positions come, up to `capacity`.
public final class KeyValueBuffer {
    public let batch: Int, heads: Int, headDim: Int, capacity: Int
    /// [B * nH, allocated, hd] each; rows 0 ..< count are filled.
    private var keys: Tensor, values: Tensor
    /// Positions filled so far.
    public private(set) var count = 0
    /// Positions the storage holds now (at most `capacity`).
    public private(set) var allocated: Int

    /// A buffer for `capacity` positions, with storage for `initialPositions` of them (at most `capacity`) until
    /// more come.
    public init(batch: Int, heads: Int, headDim: Int, capacity: Int, initialPositions: Int = 64) {
        precondition(batch > 0 && heads > 0 && headDim > 0 && capacity > 0 && initialPositions > 0,
                     "KeyValueBuffer: sizes must be positive")
        (self.batch, self.heads, self.headDim, self.capacity) = (batch, heads, headDim, capacity)
        allocated = min(capacity, initialPositions)
        keys = Tensor.zeros([batch * heads, allocated, headDim])
        values = Tensor.zeros([batch * heads, allocated, headDim])
    }

    /// Forgets every position (the buffer can be reused for another sequence).
    public func reset() { truncate(to: 0) }

    /// Forgets the positions from `count` on (those after a padded sequence's own tokens, say).
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= self.count, "KeyValueBuffer: cannot keep \(count) of \(self.count) positions")
        self.count = count
    }

    /// Makes room for `positions` positions: the storage doubles (capped at `capacity`) until it holds them, and
    /// the filled rows move into the new storage.
    private func reserve(_ positions: Int) {
        guard positions > allocated else { return }
        var size = allocated
        while size < positions { size = min(capacity, 2 * size) }
        let (newKeys, newValues) = (Tensor.zeros([batch * heads, size, headDim]), Tensor.zeros([batch * heads, size, headDim]))
        for bh in 0..<(batch * heads) {
            let (src, dst) = (bh * allocated * headDim, bh * size * headDim)
            (newKeys.pointer + dst).update(from: keys.pointer + src, count: count * headDim)
            (newValues.pointer + dst).update(from: values.pointer + src, count: count * headDim)
        }
        (keys, values, allocated) = (newKeys, newValues, size)
    }

    /// Appends the keys and values of `qkv` ([3, B, nH, T, hd], as `splitHeads` makes them, RoPE applied at
    /// positions count ..< count + T) and returns the attention of its queries over all the positions so far,
    /// query i seeing keys 0 ... count + i when `causal`: [B, nH, T, hd]. No graph is recorded.
    public func attend(_ qkv: Tensor, causal: Bool) -> Tensor {
        precondition(qkv.rank == 5 && qkv.shape[0] == 3 && qkv.shape[1] == batch && qkv.shape[2] == heads
                     && qkv.shape[4] == headDim, "KeyValueBuffer: qkv of shape \(qkv.shape) for [3, \(batch), \(heads), T, \(headDim)]")
        let t = qkv.shape[3]
        precondition(count + t <= capacity, "KeyValueBuffer: \(count) + \(t) positions exceed the capacity \(capacity)")
        reserve(count + t)
        let part = batch * heads * t * headDim, rows = t * headDim
        for bh in 0..<(batch * heads) {
            let dst = (bh * allocated + count) * headDim, src = bh * rows
            (keys.pointer + dst).update(from: qkv.pointer + part + src, count: rows)
            (values.pointer + dst).update(from: qkv.pointer + 2 * part + src, count: rows)
        }
        count += t
        let out = Tensor(uninitializedShape: [batch, heads, t, headDim])
        _ = Attention(b: batch, h: heads, tq: t, tk: count, d: headDim, keyMask: nil, causal: causal, scale: nil,
                      dropout: 0, seed: 0)
            .forward(qkv.pointer, keys.pointer, values.pointer, out.pointer, kvStride: allocated * headDim)
        return out
    }
}
