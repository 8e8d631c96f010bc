import JSON
import Foundation

/// A token added on top of the model's vocabulary (special or not).
public struct AddedToken: Equatable {
    public var content: String
    public var id: Int
    public var singleWord = false
    public var lstrip = false
    public var rstrip = false
    public var normalized = true
    public var special = false

    public init(content: String, id: Int, singleWord: Bool = false, lstrip: Bool = false, rstrip: Bool = false,
                normalized: Bool? = nil, special: Bool = false) {
        self.content = content; self.id = id; self.singleWord = singleWord; self.lstrip = lstrip; self.rstrip = rstrip
        self.normalized = normalized ?? !special; self.special = special
    }

    static func parse(_ n: JNode) throws -> AddedToken {
        let n = n.withComponent("AddedToken")
        let special = try n.bool("special", default: false)
        return AddedToken(content: try n.string("content"), id: try n.int("id"),
                          singleWord: try n.bool("single_word", default: false), lstrip: try n.bool("lstrip", default: false),
                          rstrip: try n.bool("rstrip", default: false), normalized: try n.bool("normalized", default: !special),
                          special: special)
    }

    func toJSON() -> JSONValue {
        .obj([("id", .number(Double(id))), ("content", .string(content)), ("single_word", .bool(singleWord)),
              ("lstrip", .bool(lstrip)), ("rstrip", .bool(rstrip)), ("normalized", .bool(normalized)), ("special", .bool(special))])
    }
}

/// Leftmost-longest matcher over unicode scalars.
struct TokenMatcher {
    /// first scalar -> (pattern, token index), longest first
    var byFirst: [UInt32: [([Unicode.Scalar], Int)]] = [:]
    /// Which ASCII characters start a pattern, and whether any pattern starts above ASCII.
    var asciiFirst = [Bool](repeating: false, count: 128)
    var anyNonASCIIFirst = false

    init(_ patterns: [([Unicode.Scalar], Int)]) {
        for (p, i) in patterns where !p.isEmpty {
            byFirst[p[0].value, default: []].append((p, i))
            if p[0].value < 128 { asciiFirst[Int(p[0].value)] = true } else { anyNonASCIIFirst = true }
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.0.count > $1.0.count } }
    }

    var isEmpty: Bool { byFirst.isEmpty }

    /// Non-overlapping leftmost-longest matches: (range, token index).
    func find(_ s: [Unicode.Scalar]) -> [(Range<Int>, Int)] {
        var out: [(Range<Int>, Int)] = []
        if byFirst.isEmpty { return out }
        var i = 0
        while i < s.count {
            let v = s[i].value
            if v < 128 ? !asciiFirst[Int(v)] : !anyNonASCIIFirst { i += 1; continue }
            if let cands = byFirst[v] {
                var hit: ([Unicode.Scalar], Int)? = nil
                for c in cands where c.0.count <= s.count - i {
                    var ok = true
                    for k in 1..<max(1, c.0.count) where s[i + k] != c.0[k] { ok = false; break }
                    if ok { hit = c; break }
                }
                if let h = hit {
                    out.append((i..<(i + h.0.count), h.1))
                    i += h.0.count
                    continue
                }
            }
            i += 1
        }
        return out
    }
}

/// The added tokens of a tokenizer and their extraction from the input text.
struct AddedVocabulary {
    var tokens: [AddedToken] = []
    var byContent: [VocabKey: Int] = [:]  // content -> id
    var byId: [Int: AddedToken] = [:]
    var specialContents: Set<VocabKey> = []
    /// Form used when decoding: the normalized content for normalized tokens (like the Rust library).
    var decodeForm: [Int: String] = [:]
    private var rawMatcher = TokenMatcher([])
    private var normMatcher = TokenMatcher([])

    init(tokens: [AddedToken] = [], normalizer: Normalizer?) throws {
        self.tokens = tokens
        try refresh(normalizer: normalizer)
    }

    mutating func refresh(normalizer: Normalizer?) throws {
        byContent = [:]; byId = [:]; specialContents = []; decodeForm = [:]
        var raw: [([Unicode.Scalar], Int)] = []
        var norm: [([Unicode.Scalar], Int)] = []
        for (i, t) in tokens.enumerated() {
            byContent[VocabKey(t.content)] = t.id
            byId[t.id] = t
            if t.special { specialContents.insert(VocabKey(t.content)) }
            decodeForm[t.id] = t.content
            if t.normalized {
                var n = NormalizedString(t.content)
                try normalizer?.normalize(&n)
                norm.append((n.scalars, i))
                decodeForm[t.id] = n.string
            } else {
                raw.append((Array(t.content.unicodeScalars), i))
            }
        }
        rawMatcher = TokenMatcher(raw)
        normMatcher = TokenMatcher(norm)
    }

    private func isWordEnd(_ c: Unicode.Scalar) -> Bool { c.isAlphanumericChar || c == "_" }

    /// Splits a normalized string on the added tokens found by `matcher`.
    private func splitWith(_ ns: NormalizedString, _ matcher: TokenMatcher) -> [Split] {
        if matcher.isEmpty { return [Split(normalized: ns, tokens: nil)] }
        let s = ns.scalars
        let found = matcher.find(s)
        if found.isEmpty {
            // What `ns.slice(0..<count)` below gives, without copying the scalars and alignments.
            if s.isEmpty { return [] }
            var whole = ns
            whole.originalStart = Int(ns.starts[0])
            whole.originalEnd = Int(ns.ends[ns.count - 1])
            return [Split(normalized: whole, tokens: nil)]
        }
        var out: [Split] = []
        var startOffset = 0
        for (r, ti) in found {
            let tok = tokens[ti]
            var start = r.lowerBound, stop = r.upperBound
            if tok.singleWord {
                let startSpace = start == 0 || !isWordEnd(s[start - 1])
                let stopSpace = stop == s.count || !isWordEnd(s[stop])
                if !startSpace || !stopSpace { continue }
            }
            if tok.lstrip {
                var ns2 = start
                while ns2 > 0, s[ns2 - 1].isWS { ns2 -= 1 }
                start = max(ns2, startOffset)
            }
            if tok.rstrip {
                while stop < s.count, s[stop].isWS { stop += 1 }
            }
            if startOffset < start { out.append(Split(normalized: ns.slice(startOffset..<start), tokens: nil)) }
            let piece = ns.slice(start..<stop)
            out.append(Split(normalized: piece, tokens: [ModelToken(id: tok.id, value: piece.string, start: 0, end: piece.count)]))
            startOffset = stop
        }
        if startOffset != s.count { out.append(Split(normalized: ns.slice(startOffset..<s.count), tokens: nil)) }
        return out
    }

    func extractAndNormalize(_ text: [Unicode.Scalar], normalizer: Normalizer?) throws -> PreTokenizedString {
        var p = PreTokenizedString(splits: [Split(normalized: NormalizedString(text), tokens: nil)])
        p.splitWithTokens { splitWith($0, rawMatcher) }
        try p.splitWithTokens { n0 in
            var n = n0
            try normalizer?.normalize(&n)
            return splitWith(n, normMatcher)
        }
        return p
    }
}
