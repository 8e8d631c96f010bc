import Foundation

/// A piece of text being normalized, as unicode scalars, with for every scalar the range of
/// original scalars (code points) it comes from. Mirrors the alignment rules of the Rust
/// `tokenizers` crate (which tracks bytes; we track code points, which is what Python reports).
public struct NormalizedString {
    public var scalars: [Unicode.Scalar]
    /// For each normalized scalar, the original code-point range [start, end).
    public var starts: [Int32]
    public var ends: [Int32]
    /// Original start / end of this piece (absolute in the input text).
    public var originalStart: Int
    public var originalEnd: Int

    public init(_ scalars: [Unicode.Scalar], offset: Int = 0) {
        self.scalars = scalars
        let n = scalars.count
        starts = (0..<n).map { Int32($0 + offset) }
        ends = (0..<n).map { Int32($0 + offset + 1) }
        originalStart = offset
        originalEnd = offset + n
    }

    public init(_ text: String) { self.init(Array(text.unicodeScalars)) }

    init(scalars: [Unicode.Scalar], starts: [Int32], ends: [Int32], originalStart: Int, originalEnd: Int) {
        self.scalars = scalars
        self.starts = starts
        self.ends = ends
        self.originalStart = originalStart
        self.originalEnd = originalEnd
    }

    public var isEmpty: Bool { scalars.isEmpty }
    public var count: Int { scalars.count }
    public var string: String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: scalars)
        return String(s)
    }

    /// Slice by normalized positions.
    func slice(_ r: Range<Int>) -> NormalizedString {
        let os = r.isEmpty ? (r.lowerBound < count ? Int(starts[r.lowerBound]) : originalEnd) : Int(starts[r.lowerBound])
        let oe = r.isEmpty ? os : Int(ends[r.upperBound - 1])
        return NormalizedString(scalars: Array(scalars[r]), starts: Array(starts[r]), ends: Array(ends[r]),
                                originalStart: os, originalEnd: oe)
    }

    /// Original range for a normalized range.
    func originalRange(_ r: Range<Int>) -> (Int, Int) {
        if r.isEmpty {
            return (r.lowerBound, r.lowerBound)
        }
        return (Int(starts[r.lowerBound]), Int(ends[r.upperBound - 1]))
    }

    /// Rust's `transform_range`: replaces normalized `range` by `dest`, where each entry carries a change:
    /// 0 = replaces one char, 1 = inserted, -n = replaces one char and removes n more.
    /// `initialOffset` chars of the range are removed before the first destination char.
    mutating func transform(range: Range<Int>, dest: [(Unicode.Scalar, Int)], initialOffset: Int) {
        var ns: [Unicode.Scalar] = []
        var nst: [Int32] = []
        var nen: [Int32] = []
        ns.reserveCapacity(scalars.count + dest.count)
        nst.reserveCapacity(scalars.count + dest.count)
        nen.reserveCapacity(scalars.count + dest.count)
        ns.append(contentsOf: scalars[0..<range.lowerBound])
        nst.append(contentsOf: starts[0..<range.lowerBound])
        nen.append(contentsOf: ends[0..<range.lowerBound])
        var offset = range.lowerBound + initialOffset
        for (c, change) in dest {
            let idx = offset
            var s: Int32, e: Int32
            if change > 0 {
                if idx < 1 {
                    s = Int32(originalStart); e = Int32(originalStart)
                } else {
                    s = starts[idx - 1]; e = ends[idx - 1]
                }
            } else {
                if idx < count { s = starts[idx]; e = ends[idx] } else if count > 0 { s = ends[count - 1]; e = s } else { s = Int32(originalStart); e = s }
                offset += 1
                if change < 0 { offset += -change }
            }
            ns.append(c); nst.append(s); nen.append(e)
        }
        ns.append(contentsOf: scalars[range.upperBound...])
        nst.append(contentsOf: starts[range.upperBound...])
        nen.append(contentsOf: ends[range.upperBound...])
        scalars = ns; starts = nst; ends = nen
    }

    mutating func transform(_ dest: [(Unicode.Scalar, Int)], initialOffset: Int = 0) {
        transform(range: 0..<count, dest: dest, initialOffset: initialOffset)
    }

    /// Per-scalar mapping to zero or more scalars (first one replaces, others are inserted).
    /// A scalar mapped to nothing is removed.
    mutating func mapScalars(_ f: (Unicode.Scalar) -> [Unicode.Scalar]?) {
        // Nothing to do until the first scalar that changes.
        var first = 0
        var firstRep: [Unicode.Scalar]? = nil
        while first < count {
            if let r = f(scalars[first]) { firstRep = r; break }
            first += 1
        }
        guard let rep0 = firstRep else { return }
        if rep0.count == 1 {
            // One-to-one replacements can be done in place.
            var inPlace = true
            scalars[first] = rep0[0]
            var i = first + 1
            while i < count {
                if let r = f(scalars[i]) {
                    if r.count == 1 { scalars[i] = r[0] } else { inPlace = false; break }
                }
                i += 1
            }
            if inPlace { return }
            // Fall back for the rest (already-replaced scalars map to themselves or again; redo from i).
            var ns = Array(scalars[0..<i]), nst = Array(starts[0..<i]), nen = Array(ends[0..<i])
            for j in i..<count {
                if let r = f(scalars[j]) {
                    for x in r { ns.append(x); nst.append(starts[j]); nen.append(ends[j]) }
                } else { ns.append(scalars[j]); nst.append(starts[j]); nen.append(ends[j]) }
            }
            scalars = ns; starts = nst; ends = nen
            return
        }
        var ns: [Unicode.Scalar] = []
        var nst: [Int32] = []
        var nen: [Int32] = []
        ns.reserveCapacity(count); nst.reserveCapacity(count); nen.reserveCapacity(count)
        var changed = false
        for i in 0..<count {
            if let rep = f(scalars[i]) {
                changed = true
                for r in rep { ns.append(r); nst.append(starts[i]); nen.append(ends[i]) }
            } else {
                ns.append(scalars[i]); nst.append(starts[i]); nen.append(ends[i])
            }
        }
        if changed { scalars = ns; starts = nst; ends = nen }
    }

    /// Keeps only the scalars for which `keep` is true (alignments follow their scalars).
    mutating func filter(_ keep: (Unicode.Scalar) -> Bool) {
        guard scalars.contains(where: { !keep($0) }) else { return }
        var ns: [Unicode.Scalar] = []
        var nst: [Int32] = []
        var nen: [Int32] = []
        for i in 0..<count where keep(scalars[i]) {
            ns.append(scalars[i]); nst.append(starts[i]); nen.append(ends[i])
        }
        if ns.count != count { scalars = ns; starts = nst; ends = nen }
    }

    /// Rust's `prepend`: every inserted char takes the alignment of the first char.
    mutating func prepend(_ s: [Unicode.Scalar]) {
        guard !isEmpty, !s.isEmpty else { return }
        let a = starts[0], b = ends[0]
        scalars.insert(contentsOf: s, at: 0)
        starts.insert(contentsOf: [Int32](repeating: a, count: s.count), at: 0)
        ends.insert(contentsOf: [Int32](repeating: b, count: s.count), at: 0)
    }

    /// Rust's `replace`: each match is replaced by `content`; every new char is aligned with the
    /// last char of the match.
    mutating func replace(matches: [(Range<Int>, Bool)], content: [Unicode.Scalar]) {
        guard matches.contains(where: { $0.1 }) else { return }
        var ns: [Unicode.Scalar] = []
        var nst: [Int32] = []
        var nen: [Int32] = []
        ns.reserveCapacity(count); nst.reserveCapacity(count); nen.reserveCapacity(count)
        for (r, isMatch) in matches {
            if isMatch {
                let idx = r.upperBound
                let s: Int32 = idx < 1 ? Int32(originalStart) : starts[idx - 1]
                let e: Int32 = idx < 1 ? Int32(originalStart) : ends[idx - 1]
                for c in content { ns.append(c); nst.append(s); nen.append(e) }
            } else {
                ns.append(contentsOf: scalars[r]); nst.append(contentsOf: starts[r]); nen.append(contentsOf: ends[r])
            }
        }
        scalars = ns; starts = nst; ends = nen
    }

    /// Rust's `split` with a delimiter behavior; `matches` covers the whole string.
    func split(matches: [(Range<Int>, Bool)], behavior: SplitBehavior) -> [NormalizedString] {
        var splits: [(Range<Int>, Bool)] = []  // (range, remove)
        switch behavior {
        case .isolated:
            splits = matches.map { ($0.0, false) }
        case .removed:
            splits = matches
        case .contiguous:
            var prev = false
            for (r, m) in matches {
                if m == prev, let last = splits.last {
                    splits[splits.count - 1].0 = last.0.lowerBound..<r.upperBound
                } else {
                    splits.append((r, false))
                }
                prev = m
            }
        case .mergedWithPrevious:
            var prev = false
            for (r, m) in matches {
                if m && !prev, let last = splits.last {
                    splits[splits.count - 1].0 = last.0.lowerBound..<r.upperBound
                } else {
                    splits.append((r, false))
                }
                prev = m
            }
        case .mergedWithNext:
            var prev = false
            for (r, m) in matches.reversed() {
                if m && !prev, let last = splits.last {
                    splits[splits.count - 1].0 = r.lowerBound..<last.0.upperBound
                } else {
                    splits.append((r, false))
                }
                prev = m
            }
            splits.reverse()
        }
        return splits.filter { !$0.1 }.map { slice($0.0) }
    }

    /// Match list for a per-scalar predicate (Rust's `Fn(char) -> bool` pattern).
    func matches(where pred: (Unicode.Scalar) -> Bool) -> [(Range<Int>, Bool)] {
        if isEmpty { return [(0..<0, false)] }
        var out: [(Range<Int>, Bool)] = []
        var last = 0
        for i in 0..<count where pred(scalars[i]) {
            if last < i { out.append((last..<i, false)) }
            out.append((i..<(i + 1), true))
            last = i + 1
        }
        if last < count { out.append((last..<count, false)) }
        return out
    }

    /// Strips whitespace on the left and/or right.
    mutating func strip(left: Bool, right: Bool) {
        var a = 0, b = count
        if left { while a < b, scalars[a].properties.isWhitespace { a += 1 } }
        if right { while b > a, scalars[b - 1].properties.isWhitespace { b -= 1 } }
        if a == 0 && b == count { return }
        scalars = Array(scalars[a..<b]); starts = Array(starts[a..<b]); ends = Array(ends[a..<b])
    }
}

/// Turns a list of match ranges (from a regex or a literal search) into Rust's full coverage list.
func coverage(_ found: [Range<Int>], count: Int) -> [(Range<Int>, Bool)] {
    if count == 0 { return [(0..<0, false)] }
    var out: [(Range<Int>, Bool)] = []
    var prev = 0
    for m in found {
        if prev != m.lowerBound { out.append((prev..<m.lowerBound, false)) }
        out.append((m, true))
        prev = m.upperBound
    }
    if prev != count { out.append((prev..<count, false)) }
    return out
}

func invertCoverage(_ m: [(Range<Int>, Bool)]) -> [(Range<Int>, Bool)] { m.map { ($0.0, !$0.1) } }

public enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// A model token: id, string value, and range in the split's normalized scalars.
public struct ModelToken: Sendable {
    public var id: Int
    public var value: String
    public var start: Int
    public var end: Int
}

/// A split of the pre-tokenized string, possibly already tokenized (added tokens).
struct Split {
    var normalized: NormalizedString
    var tokens: [ModelToken]?
}

/// The pre-tokenized string: the list of splits produced by added-token extraction and pre-tokenizers.
struct PreTokenizedString {
    var splits: [Split]

    /// Applies `f` to every split that has no tokens yet; empty results are dropped.
    mutating func split(_ f: (Int, NormalizedString) throws -> [NormalizedString]) rethrows {
        var out: [Split] = []
        out.reserveCapacity(splits.count)
        for (i, s) in splits.enumerated() {
            if s.tokens != nil { out.append(s); continue }
            for n in try f(i, s.normalized) where !n.isEmpty { out.append(Split(normalized: n, tokens: nil)) }
        }
        splits = out
    }

    mutating func splitWithTokens(_ f: (NormalizedString) throws -> [Split]) rethrows {
        var out: [Split] = []
        for s in splits {
            if s.tokens != nil { out.append(s); continue }
            for n in try f(s.normalized) where !n.normalized.isEmpty { out.append(n) }
        }
        splits = out
    }

    mutating func normalize(_ f: (inout NormalizedString) throws -> Void) rethrows {
        for i in splits.indices where splits[i].tokens == nil {
            try f(&splits[i].normalized)
        }
    }
}
