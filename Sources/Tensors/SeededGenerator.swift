import Foundation

/// A seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64). The same seed gives the same
/// numbers on every machine: everything is integer arithmetic except the normal transform, done in Double.
public struct SeededGenerator: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)
    private var spareNormal: Float? = nil

    public init(seed: UInt64) {
        var x = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(&x), splitMix(&x), splitMix(&x), splitMix(&x))
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The number of words in `state`.
    public static let stateWordCount = 5

    /// The generator's whole state as `stateWordCount` words (the four xoshiro words, then the pending normal
    /// variate's bits with bit 32 set when there is one), so that a saved run can resume with the same random numbers.
    public var state: [UInt64] {
        get { [s.0, s.1, s.2, s.3, spareNormal.map { 1 << 32 | UInt64($0.bitPattern) } ?? 0] }
        set {
            precondition(newValue.count == Self.stateWordCount,
                         "SeededGenerator.state takes \(Self.stateWordCount) words, got \(newValue.count)")
            s = (newValue[0], newValue[1], newValue[2], newValue[3])
            spareNormal = newValue[4] >> 32 == 1 ? Float(bitPattern: UInt32(truncatingIfNeeded: newValue[4])) : nil
        }
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// A standard normal Float (Box-Muller).
    public mutating func nextNormal() -> Float {
        if let z = spareNormal {
            spareNormal = nil
            return z
        }
        let u1 = (Double(next() >> 11) + 1) * 0x1p-53   // (0, 1]
        let u2 = Double(next() >> 11) * 0x1p-53         // [0, 1)
        let r = (-2 * Foundation.log(u1)).squareRoot()
        spareNormal = Float(r * Foundation.sin(2 * Double.pi * u2))
        return Float(r * Foundation.cos(2 * Double.pi * u2))
    }

    /// A uniform integer in [0, bound).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt: bound must be positive, got \(bound)")
        return Int(next(upperBound: UInt64(bound)))
    }
}
