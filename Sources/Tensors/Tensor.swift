import CKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 64-byte aligned block of Float32 values, shared by a tensor and its reshaped views.
public final class Storage {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    private let bytes: Int

    init(count: Int) {
        self.count = count
        bytes = BlockCache.shared.roundedSize(max(count, 1) * MemoryLayout<Float>.stride)
        pointer = BlockCache.shared.allocate(bytes).bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit { BlockCache.shared.release(UnsafeMutableRawPointer(pointer), bytes) }
}

/// Reuses large blocks of tensor memory. A training step allocates and frees the same sizes again and
/// again; taking them from the system each time costs a page fault and a clear per page. Blocks of 1 MB and
/// more are kept by size after they are freed, up to `limit` bytes in all, and handed out again.
final class BlockCache: Sendable {
    static let shared = BlockCache()
    /// Bytes the cache may hold: ALBERTMOE_CACHE_MB, else 1024 MB.
    let limit: Int
    /// Free blocks by size (their addresses, as integers so that the state is Sendable) and the bytes they hold.
    private let state = Mutex<(free: [Int: [UInt]], held: Int)>(([:], 0))
    private static let large = 1 << 20
    private static let granule = 64 << 10

    init() {
        let mb = getenv("ALBERTMOE_CACHE_MB").flatMap { Int(String(cString: $0)) } ?? 1024
        limit = max(mb, 0) << 20
        ak_keep_freed_memory()
    }

    func roundedSize(_ bytes: Int) -> Int {
        bytes < BlockCache.large ? bytes : (bytes + BlockCache.granule - 1) / BlockCache.granule * BlockCache.granule
    }

    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= BlockCache.large {
            let block = state.withLock { s -> UInt? in
                guard let block = s.free[bytes]?.popLast() else { return nil }
                s.held -= bytes
                return block
            }
            if let block { return UnsafeMutableRawPointer(bitPattern: block)! }
        }
        return ak_alloc("Tensor", bytes)   // stops the process, naming the byte count, when memory runs out
    }

    func release(_ block: UnsafeMutableRawPointer, _ bytes: Int) {
        if bytes >= BlockCache.large {
            let kept = state.withLock { s -> Bool in
                guard s.held + bytes <= limit else { return false }
                s.free[bytes, default: []].append(UInt(bitPattern: block))
                s.held += bytes
                return true
            }
            if kept { return }
        }
        Glibc.free(block)
    }

    /// Gives every cached block back to the system.
    func trim() {
        let blocks = state.withLock { s -> [UInt] in
            defer { s = ([:], 0) }
            return s.free.values.flatMap { $0 }
        }
        for b in blocks { Glibc.free(UnsafeMutableRawPointer(bitPattern: b)) }
    }
}

/// A row-major, contiguous Float32 tensor of any rank that can record the operations applied to it, so
/// that `backward()` computes gradients (reverse-mode automatic differentiation).
public final class Tensor {
    /// The size of each dimension; `[]` for a scalar.
    public let shape: [Int]
    /// The number of elements (the product of `shape`).
    public let count: Int
    public let storage: Storage
    /// Whether gradients flow to this tensor. Set it on leaves (parameters); results of operations on such
    /// tensors require grad too while gradient recording is on.
    public var requiresGrad: Bool
    /// The accumulated gradient of a leaf after `backward()`; `nil` until then or after `zeroGrad()`.
    public var grad: Tensor?
    /// How this tensor was computed (nil for leaves and for results computed without recording).
    var node: Node?

    /// A new tensor over fresh, uninitialised storage.
    init(uninitializedShape shape: [Int]) {
        self.shape = shape
        self.count = Tensor.elementCount(shape)
        self.storage = Storage(count: count)
        self.requiresGrad = false
    }

    /// A view with another shape over the same storage.
    init(shape: [Int], storage: Storage) {
        self.shape = shape
        self.count = Tensor.elementCount(shape)
        self.storage = storage
        self.requiresGrad = false
    }

    static func elementCount(_ shape: [Int]) -> Int { Shape.check { try Shape.elementCount(shape) } }

    // MARK: Creation

    /// A tensor holding `values` with the given shape.
    public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
        let n = Tensor.elementCount(shape)
        precondition(values.count == n, "Tensor: \(values.count) values do not fill shape \(shape) (\(n) elements)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { src in
            if n > 0 { pointer.update(from: src.baseAddress!, count: n) }
        }
        self.requiresGrad = requiresGrad
    }

    /// A 1-D tensor holding `values`.
    public convenience init(_ values: [Float], requiresGrad: Bool = false) {
        self.init(values, shape: [values.count], requiresGrad: requiresGrad)
    }

    /// A scalar (rank-0) tensor.
    public convenience init(scalar: Float, requiresGrad: Bool = false) {
        self.init([scalar], shape: [], requiresGrad: requiresGrad)
    }

    public static func full(_ shape: [Int], _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        t.pointer.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 0, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    public static func zeros(like other: Tensor) -> Tensor { zeros(other.shape) }

    /// `start, start + step, ...` below `end`, as a 1-D tensor.
    public static func arange(_ start: Float = 0, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange: step must not be 0")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        let t = Tensor(uninitializedShape: [n])
        for i in 0..<n { t.pointer[i] = start + Float(i) * step }
        return t
    }

    /// Uniform numbers in [low, high) from `generator`.
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, generator: inout SeededGenerator,
                               requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.pointer[i] = low + (high - low) * generator.nextUniform() }
        t.requiresGrad = requiresGrad
        return t
    }

    /// Normal numbers with the given mean and standard deviation from `generator`.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, generator: inout SeededGenerator,
                              requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        for i in 0..<t.count { t.pointer[i] = mean + std * generator.nextNormal() }
        t.requiresGrad = requiresGrad
        return t
    }

    // MARK: Access

    /// The first element's address. Writing through it bypasses autograd: use it for leaves (optimizers,
    /// loading weights) or freshly made tensors only.
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    public var rank: Int { shape.count }

    /// All elements, row-major.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// The row-major position of the first NaN or infinity, or nil when every element is finite.
    public var firstNonFiniteIndex: Int? {
        let i = ak_first_nonfinite(pointer, count)
        return i < 0 ? nil : i
    }

    /// The value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, not 1")
        return pointer[0]
    }

    /// The element at a multi-index.
    public subscript(_ index: Int...) -> Float { pointer[Shape.check { try Shape.offset(of: index, in: shape) }] }

    /// Row-major strides of `shape`.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// A copy that shares nothing and records nothing.
    public func copy() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        if count > 0 { t.pointer.update(from: pointer, count: count) }
        return t
    }

    /// The same values, cut off from the graph (no gradient flows through it). Shares storage.
    public func detach() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// Clears the gradient.
    public func zeroGrad() { grad = nil }

    /// Overwrites the values with those of `other` (same element count), outside of autograd.
    public func assign(_ other: Tensor) {
        precondition(other.count == count, "assign: shape \(other.shape) into shape \(shape)")
        if count > 0 { pointer.update(from: other.pointer, count: count) }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(16).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 16 ? ", ..." : "")]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
