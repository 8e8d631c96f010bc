import Foundation

/// A regular expression run over unicode scalars (ranges are scalar indices).
/// Backed by NSRegularExpression (ICU), whose syntax covers the Oniguruma patterns used in
/// tokenizer.json files (\p{L}, \p{N}, \s, look-ahead, ...).
final class ScalarRegex: Sendable {
    let pattern: String
    private let re: NSRegularExpression
    /// For patterns of the form `c{n,}` or `c+` (one literal character): scanned directly.
    private let run: (Unicode.Scalar, Int)?

    init(_ pattern: String) throws {
        self.pattern = pattern
        run = ScalarRegex.simpleRun(pattern)
        do {
            re = try NSRegularExpression(pattern: pattern, options: [])
        } catch {
            throw TokenizerError.invalidField(path: "pattern", component: "Regex", reason: "invalid regular expression '\(pattern)'")
        }
    }

    /// Non-overlapping match ranges, as scalar index ranges.
    static func simpleRun(_ p: String) -> (Unicode.Scalar, Int)? {
        let u = Array(p.unicodeScalars)
        guard u.count >= 2 else { return nil }
        let c = u[0]
        // Only characters that are literal in a regex.
        guard c.value >= 0x20, !"\\^$.|?*+()[]{}".unicodeScalars.contains(c) else { return nil }
        if u.count == 2 && u[1] == "+" { return (c, 1) }
        guard u[1] == "{", u.last == "}", u.count >= 5, u[u.count - 2] == "," else { return nil }
        guard let n = Int(String(String.UnicodeScalarView(u[2..<(u.count - 2)]))), n >= 1 else { return nil }
        return (c, n)
    }

    func find(in scalars: [Unicode.Scalar]) -> [Range<Int>] {
        if scalars.isEmpty { return [] }
        if let (c, n) = run {
            var out: [Range<Int>] = []
            var i = 0
            while i < scalars.count {
                if scalars[i] == c {
                    var j = i + 1
                    while j < scalars.count, scalars[j] == c { j += 1 }
                    if j - i >= n { out.append(i..<j) }
                    i = j
                } else { i += 1 }
            }
            return out
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        let s = String(view)
        let ns = s as NSString
        let results = re.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length))
        if results.isEmpty { return [] }
        // UTF-16 offset -> scalar index map.
        var map = [Int](repeating: 0, count: ns.length + 1)
        var u = 0
        for (i, c) in scalars.enumerated() {
            map[u] = i
            if c.value > 0xFFFF { map[u + 1] = i; u += 2 } else { u += 1 }
        }
        map[u] = scalars.count
        var out: [Range<Int>] = []
        for r in results where r.range.location != NSNotFound {
            let a = map[r.range.location], b = map[r.range.location + r.range.length]
            if a == b { continue }  // empty matches are ignored
            out.append(a..<b)
        }
        return out
    }
}

/// Literal (non-regex) search: leftmost, non-overlapping.
func findLiteral(_ needle: [Unicode.Scalar], in hay: [Unicode.Scalar]) -> [Range<Int>] {
    guard !needle.isEmpty, needle.count <= hay.count else { return [] }
    var out: [Range<Int>] = []
    var i = 0
    let first = needle[0]
    while i + needle.count <= hay.count {
        if hay[i] == first {
            var ok = true
            for k in 1..<needle.count where hay[i + k] != needle[k] { ok = false; break }
            if ok { out.append(i..<(i + needle.count)); i += needle.count; continue }
        }
        i += 1
    }
    return out
}

/// A "String" or "Regex" pattern as serialized in tokenizer.json.
enum TextPattern {
    case literal([Unicode.Scalar])
    case regex(ScalarRegex)

    static func parse(_ node: JNode) throws -> TextPattern {
        if let s = node.optional("String") { return .literal(Array(try s.string().unicodeScalars)) }
        if let r = node.optional("Regex") {
            do { return .regex(try ScalarRegex(try r.string())) } catch { throw r.invalid("invalid regular expression") }
        }
        if case .string(let s) = node.value { return .literal(Array(s.unicodeScalars)) }
        throw node.invalid("expected {\"String\": ...} or {\"Regex\": ...}")
    }

    func find(in scalars: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case let .literal(n): return findLiteral(n, in: scalars)
        case let .regex(r): return r.find(in: scalars)
        }
    }

    func coverageMatches(in scalars: [Unicode.Scalar]) -> [(Range<Int>, Bool)] {
        if case let .literal(n) = self, n.isEmpty { return [(0..<scalars.count, false)] }
        return coverage(find(in: scalars), count: scalars.count)
    }
}
