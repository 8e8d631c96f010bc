/// A misuse of a tensor operation, with a message naming the shapes or values involved.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Shape rules shared by the operations. Each rule throws a `TensorError` naming what is wrong; the operations
/// call them through `Shape.check`, which stops the program with that message (a shape mismatch is a bug in
/// the calling code, like an out-of-range array index).
public enum Shape {
    /// Runs a rule and stops with its message when it throws.
    @inline(__always)
    static func check<T>(_ rule: () throws -> T) -> T {
        do { return try rule() } catch { preconditionFailure("\(error)") }
    }

    /// The broadcast shape of two shapes (NumPy rules: align on the right, sizes equal or one of them 1).
    public static func broadcast(_ a: [Int], _ b: [Int]) throws -> [Int] {
        if a == b { return a }
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw TensorError("shapes \(a) and \(b) cannot be broadcast together (dimension \(i): \(da) vs \(db))")
            }
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// The number of elements of `shape` (the product of its sizes); throws when a size is negative or the product
    /// does not fit in an `Int`, so that sizes a user gave never trap on an arithmetic overflow.
    public static func elementCount(_ shape: [Int]) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw TensorError("negative dimension in shape \(shape)") }
            let (product, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { throw TensorError("shape \(shape) has more elements than an Int can count") }
            n = product
        }
        return n
    }

    /// Normalises a possibly negative axis.
    public static func axis(_ axis: Int, rank: Int) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else { throw TensorError("axis \(axis) out of range for rank \(rank)") }
        return a
    }

    /// The row-major position of a multi-index.
    public static func offset(of index: [Int], in shape: [Int]) throws -> Int {
        guard index.count == shape.count else {
            throw TensorError("subscript: \(index.count) indices for shape \(shape)")
        }
        var offset = 0
        for (i, d) in zip(index, shape) {
            guard i >= 0 && i < d else { throw TensorError("subscript: index \(index) out of range for shape \(shape)") }
            offset = offset * d + i
        }
        return offset
    }

    /// Replaces a single -1 in `shape` by the size that makes it hold `count` elements.
    public static func resolve(_ shape: [Int], count: Int) -> [Int] {
        check { try resolving(shape, count: count) }
    }

    public static func resolving(_ shape: [Int], count: Int) throws -> [Int] {
        var out = shape
        let unknown = shape.indices.filter { shape[$0] == -1 }
        guard unknown.count <= 1 else { throw TensorError("reshape: more than one -1 in \(shape)") }
        let known = shape.filter { $0 != -1 }.reduce(1, *)
        if let u = unknown.first {
            guard known > 0, count % known == 0 else {
                throw TensorError("reshape: cannot infer -1 in \(shape) for \(count) elements")
            }
            out[u] = count / known
        }
        guard out.allSatisfy({ $0 >= 0 }), out.reduce(1, *) == count else {
            throw TensorError("reshape: shape \(shape) does not hold \(count) elements")
        }
        return out
    }
}
