import JSON
import Foundation

/// A trie over unicode scalars stored in one hash map: (node << 21 | scalar) -> child node.
struct ScalarTrie {
    private var children: U64Map
    private(set) var values: [Int32] = [-1]  // per node: token id ending here, or -1

    /// `keys`: about how many keys will be inserted (a vocabulary's tries have about twice as many nodes).
    init(keys: Int = 0) {
        children = U64Map(capacity: 2 * keys)
        values.reserveCapacity(2 * keys + 1)
    }

    mutating func insert<S: Sequence>(_ key: S, id: Int) where S.Element == Unicode.Scalar {
        var node: Int32 = 0
        for c in key {
            let next = Int32(values.count)
            node = Int32(children.getOrInsert(UInt64(node) << 21 | UInt64(c.value), UInt64(next)))
            if node == next { values.append(-1) }
        }
        values[Int(node)] = Int32(id)  // later duplicates win, like the Rust token map
    }

    mutating func insert(_ key: String, id: Int) { insert(key.unicodeScalars, id: id) }

    /// Calls `f(length, id)` for every vocabulary entry that is a prefix of `s[start...]`, shortest first.
    @inline(__always) func prefixes(_ s: ArraySlice<Unicode.Scalar>, from start: Int, _ f: (Int, Int) -> Void) {
        var node: UInt64 = 0
        var i = start
        while i < s.endIndex {
            guard let nx = children.get(node << 21 | UInt64(s[i].value)) else { return }
            node = nx
            i += 1
            let v = values[Int(nx)]
            if v >= 0 { f(i - start, Int(v)) }
        }
    }
}

public final class UnigramModel: TokenizerModel {
    public let pieces: [(String, Double)]
    let tokenToIds: [VocabKey: Int]
    public let unkId: Int?
    public let byteFallback: Bool
    let minScore: Double
    let trie: ScalarTrie
    private var byteIds: [Int] = Array(repeating: -1, count: 256)
    private let cache = BPECache()
    static let unkPenalty = 10.0

    public init(pieces: [(String, Double)], unkId: Int?, byteFallback: Bool = false, path: String = "$.model") throws {
        if let u = unkId {
            if pieces.isEmpty { throw TokenizerError.invalidField(path: path + ".vocab", component: "Unigram", reason: "empty vocabulary") }
            if u < 0 || u >= pieces.count { throw TokenizerError.invalidField(path: path + ".unk_id", component: "Unigram", reason: "unk_id out of vocabulary") }
        }
        self.pieces = pieces
        self.unkId = unkId
        self.byteFallback = byteFallback
        var t = ScalarTrie(keys: pieces.count)
        var ids: [VocabKey: Int] = [:]
        ids.reserveCapacity(pieces.count)
        var mn = Double.infinity
        for (i, (p, s)) in pieces.enumerated() {
            ids[VocabKey(p)] = i
            t.insert(p, id: i)
            if s < mn { mn = s }
        }
        // Later duplicates win in the token map, like a Rust HashMap insert.
        tokenToIds = ids
        trie = t
        minScore = mn
        for b in 0..<256 { if let id = ids[VocabKey(byteTokenName(UInt8(b)))] { byteIds[b] = id } }
    }

    convenience init(json n: JNode) throws {
        let vocab = try n.field("vocab")
        let items = try vocab.rawArray()
        var pieces: [(String, Double)] = []
        pieces.reserveCapacity(items.count)
        for (i, v) in items.enumerated() {
            if case let .array(pair) = v, pair.count == 2, case let .string(p) = pair[0], case let .number(score) = pair[1] {
                pieces.append((p, score))
                continue
            }
            // Not a [piece, score] pair: the same checks through JNode, which name the path in the error.
            let e = vocab.element(i)
            let pair = try e.array()
            guard pair.count == 2 else { throw e.invalid("expected [piece, score]") }
            _ = try pair[0].string()
            _ = try pair[1].double()
        }
        var unk: Int? = nil
        if let u = n.optional("unk_id") { unk = try u.int() }
        try self.init(pieces: pieces, unkId: unk, byteFallback: try n.bool("byte_fallback", default: false), path: n.path)
    }

    public func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        if word.isEmpty { return [] }
        if let hit = cache.get(word) { return hit }
        let out = try viterbi(word)
        if word.count < 256 { cache.put(word, out) }
        return out
    }

    func viterbi(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        let n = word.count
        let b = word.startIndex
        let unkScore = minScore - UnigramModel.unkPenalty
        var bestScore = [Double](repeating: 0, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestId = [Int](repeating: 0, count: n + 1)
        for start in 0..<n {
            let base = bestScore[start]
            var hasSingle = false
            trie.prefixes(word, from: b + start) { len, id in
                let end = start + len
                // As the Rust library: Double sums, and a later candidate must be strictly better, so of paths with
                // equal scores the one whose last piece starts first wins. Which paths are equal depends on the
                // last bits of the scores, read from tokenizer.json as serde_json reads them (JSONParser.rustNumber).
                let cand = pieces[id].1 + base
                if bestStart[end] < 0 || cand > bestScore[end] {
                    bestScore[end] = cand; bestStart[end] = start
                    bestId[end] = id
                }
                if len == 1 { hasSingle = true }
            }
            if !hasSingle {
                guard let u = unkId else { throw TokenizerError.invalidField(path: "$.model.unk_id", component: "Unigram", reason: "missing unk_id") }
                let end = start + 1
                let cand = unkScore + base
                if bestStart[end] < 0 || cand > bestScore[end] {
                    bestScore[end] = cand; bestStart[end] = start; bestId[end] = u
                }
            }
        }
        // Backtrack, fusing consecutive unknowns.
        var spans: [(Int, Int, Bool)] = []  // start, end, isUnk
        var end = n
        while end > 0 {
            let s = bestStart[end]
            let isUnk = unkId != nil && bestId[end] == unkId!
            if isUnk, let last = spans.last, last.2 {
                spans[spans.count - 1] = (s, last.1, true)
            } else {
                spans.append((s, end, isUnk))
            }
            end = s
        }
        spans.reverse()
        var out: [ModelToken] = []
        out.reserveCapacity(spans.count)
        for (s, e, isUnk) in spans {
            if !isUnk {
                let id = bestId[e]
                out.append(ModelToken(id: id, value: pieces[id].0, start: s, end: e))
                continue
            }
            let str = makeString(word[(b + s)..<(b + e)])
            if let id = tokenToIds[VocabKey(str)] {
                out.append(ModelToken(id: id, value: str, start: s, end: e))
                continue
            }
            if byteFallback {
                let bytes = Array(str.utf8)
                if bytes.allSatisfy({ byteIds[Int($0)] >= 0 }) {
                    for x in bytes {
                        out.append(ModelToken(id: byteIds[Int(x)], value: byteTokenName(x), start: s, end: e))
                    }
                    continue
                }
            }
            guard let u = unkId else { throw TokenizerError.invalidField(path: "$.model.unk_id", component: "Unigram", reason: "missing unk_id") }
            out.append(ModelToken(id: u, value: str, start: s, end: e))
        }
        return out
    }

    public func tokenToId(_ token: String) -> Int? { tokenToIds[VocabKey(token)] }
    public func idToToken(_ id: Int) -> String? { id >= 0 && id < pieces.count ? pieces[id].0 : nil }
    public var vocabSize: Int { pieces.count }
    public func toJSON() -> JSONValue {
        .obj([("type", .string("Unigram")), ("unk_id", unkId.map { .number(Double($0)) } ?? .null),
              ("vocab", .array(pieces.map { .array([.string($0.0), .number($0.1)]) })),
              ("byte_fallback", .bool(byteFallback))])
    }
}
