/// A row-major tensor of 32-bit integers: token ids, labels, indices. It carries no gradient.
public struct IntTensor: Equatable {
    public let shape: [Int]
    public var scalars: [Int32]

    public init(_ scalars: [Int32], shape: [Int]) {
        let n = Tensor.elementCount(shape)
        precondition(scalars.count == n, "IntTensor: \(scalars.count) values do not fill shape \(shape) (\(n) elements)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(_ scalars: [Int], shape: [Int]) {
        self.init(scalars.map { Int32(truncatingIfNeeded: $0) }, shape: shape)
    }

    /// A 1-D tensor.
    public init(_ scalars: [Int32]) { self.init(scalars, shape: [scalars.count]) }

    public static func full(_ shape: [Int], _ value: Int32) -> IntTensor {
        IntTensor([Int32](repeating: value, count: Tensor.elementCount(shape)), shape: shape)
    }

    public static func arange(_ n: Int) -> IntTensor { IntTensor((0..<n).map { Int32($0) }, shape: [n]) }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    public func reshaped(_ newShape: [Int]) -> IntTensor {
        let shape = Shape.resolve(newShape, count: count)
        return IntTensor(scalars, shape: shape)
    }

    public subscript(_ index: Int...) -> Int32 { scalars[Shape.check { try Shape.offset(of: index, in: shape) }] }

    /// The values as a Float tensor (e.g. an attention mask).
    public func toFloat() -> Tensor { Tensor(scalars.map { Float($0) }, shape: shape) }
}
