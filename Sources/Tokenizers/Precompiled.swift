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
    /// Replacement of each ASCII character on its own (nil = unchanged).
    let ascii: [[Unicode.Scalar]?]

    public init(charsmap: [UInt8]) throws {
        let m = try CharsMap(charsmap)
        map = m
        ascii = (0..<128).map { b in
            m.transform([UInt8(b)]).map { Array(String(decoding: $0, as: UTF8.self).unicodeScalars) }
        }
    }

    public func normalize(_ s: inout NormalizedString) {
        if s.isEmpty { return }
        var dest: [(Unicode.Scalar, Int)] = []
        dest.reserveCapacity(s.count)
        var modified = false

        // The Rust bookkeeping: new chars replace old ones; extra chars are insertions (change 1);
        // fewer chars fold the removal into the last emitted char.
        func replace(oldCount: Int, with newScalars: [Unicode.Scalar]) {
            let diff = newScalars.count - oldCount
            for c in newScalars { dest.append((c, 0)) }
            if diff > 0 {
                for k in 0..<diff { dest[dest.count - 1 - k].1 = 1 }
            } else if diff < 0, !dest.isEmpty {
                dest[dest.count - 1].1 += diff
            }
        }
        func scalars(_ bytes: [UInt8]) -> [Unicode.Scalar] { Array(String(decoding: bytes, as: UTF8.self).unicodeScalars) }

        let sc = s.scalars
        let n = sc.count
        // An ASCII character (other than CR, or LF after CR) followed by ASCII or the end is a grapheme
        // on its own (a preceding Prepend character could still join it; such text takes this path too).
        func asciiAlone(_ i: Int) -> Bool {
            sc[i].value < 0x80 && sc[i] != "\r" && (i + 1 == n || sc[i + 1].value < 0x80)
                && !(sc[i] == "\n" && i > 0 && sc[i - 1] == "\r")
        }
        var i = 0
        while i < n {
            if asciiAlone(i) {
                if let r = ascii[Int(sc[i].value)] {
                    modified = true
                    replace(oldCount: 1, with: r)
                } else {
                    dest.append((sc[i], 0))
                }
                i += 1
                continue
            }
            var j = i + 1
            while j < n, !asciiAlone(j) { j += 1 }
            for g in makeString(sc[i..<j]) {
                let gs = Array(g.unicodeScalars)
                let gbytes = Array(String(g).utf8)
                if gbytes.count < 6, let norm = map.transform(gbytes) {
                    modified = true
                    replace(oldCount: gs.count, with: scalars(norm))
                    continue
                }
                for c in gs {
                    if let norm = map.transform(Array(String(c).utf8)) {
                        modified = true
                        replace(oldCount: 1, with: scalars(norm))
                    } else {
                        dest.append((c, 0))
                    }
                }
            }
            i = j
        }
        if modified { s.transform(dest) }
    }
}
