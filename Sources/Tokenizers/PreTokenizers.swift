import Foundation

/// A pre-tokenizer splits the (normalized) text into words.
protocol PreTokenizer {
    func preTokenize(_ p: inout PreTokenizedString) throws
}

struct BertPreTokenizer: PreTokenizer {
    /// Whitespace removed, then punctuation isolated: done in one pass (same result).
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in
            var out: [NormalizedString] = []
            let s = n.scalars
            var start = -1
            for i in 0..<s.count {
                let c = s[i]
                if c.isWS {
                    if start >= 0 { out.append(n.slice(start..<i)); start = -1 }
                } else if c.isPunctuationChar {
                    if start >= 0 { out.append(n.slice(start..<i)); start = -1 }
                    out.append(n.slice(i..<(i + 1)))
                } else if start < 0 {
                    start = i
                }
            }
            if start >= 0 { out.append(n.slice(start..<s.count)) }
            return out
        }
    }
}

/// `\w+|[^\w\s]+`, everything else removed.
struct WhitespacePreTokenizer: PreTokenizer {
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in
            var out: [NormalizedString] = []
            var i = 0
            let s = n.scalars
            while i < s.count {
                let c = s[i]
                if c.isWordChar {
                    var j = i + 1
                    while j < s.count, s[j].isWordChar { j += 1 }
                    out.append(n.slice(i..<j)); i = j
                } else if c.isWS {
                    i += 1
                } else {
                    var j = i + 1
                    while j < s.count, !s[j].isWordChar, !s[j].isWS { j += 1 }
                    out.append(n.slice(i..<j)); i = j
                }
            }
            return out
        }
    }
}

struct WhitespaceSplitPreTokenizer: PreTokenizer {
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in n.split(matches: n.matches(where: { $0.isWS }), behavior: .removed) }
    }
}

struct CharDelimiterSplitPreTokenizer: PreTokenizer {
    let delimiter: Unicode.Scalar
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in n.split(matches: n.matches(where: { $0 == delimiter }), behavior: .removed) }
    }
}

struct PunctuationPreTokenizer: PreTokenizer {
    let behavior: SplitBehavior
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in n.split(matches: n.matches(where: { $0.isPunctuationChar }), behavior: behavior) }
    }
}

struct DigitsPreTokenizer: PreTokenizer {
    let individualDigits: Bool
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in
            n.split(matches: n.matches(where: { $0.isNumericChar }), behavior: individualDigits ? .isolated : .contiguous)
        }
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let pattern: TextPattern
    let behavior: SplitBehavior
    let invert: Bool
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in
            var m = pattern.coverageMatches(in: n.scalars)
            if invert { m = invertCoverage(m) }
            return n.split(matches: m, behavior: behavior)
        }
    }
}

enum PrependScheme: String { case always, first, never }

struct MetaspacePreTokenizer: PreTokenizer {
    let replacement: Unicode.Scalar
    let prependScheme: PrependScheme
    let splitWords: Bool
    func preTokenize(_ p: inout PreTokenizedString) {
        if splitWords {
            p.split { _, n in splitPieces(n) }
            return
        }
        p.split { _, n0 in
            var n = n0
            n.mapScalars { $0 == " " ? [replacement] : nil }
            switch prependScheme {
            case .always:
                if n.scalars.first != replacement { n.prepend([replacement]) }
            case .first:
                if n.scalars.first != replacement && n.originalStart == 0 { n.prepend([replacement]) }
            case .never: break
            }
            return [n]
        }
    }

    /// Replace ' ' by the replacement, prepend it when the scheme says so, and start a new piece
    /// at every replacement character (Rust's MergedWithNext split), in one pass.
    func splitPieces(_ n: NormalizedString) -> [NormalizedString] {
        let s = n.scalars
        if s.isEmpty { return [] }
        let startsWithRep = s[0] == " " || s[0] == replacement
        let prepend: Bool
        switch prependScheme {
        case .always: prepend = !startsWithRep
        case .first: prepend = !startsWithRep && n.originalStart == 0
        case .never: prepend = false
        }
        var out: [NormalizedString] = []
        var start = 0
        func emit(_ a: Int, _ b: Int, withPrefix: Bool) {
            var sc: [Unicode.Scalar] = []
            var st: [Int32] = []
            var en: [Int32] = []
            let cap = b - a + (withPrefix ? 1 : 0)
            sc.reserveCapacity(cap); st.reserveCapacity(cap); en.reserveCapacity(cap)
            if withPrefix { sc.append(replacement); st.append(n.starts[a]); en.append(n.ends[a]) }
            for i in a..<b {
                sc.append(s[i] == " " ? replacement : s[i]); st.append(n.starts[i]); en.append(n.ends[i])
            }
            out.append(NormalizedString(scalars: sc, starts: st, ends: en,
                                        originalStart: Int(st.first!), originalEnd: Int(en.last!)))
        }
        for i in 1..<max(1, s.count) where s[i] == " " || s[i] == replacement {
            emit(start, i, withPrefix: prepend && start == 0)
            start = i
        }
        emit(start, s.count, withPrefix: prepend && start == 0)
        return out
    }
}

/// GPT-2's byte-to-unicode table.
enum ByteLevelTable {
    static let byteToScalar: [Unicode.Scalar] = {
        var bs: [Int] = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b); cs.append(256 + n); n += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()
    static let scalarToByte: [UInt32: UInt8] = {
        var d: [UInt32: UInt8] = [:]
        for (b, c) in byteToScalar.enumerated() { d[c.value] = UInt8(b) }
        return d
    }()
}

/// Exact scanner for the GPT-2 pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
func gpt2Matches(_ s: [Unicode.Scalar]) -> [Range<Int>] {
    var out: [Range<Int>] = []
    let n = s.count
    var i = 0
    @inline(__always) func isOther(_ c: Unicode.Scalar) -> Bool { !c.isWS && !c.isLetterChar && !c.isNumericChar }
    while i < n {
        let c = s[i]
        if c == "'" && i + 1 < n {
            let d = s[i + 1]
            if d == "s" || d == "t" || d == "m" || d == "d" { out.append(i..<(i + 2)); i += 2; continue }
            if i + 2 < n {
                let e = s[i + 2]
                if (d == "r" && e == "e") || (d == "v" && e == "e") || (d == "l" && e == "l") {
                    out.append(i..<(i + 3)); i += 3; continue
                }
            }
        }
        var start = i
        var j = i
        if c == " " && i + 1 < n { j = i + 1 }
        let lead = s[j]
        if j < n && (j == i + 1 || c != " ") {
            if lead.isLetterChar {
                var k = j + 1
                while k < n, s[k].isLetterChar { k += 1 }
                out.append(start..<k); i = k; continue
            }
            if lead.isNumericChar {
                var k = j + 1
                while k < n, s[k].isNumericChar { k += 1 }
                out.append(start..<k); i = k; continue
            }
            if isOther(lead) {
                var k = j + 1
                while k < n, isOther(s[k]) { k += 1 }
                out.append(start..<k); i = k; continue
            }
        }
        if c == " " && j == i + 1 && !s[j].isWS {
            // unreachable in practice: handled above
        }
        // Whitespace run.
        start = i
        if c.isWS {
            var k = i + 1
            while k < n, s[k].isWS { k += 1 }
            if k == n || k - i == 1 {
                out.append(i..<k); i = k
            } else {
                out.append(i..<(k - 1)); i = k - 1
            }
            continue
        }
        // A lone ' ' at the end, or anything else: single char (cannot happen with the pattern).
        out.append(i..<(i + 1)); i += 1
    }
    return out
}

struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let useRegex: Bool
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n0 in
            var n = n0
            if addPrefixSpace && n.scalars.first != " " { n.prepend([" "]) }
            // Split and map to byte-level characters in one pass.
            let pieces = useRegex ? coverage(gpt2Matches(n.scalars), count: n.count).map { $0.0 } : [0..<n.count]
            return pieces.map { byteLevelSlice(n, $0) }
        }
    }
}

/// The byte-level form of `n[r]`: one char per UTF-8 byte, each aligned with its source char.
func byteLevelSlice(_ n: NormalizedString, _ r: Range<Int>) -> NormalizedString {
    let (ns, st, en) = byteLevelChars(n, r)
    let os = r.isEmpty ? n.originalStart : Int(n.starts[r.lowerBound])
    let oe = r.isEmpty ? os : Int(n.ends[r.upperBound - 1])
    return NormalizedString(scalars: ns, starts: st, ends: en, originalStart: os, originalEnd: oe)
}

func byteLevelEncode(_ n: inout NormalizedString) {
    (n.scalars, n.starts, n.ends) = byteLevelChars(n, 0..<n.count)
}

/// The byte-level chars of `n[r]` and their alignments.
private func byteLevelChars(_ n: NormalizedString, _ r: Range<Int>) -> ([Unicode.Scalar], [Int32], [Int32]) {
    let table = ByteLevelTable.byteToScalar
    var size = 0
    for i in r { size += UTF8.width(n.scalars[i]) }
    var ns: [Unicode.Scalar] = []
    var st: [Int32] = []
    var en: [Int32] = []
    ns.reserveCapacity(size); st.reserveCapacity(size); en.reserveCapacity(size)
    for i in r {
        let c = n.scalars[i], a = n.starts[i], b = n.ends[i]
        if c.value < 0x80 {
            ns.append(table[Int(c.value)]); st.append(a); en.append(b)
        } else {
            UTF8.encode(c) { byte in ns.append(table[Int(byte)]); st.append(a); en.append(b) }
        }
    }
    return (ns, st, en)
}

/// Chunks of `length` characters.
struct FixedLengthPreTokenizer: PreTokenizer {
    let length: Int
    func preTokenize(_ p: inout PreTokenizedString) {
        p.split { _, n in
            stride(from: 0, to: n.count, by: max(1, length)).map { n.slice($0..<min($0 + max(1, length), n.count)) }
        }
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let items: [PreTokenizer]
    func preTokenize(_ p: inout PreTokenizedString) throws {
        for t in items { try t.preTokenize(&p) }
    }
}

func parseBehavior(_ node: JNode) throws -> SplitBehavior {
    let s = try node.string()
    guard let b = SplitBehavior(rawValue: s) ?? SplitBehavior.allCasesByLower[s.lowercased()] else {
        throw node.invalid("unknown split behavior '\(s)'")
    }
    return b
}

extension SplitBehavior {
    static let allCasesByLower: [String: SplitBehavior] = [
        "removed": .removed, "isolated": .isolated, "merged_with_previous": .mergedWithPrevious,
        "merged_with_next": .mergedWithNext, "contiguous": .contiguous,
    ]
}

func parsePrependScheme(_ n: JNode) throws -> PrependScheme {
    if let ps = n.optional("prepend_scheme") {
        guard let s = PrependScheme(rawValue: try ps.string().lowercased()) else { throw ps.invalid("unknown prepend_scheme") }
        return s
    }
    return try n.bool("add_prefix_space", default: true) ? .always : .never
}

func parseReplacement(_ n: JNode) throws -> Unicode.Scalar {
    let f = try n.field("replacement")
    let s = try f.string()
    guard s.unicodeScalars.count == 1, let c = s.unicodeScalars.first else { throw f.invalid("replacement must be one character") }
    return c
}

enum PreTokenizerFactory {
    static func make(_ node: JNode) throws -> PreTokenizer {
        let type = try node.typeName()
        let n = node.withComponent(type)
        switch type {
        case "BertPreTokenizer": return BertPreTokenizer()
        case "Whitespace": return WhitespacePreTokenizer()
        case "WhitespaceSplit": return WhitespaceSplitPreTokenizer()
        case "ByteLevel":
            return ByteLevelPreTokenizer(addPrefixSpace: try n.bool("add_prefix_space", default: true),
                                         useRegex: try n.bool("use_regex", default: true))
        case "Metaspace":
            return MetaspacePreTokenizer(replacement: try parseReplacement(n), prependScheme: try parsePrependScheme(n),
                                         splitWords: try n.bool("split", default: true))
        case "Split":
            return SplitPreTokenizer(pattern: try TextPattern.parse(try n.field("pattern")),
                                     behavior: try parseBehavior(try n.field("behavior")),
                                     invert: try n.bool("invert", default: false))
        case "Punctuation":
            return PunctuationPreTokenizer(behavior: try n.optional("behavior").map(parseBehavior) ?? .isolated)
        case "Digits":
            return DigitsPreTokenizer(individualDigits: try n.bool("individual_digits", default: false))
        case "CharDelimiterSplit":
            let f = try n.field("delimiter")
            guard let c = try f.string().unicodeScalars.first else { throw f.invalid("empty delimiter") }
            return CharDelimiterSplitPreTokenizer(delimiter: c)
        case "FixedLength":
            let l = try n.int("length", default: 5)
            guard l > 0 else { throw TokenizerError.invalidField(path: n.path + ".length", component: type, reason: "length must be positive") }
            return FixedLengthPreTokenizer(length: l)
        case "Sequence":
            return SequencePreTokenizer(items: try n.field("pretokenizers").array().map { try make($0) })
        default:
            throw TokenizerError.unknownType(path: node.path + ".type", type: type)
        }
    }
}
