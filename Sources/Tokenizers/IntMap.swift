/// A hash map from `UInt64` keys to `UInt64` values for the hot integer-keyed tables (trie edges, BPE
/// merges): open addressing with linear probing and a multiplicative hash, so a lookup is a multiply, a
/// shift and usually one probe in one cache line (Swift's `Dictionary` runs SipHash on every lookup).
/// `UInt64.max` cannot be a key (it marks empty slots).
struct U64Map {
    private struct Slot {
        var key: UInt64
        var value: UInt64
    }
    private static let empty = UInt64.max
    private var slots: [Slot]
    private var shift: UInt64
    private(set) var count = 0

    /// A map that holds `capacity` entries without growing.
    init(capacity: Int = 0) {
        var n = 16
        while n < 2 * capacity { n *= 2 }
        slots = [Slot](repeating: Slot(key: U64Map.empty, value: 0), count: n)
        shift = UInt64(64 - n.trailingZeroBitCount)
    }

    @inline(__always) private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    @inline(__always) func get(_ key: UInt64) -> UInt64? {
        slots.withUnsafeBufferPointer { s in
            let mask = s.count - 1
            var i = home(key)
            while true {
                let x = s[i].key
                if x == key { return s[i].value }
                if x == U64Map.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// The value of `key`; when absent, `value` is inserted and returned.
    @discardableResult
    mutating func getOrInsert(_ key: UInt64, _ value: UInt64) -> UInt64 {
        slots[slot(key, insertingIfAbsent: value).index].value
    }

    /// Inserts `key` with `value`, replacing the value it had.
    mutating func set(_ key: UInt64, _ value: UInt64) {
        let (i, inserted) = slot(key, insertingIfAbsent: value)
        if !inserted { slots[i].value = value }
    }

    /// The slot holding `key`, which is given `value` first when absent (`inserted`).
    private mutating func slot(_ key: UInt64, insertingIfAbsent value: UInt64) -> (index: Int, inserted: Bool) {
        precondition(key != U64Map.empty, "U64Map: reserved key")
        if 2 * (count + 1) > slots.count { grow() }
        let mask = slots.count - 1
        var i = home(key)
        while true {
            let x = slots[i].key
            if x == key { return (i, false) }
            if x == U64Map.empty {
                slots[i] = Slot(key: key, value: value)
                count += 1
                return (i, true)
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        self = U64Map(capacity: old.count)
        for s in old where s.key != U64Map.empty { getOrInsert(s.key, s.value) }
    }
}
