import JSON
import Foundation
import Synchronization

public final class BPEModel: TokenizerModel {
    public let vocab: [VocabKey: Int]
    let idToString: [String?]
    /// (left id << 32 | right id) -> (rank << 32 | new id)
    let merges: U64Map
    public let mergeList: [(String, String)]
    public let unkToken: String?
    public let prefix: String?
    public let suffix: String?
    public let fuseUnk: Bool
    public let byteFallback: Bool
    public let ignoreMerges: Bool
    let dropout: Double?
    /// Single-character ids by position class: [plain, with prefix, with suffix, with both].
    private var charIds: [[UInt32: Int32]] = [[:], [:], [:], [:]]
    private var byteIds: [Int32] = Array(repeating: -1, count: 256)
    private let cache = BPECache()

    public init(vocab: [VocabKey: Int], merges: [(String, String)], unkToken: String? = nil, prefix: String? = nil,
                suffix: String? = nil, fuseUnk: Bool = false, byteFallback: Bool = false, ignoreMerges: Bool = false,
                dropout: Double? = nil, path: String = "$.model") throws {
        self.vocab = vocab
        self.idToString = vocabArray(vocab)
        self.mergeList = merges
        self.unkToken = unkToken
        self.prefix = prefix
        self.suffix = suffix
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.dropout = dropout
        var m = U64Map(capacity: merges.count)
        let prefixLen = prefix?.utf8.count ?? 0
        for (i, (a, b)) in merges.enumerated() {
            guard let ai = vocab[VocabKey(a)] else { throw TokenizerError.invalidField(path: "\(path).merges[\(i)]", component: "BPE", reason: "merge token '\(a)' not in vocabulary") }
            guard let bi = vocab[VocabKey(b)] else { throw TokenizerError.invalidField(path: "\(path).merges[\(i)]", component: "BPE", reason: "merge token '\(b)' not in vocabulary") }
            let newToken = prefixLen == 0 ? a + b : a + String(decoding: b.utf8.dropFirst(prefixLen), as: UTF8.self)
            guard let ni = vocab[VocabKey(newToken)] else { throw TokenizerError.invalidField(path: "\(path).merges[\(i)]", component: "BPE", reason: "merged token '\(newToken)' not in vocabulary") }
            // A pair listed twice takes its last rank (the Rust library collects the merges into a map).
            m.set(BPEModel.pairKey(Int32(ai), Int32(bi)), UInt64(i) << 32 | UInt64(UInt32(ni)))
        }
        self.merges = m
        let affixLen = prefixLen + (suffix?.utf8.count ?? 0)
        for (key, id) in vocab {
            let tok = key.string
            if tok.utf8.count > 4 + affixLen { continue }  // longer than one character with prefix and suffix
            var u = Array(tok.utf8)[...]
            var cls = 0
            if let p = prefix, !p.isEmpty, u.starts(with: p.utf8) { u = u.dropFirst(p.utf8.count); cls |= 1 }
            if let x = suffix, !x.isEmpty, u.reversed().starts(with: x.utf8.reversed()) { u = u.dropLast(x.utf8.count); cls |= 2 }
            let sc = String(decoding: u, as: UTF8.self).unicodeScalars
            if sc.count == 1 { charIds[cls][sc.first!.value] = Int32(id) }
            // Also record the plain form (a token could be e.g. "##" itself).
            if cls != 0, tok.unicodeScalars.count == 1 { charIds[0][tok.unicodeScalars.first!.value] = Int32(id) }
        }
        for b in 0..<256 {
            if let id = vocab[VocabKey(byteTokenName(UInt8(b)))] { byteIds[b] = Int32(id) }
        }
    }

    convenience init(json n: JNode) throws {
        let vocab = try parseVocabObject(try n.field("vocab"))
        let mergesNode = try n.field("merges")
        let items = try mergesNode.rawArray()
        var merges: [(String, String)] = []
        merges.reserveCapacity(items.count)
        for (i, m) in items.enumerated() {
            switch m {
            case let .string(s):
                // "a b": split at the one space (bytes, like Rust's `split(' ')`).
                let u = s.utf8
                guard let sp = u.firstIndex(of: UInt8(ascii: " ")), !u[u.index(after: sp)...].contains(UInt8(ascii: " ")) else {
                    throw mergesNode.element(i).invalid("a merge must be two tokens separated by one space")
                }
                merges.append((String(decoding: u[..<sp], as: UTF8.self), String(decoding: u[u.index(after: sp)...], as: UTF8.self)))
            case let .array(a):
                guard a.count == 2, case let .string(x) = a[0], case let .string(y) = a[1] else {
                    throw mergesNode.element(i).invalid("a merge must be a pair of strings")
                }
                merges.append((x, y))
            default:
                throw mergesNode.element(i).invalid("a merge must be a string or a pair of strings")
            }
        }
        var dropout: Double? = nil
        if let d = n.optional("dropout") { dropout = try d.double() }
        try self.init(vocab: vocab, merges: merges,
                      unkToken: try n.optional("unk_token")?.string(),
                      prefix: try n.optional("continuing_subword_prefix")?.string(),
                      suffix: try n.optional("end_of_word_suffix")?.string(),
                      fuseUnk: try n.bool("fuse_unk", default: false),
                      byteFallback: try n.bool("byte_fallback", default: false),
                      ignoreMerges: try n.bool("ignore_merges", default: false),
                      dropout: dropout, path: n.path)
    }

    @inline(__always) static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The merge of the pair (a, b): its rank and the id of the merged token.
    @inline(__always) func merge(_ a: Int32, _ b: Int32) -> (rank: Int32, id: Int32)? {
        guard let v = merges.get(BPEModel.pairKey(a, b)) else { return nil }
        return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
    }

    struct Symbol {
        var id: Int32
        var start: Int32
        var end: Int32
        var prev: Int32
        var next: Int32
    }

    private func lookupChar(_ c: Unicode.Scalar, first: Bool, last: Bool) -> Int? {
        var cls = 0
        if !first, let p = prefix, !p.isEmpty { cls |= 1 }
        if last, let s = suffix, !s.isEmpty { cls |= 2 }
        if cls == 0 { return charIds[0][c.value].map(Int.init) }
        // Build the exact string (rare path for prefix/suffix models).
        var s = (cls & 1 != 0) ? prefix! : ""
        s.unicodeScalars.append(c)
        if cls & 2 != 0 { s += suffix! }
        return vocab[VocabKey(s)]
    }

    public func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        if word.isEmpty { return [] }
        if ignoreMerges {
            let s = makeString(word)
            if let id = vocab[VocabKey(s)] { return [ModelToken(id: id, value: s, start: 0, end: word.count)] }
        }
        if let hit = cache.get(word) { return hit }
        let syms = try mergeWord(word)
        var out: [ModelToken] = []
        out.reserveCapacity(syms.count)
        for s in syms {
            let id = Int(s.id)
            out.append(ModelToken(id: id, value: id < idToString.count ? (idToString[id] ?? "") : "", start: Int(s.start), end: Int(s.end)))
        }
        if word.count < 256 { cache.put(word, out) }
        return out
    }

    func mergeWord(_ word: ArraySlice<Unicode.Scalar>) throws -> [Symbol] {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(word.count)
        var unk: (id: Int32, start: Int32, end: Int32)? = nil
        let n = word.count
        let b = word.startIndex
        func add(_ id: Int32, _ s: Int, _ e: Int) {
            symbols.append(Symbol(id: id, start: Int32(s), end: Int32(e), prev: -1, next: -1))
        }
        for i in 0..<n {
            let c = word[b + i]
            if let id = lookupChar(c, first: i == 0, last: i == n - 1) {
                if let u = unk { add(u.id, Int(u.start), Int(u.end)); unk = nil }
                add(Int32(id), i, i + 1)
                continue
            }
            if byteFallback {
                var s = (i > 0 && prefix != nil) ? prefix! : ""
                s.unicodeScalars.append(c)
                if i == n - 1, let x = suffix { s += x }
                let ids = s.utf8.map { byteIds[Int($0)] }
                if !ids.contains(-1) {
                    if let u = unk { add(u.id, Int(u.start), Int(u.end)); unk = nil }
                    for id in ids { add(id, i, i + 1) }
                    continue
                }
            }
            if let ut = unkToken {
                guard let uid = vocab[VocabKey(ut)] else {
                    throw TokenizerError.invalidField(path: "$.model.unk_token", component: "BPE", reason: "unk token '\(ut)' not in vocabulary")
                }
                if let u = unk {
                    if fuseUnk { unk = (u.id, u.start, Int32(i + 1)) } else {
                        add(u.id, Int(u.start), Int(u.end)); unk = (Int32(uid), Int32(i), Int32(i + 1))
                    }
                } else {
                    unk = (Int32(uid), Int32(i), Int32(i + 1))
                }
            }
        }
        if let u = unk { add(u.id, Int(u.start), Int(u.end)) }
        for i in 0..<symbols.count {
            symbols[i].prev = Int32(i - 1)
            symbols[i].next = i + 1 < symbols.count ? Int32(i + 1) : -1
        }
        if symbols.count < 2 { return symbols }
        // Priority queue of (rank, pos, newId); smallest rank, then smallest pos, first.
        var heap = MergeHeap()
        for i in 0..<(symbols.count - 1) {
            if let m = merge(symbols[i].id, symbols[i + 1].id) {
                heap.push(MergeEntry(rank: m.rank, pos: Int32(i), newId: m.id))
            }
        }
        var alive = [Bool](repeating: true, count: symbols.count)
        while let top = heap.pop() {
            let p = Int(top.pos)
            if !alive[p] { continue }
            let nx = Int(symbols[p].next)
            if nx < 0 { continue }
            guard let m = merge(symbols[p].id, symbols[nx].id), m.id == top.newId else { continue }
            symbols[p].id = top.newId
            symbols[p].end = symbols[nx].end
            symbols[p].next = symbols[nx].next
            alive[nx] = false
            let nn = Int(symbols[nx].next)
            if nn >= 0 { symbols[nn].prev = Int32(p) }
            let pv = Int(symbols[p].prev)
            if pv >= 0, let m2 = merge(symbols[pv].id, symbols[p].id) {
                heap.push(MergeEntry(rank: m2.rank, pos: Int32(pv), newId: m2.id))
            }
            if nn >= 0, let m3 = merge(symbols[p].id, symbols[nn].id) {
                heap.push(MergeEntry(rank: m3.rank, pos: Int32(p), newId: m3.id))
            }
        }
        var out: [Symbol] = []
        var i = 0
        while i >= 0 && i < symbols.count {
            out.append(symbols[i])
            i = Int(symbols[i].next)
        }
        return out
    }

    public func tokenToId(_ token: String) -> Int? { vocab[VocabKey(token)] }
    public func idToToken(_ id: Int) -> String? { id >= 0 && id < idToString.count ? idToString[id] : nil }
    public var vocabSize: Int { vocab.count }

    public func toJSON() -> JSONValue {
        func opt(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        return .obj([
            ("type", .string("BPE")), ("dropout", dropout.map { .number($0) } ?? .null), ("unk_token", opt(unkToken)),
            ("continuing_subword_prefix", opt(prefix)), ("end_of_word_suffix", opt(suffix)),
            ("fuse_unk", .bool(fuseUnk)), ("byte_fallback", .bool(byteFallback)), ("ignore_merges", .bool(ignoreMerges)),
            ("vocab", vocabJSON(vocab)),
            ("merges", .array(mergeList.map { .array([.string($0.0), .string($0.1)]) })),
        ])
    }
}

struct MergeEntry {
    var rank: Int32
    var pos: Int32
    var newId: Int32
    @inline(__always) func less(_ o: MergeEntry) -> Bool { rank != o.rank ? rank < o.rank : pos < o.pos }
}

struct MergeHeap {
    var items: [MergeEntry] = []
    mutating func push(_ e: MergeEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[i].less(items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }
    mutating func pop() -> MergeEntry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[l].less(items[m]) { m = l }
                if r < n && items[r].less(items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}

/// A thread-safe word cache (word scalars -> tokens), shared by BPE and Unigram. Sharded so
/// that parallel batch encoding rarely waits on a lock. Looked up by slice, so a hit allocates nothing.
final class BPECache: Sendable {
    /// A word with a hash of its own (one multiply per scalar), so that the dictionary hashes 8 bytes
    /// instead of the whole word.
    struct Key: Hashable {
        let hash: UInt64
        let word: ArraySlice<Unicode.Scalar>
        init(_ word: ArraySlice<Unicode.Scalar>) {
            var h: UInt64 = UInt64(word.count)
            for c in word { h = (h ^ UInt64(c.value)) &* 0x100_0000_01B3 ^ (h >> 29) }
            hash = h
            self.word = word
        }
        static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.word == b.word }
        func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }
    private final class Shard: Sendable {
        let map = Mutex<[Key: [ModelToken]]>([:])
    }
    private let shards: [Shard] = (0..<16).map { _ in Shard() }
    let capacityPerShard = 1_000

    func get(_ word: ArraySlice<Unicode.Scalar>) -> [ModelToken]? {
        let k = Key(word)
        let s = shards[Int(k.hash >> 60)]
        return s.map.withLock { $0[k] }
    }
    func put(_ word: ArraySlice<Unicode.Scalar>, _ v: [ModelToken]) {
        // Stored as a copy of its own, so that the key does not keep a larger array alive.
        let k = Key(ArraySlice(Array(word)))
        let s = shards[Int(k.hash >> 60)]
        s.map.withLock { map in if map.count < capacityPerShard { map[k] = v } }
    }
}
