import Foundation

/// SentencePiece's precompiled character map: a darts-clone double-array trie over UTF-8
/// bytes whose values index a blob of NUL-terminated replacement strings.
struct CharsMap {
    let array: [UInt32]
    let normalized: [UInt8]

    init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 4 else { throw TokenizerError.malformedModel("charsmap too short") }
        let trieSize = Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        guard trieSize % 4 == 0, 4 + trieSize <= bytes.count, trieSize > 0 else { throw TokenizerError.malformedModel("bad charsmap trie size") }
        var arr = [UInt32](repeating: 0, count: trieSize / 4)
        for i in 0..<arr.count {
            let o = 4 + i * 4
            arr[i] = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        array = arr
        normalized = Array(bytes[(4 + trieSize)...])
    }

    @inline(__always) private func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
    @inline(__always) private func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) private func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) private func value(_ u: UInt32) -> Int { Int(u & ((1 << 31) - 1)) }

    /// All (length, value) pairs of prefixes of `key` present in the trie, shortest first.
    func commonPrefixSearch<C: Collection>(_ key: C) -> [(Int, Int)] where C.Element == UInt8 {
        var out: [(Int, Int)] = []
        var pos = 0
        guard !array.isEmpty else { return out }
        var unit = array[pos]
        pos ^= offset(unit)
        var len = 0
        for c in key {
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0, pos < array.count else { return out }
            unit = array[pos]
            if label(unit) != UInt32(c) { return out }
            len += 1
            pos ^= offset(unit)
            guard pos >= 0, pos < array.count else { return out }
            if hasLeaf(unit) { out.append((len, value(array[pos]))) }
        }
        return out
    }

    func replacement(at index: Int) -> [UInt8]? {
        guard index >= 0, index <= normalized.count else { return nil }
        var e = index
        while e < normalized.count, normalized[e] != 0 { e += 1 }
        return Array(normalized[index..<e])
    }

    /// The `spm_precompiled` transform: the replacement of the *first* (shortest) prefix match.
    func transform(_ chunk: [UInt8]) -> [UInt8]? {
        guard let first = commonPrefixSearch(chunk).first else { return nil }
        return replacement(at: first.1)
    }
}

public struct PrecompiledNormalizer: Normalizer {
    let map: CharsMap

    public init(charsmap: [UInt8]) throws { map = try CharsMap(charsmap) }

    public func normalize(_ s: inout NormalizedString) {
        if s.isEmpty { return }
        var dest: [(Unicode.Scalar, Int)] = []
        dest.reserveCapacity(s.count)
        var modified = false

        func replace(oldCount: Int, with new: [UInt8]) {
            let newScalars = Array(String(decoding: new, as: UTF8.self).unicodeScalars)
            let diff = newScalars.count - oldCount
            for c in newScalars { dest.append((c, 0)) }
            if diff > 0 {
                for k in 0..<diff { dest[dest.count - 1 - k].1 = 1 }
            } else if diff < 0, !dest.isEmpty {
                dest[dest.count - 1].1 += diff
            }
        }

        let text = s.string
        var idx = 0
        for g in text {
            let gs = Array(g.unicodeScalars)
            defer { idx += gs.count }
            let gbytes = Array(String(g).utf8)
            if gbytes.count < 6, let norm = map.transform(gbytes) {
                modified = true
                replace(oldCount: gs.count, with: norm)
                continue
            }
            for c in gs {
                if let norm = map.transform(Array(String(c).utf8)) {
                    modified = true
                    replace(oldCount: 1, with: norm)
                } else {
                    dest.append((c, 0))
                }
            }
        }
        if modified { s.transform(dest) }
    }
}
