import JSON
import Foundation

/// Minimal protobuf wire-format reader (varint, fixed32, fixed64, length-delimited).
package struct ProtoReader {
    package let bytes: [UInt8]
    package var pos: Int
    package let end: Int

    package init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        pos = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    package var atEnd: Bool { pos >= end }

    package mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw TokenizerError.malformedModel("truncated varint at byte \(pos)") }
            let b = bytes[pos]; pos += 1
            if shift < 64 { result |= UInt64(b & 0x7F) << shift }
            if b & 0x80 == 0 { return result }
            shift += 7
            if shift > 70 { throw TokenizerError.malformedModel("varint too long at byte \(pos)") }
        }
    }

    /// Reads the next field: (field number, wire type).
    package mutating func tag() throws -> (Int, Int) {
        let t = try varint()
        let field = Int(t >> 3), wire = Int(t & 7)
        if field == 0 { throw TokenizerError.malformedModel("invalid field number 0 at byte \(pos)") }
        return (field, wire)
    }

    /// An int32 or enum field: protobuf writes negative values as ten-byte varints, and keeps their low 32 bits.
    package mutating func int32() throws -> Int { Int(Int32(truncatingIfNeeded: try varint())) }

    package mutating func fixed32() throws -> UInt32 {
        guard pos + 4 <= end else { throw TokenizerError.malformedModel("truncated fixed32 at byte \(pos)") }
        let v = UInt32(bytes[pos]) | UInt32(bytes[pos + 1]) << 8 | UInt32(bytes[pos + 2]) << 16 | UInt32(bytes[pos + 3]) << 24
        pos += 4
        return v
    }

    package mutating func lengthDelimited() throws -> Range<Int> {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw TokenizerError.malformedModel("length \(n) past end at byte \(pos)") }
        let r = pos..<(pos + Int(n))
        pos += Int(n)
        return r
    }

    package mutating func skip(wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: guard pos + 8 <= end else { throw TokenizerError.malformedModel("truncated fixed64") }; pos += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw TokenizerError.malformedModel("unsupported wire type \(wire) at byte \(pos)")
        }
    }

    func string(_ r: Range<Int>) -> String { String(decoding: bytes[r], as: UTF8.self) }
}

/// The parts of SentencePiece's `ModelProto` that encoding needs.
public struct SentencePieceModelProto {
    public enum PieceType: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }
    public var pieces: [(piece: String, score: Float, type: PieceType)] = []
    public var modelType = 1  // 1 unigram, 2 bpe, 3 word, 4 char
    public var unkId = 0, bosId = 1, eosId = 2, padId = -1
    public var byteFallback = false
    public var treatWhitespaceAsSuffix = false
    public var unkSurface = " \u{2047} "
    public var precompiledCharsmap: [UInt8] = []
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true

    public init(data: [UInt8]) throws {
        var r = ProtoReader(data)
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (1, 2): pieces.append(try Self.parsePiece(data, try r.lengthDelimited()))
            case (2, 2): try parseTrainer(data, try r.lengthDelimited())
            case (3, 2): try parseNormalizer(data, try r.lengthDelimited())
            default: try r.skip(wire: w)
            }
        }
        if pieces.isEmpty { throw TokenizerError.malformedModel("no pieces") }
    }

    static func parsePiece(_ data: [UInt8], _ range: Range<Int>) throws -> (piece: String, score: Float, type: PieceType) {
        var r = ProtoReader(data, range: range)
        var piece = "", score: Float = 0, type = PieceType.normal
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (1, 2): piece = r.string(try r.lengthDelimited())
            case (2, 5): score = Float(bitPattern: try r.fixed32())
            case (3, 0):
                let v = try r.int32()
                guard let t = PieceType(rawValue: v) else { throw TokenizerError.malformedModel("unknown piece type \(v)") }
                type = t
            default: try r.skip(wire: w)
            }
        }
        return (piece, score, type)
    }

    mutating func parseTrainer(_ data: [UInt8], _ range: Range<Int>) throws {
        var r = ProtoReader(data, range: range)
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (3, 0): modelType = try r.int32()
            case (24, 0): treatWhitespaceAsSuffix = try r.varint() != 0
            case (35, 0): byteFallback = try r.varint() != 0
            case (40, 0): unkId = try r.int32()
            case (41, 0): bosId = try r.int32()
            case (42, 0): eosId = try r.int32()
            case (43, 0): padId = try r.int32()
            case (44, 2): unkSurface = r.string(try r.lengthDelimited())
            default: try r.skip(wire: w)
            }
        }
    }

    mutating func parseNormalizer(_ data: [UInt8], _ range: Range<Int>) throws {
        var r = ProtoReader(data, range: range)
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (2, 2): precompiledCharsmap = Array(data[try r.lengthDelimited()])
            case (3, 0): addDummyPrefix = try r.varint() != 0
            case (4, 0): removeExtraWhitespaces = try r.varint() != 0
            case (5, 0): escapeWhitespaces = try r.varint() != 0
            default: try r.skip(wire: w)
            }
        }
    }
}

/// A byte trie in one hash map: (node << 8 | byte) -> child.
struct ByteTrie {
    private var children: [UInt64: Int32] = [:]
    private(set) var values: [Int32] = [-1]
    mutating func insert<C: Collection>(_ key: C, id: Int) where C.Element == UInt8 {
        var node: Int32 = 0
        for b in key {
            let k = UInt64(node) << 8 | UInt64(b)
            if let nx = children[k] { node = nx } else {
                let nx = Int32(values.count); values.append(-1); children[k] = nx; node = nx
            }
        }
        values[Int(node)] = Int32(id)
    }
    /// The id stored for exactly `s[r]`, if any.
    @inline(__always) func exact(_ s: [UInt8], _ r: Range<Int>) -> Int? {
        var node: Int32 = 0
        for i in r {
            guard let nx = children[UInt64(node) << 8 | UInt64(s[i])] else { return nil }
            node = nx
        }
        let v = values[Int(node)]
        return v >= 0 ? Int(v) : nil
    }

    @inline(__always) func prefixes(_ s: [UInt8], from start: Int, _ f: (Int, Int) -> Void) {
        var node: Int32 = 0
        var i = start
        while i < s.count {
            guard let nx = children[UInt64(node) << 8 | UInt64(s[i])] else { return }
            node = nx; i += 1
            let v = values[Int(nx)]
            if v >= 0 { f(i - start, Int(v)) }
        }
    }
}

@inline(__always) func utf8CharLen(_ b: UInt8) -> Int {
    if b < 0x80 { return 1 }
    if b >> 5 == 0x6 { return 2 }
    if b >> 4 == 0xE { return 3 }
    if b >> 3 == 0x1E { return 4 }
    return 1
}

/// Encoding and decoding with the rules of the `sentencepiece` library.
public final class SentencePieceProcessor {
    public let proto: SentencePieceModelProto
    let charsmap: CharsMap?
    let pieceToId: [VocabKey: Int]
    let userDefined: ByteTrie
    let hasUserDefined: Bool
    let trie: ByteTrie  // normal, user-defined, unused pieces
    let minScore: Float
    let maxScore: Float
    let byteIds: [Int]
    let model: SentencePieceVocabModel
    /// The .model file's bytes, to write it again.
    let modelData: [UInt8]
    static let space: [UInt8] = Array("\u{2581}".utf8)

    public init(modelData: [UInt8]) throws {
        self.modelData = modelData
        proto = try SentencePieceModelProto(data: modelData)
        guard proto.modelType == 1 || proto.modelType == 2 else {
            throw TokenizerError.malformedModel("model type \(proto.modelType) is not supported (unigram and BPE are)")
        }
        charsmap = proto.precompiledCharsmap.isEmpty ? nil : try CharsMap(proto.precompiledCharsmap)
        var ids: [VocabKey: Int] = [:]
        var ud = ByteTrie(), t = ByteTrie()
        var hasUD = false
        // The library starts from FLT_MAX and FLT_MIN (the smallest positive float): with the usual negative
        // scores, the maximum stays FLT_MIN and a user-defined piece scores about -0.1.
        var mn = Float.greatestFiniteMagnitude, mx = Float.leastNormalMagnitude
        var bytes = [Int](repeating: -1, count: 256)
        for (i, p) in proto.pieces.enumerated() {
            if ids[VocabKey(p.piece)] == nil { ids[VocabKey(p.piece)] = i }
            switch p.type {
            case .normal:
                t.insert(Array(p.piece.utf8), id: i)
                mn = min(mn, p.score); mx = max(mx, p.score)
            case .userDefined:
                t.insert(Array(p.piece.utf8), id: i)
                ud.insert(Array(p.piece.utf8), id: i); hasUD = true
            case .unused:
                t.insert(Array(p.piece.utf8), id: i)
            case .byte:
                let u = Array(p.piece.utf8)
                if u.count == 6, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) { bytes[Int(b)] = i }
            default: break
            }
        }
        guard proto.unkId >= 0, proto.unkId < proto.pieces.count else { throw TokenizerError.malformedModel("unk_id out of range") }
        pieceToId = ids; userDefined = ud; hasUserDefined = hasUD; trie = t
        minScore = mn; maxScore = mx; byteIds = bytes
        model = SentencePieceVocabModel(pieces: proto.pieces.map { $0.piece }, ids: ids)
    }

    public convenience init(contentsOf url: URL) throws {
        guard let d = try? Data(contentsOf: url) else { throw TokenizerError.io("cannot read \(url.path)") }
        try self.init(modelData: [UInt8](d))
    }

    // MARK: normalization

    /// Normalizes `input` (UTF-8); returns the bytes, per output byte the input position of the
    /// chunk it comes from, and the input position that ends the last piece.
    func normalize(_ input: [UInt8]) -> ([UInt8], [Int32], Int) {
        var out: [UInt8] = []
        var os: [Int32] = [], oe: [Int32] = []
        out.reserveCapacity(input.count + 8)
        let n = input.count
        var pos = 0

        func prefix(_ p: Int) -> ([UInt8], Int) {
            if hasUserDefined {
                var best = 0
                userDefined.prefixes(input, from: p) { len, _ in best = max(best, len) }
                if best > 0 { return (Array(input[p..<(p + best)]), best) }
            }
            if let cm = charsmap {
                var longest = 0, value = 0
                for (len, v) in cm.commonPrefixSearch(input[p...]) where longest == 0 || len > longest { longest = len; value = v }
                if longest > 0 { return (cm.replacement(at: value) ?? [], longest) }
            }
            let l = min(utf8CharLen(input[p]), n - p)
            return (Array(input[p..<(p + l)]), l)
        }

        let remove = proto.removeExtraWhitespaces
        if remove {
            while pos < n {
                let (s, c) = prefix(pos)
                if s != [0x20] { break }
                pos += c
            }
        }
        if pos == n { return ([], [], n) }
        let space: [UInt8] = proto.escapeWhitespaces ? SentencePieceProcessor.space : [0x20]
        if proto.addDummyPrefix && !proto.treatWhitespaceAsSuffix {
            out += space; os += Array(repeating: Int32(pos), count: space.count); oe += Array(repeating: Int32(pos), count: space.count)
        }
        var prevSpace = remove
        while pos < n {
            let (s0, c) = prefix(pos)
            var s = s0[...]
            while prevSpace, s.first == 0x20 { s = s.dropFirst() }
            if !s.isEmpty {
                for b in s {
                    if proto.escapeWhitespaces && b == 0x20 { out += space; for _ in space { os.append(Int32(pos)); oe.append(Int32(pos + c)) } } else {
                        out.append(b); os.append(Int32(pos)); oe.append(Int32(pos + c))
                    }
                }
                prevSpace = s.last == 0x20
            }
            pos += c
            if !remove { prevSpace = false }
        }
        if proto.addDummyPrefix && proto.treatWhitespaceAsSuffix {
            out += space; os += Array(repeating: Int32(n), count: space.count); oe += Array(repeating: Int32(n), count: space.count)
        }
        var tail = n
        if remove {
            while out.count >= space.count, Array(out[(out.count - space.count)...]) == space {
                out.removeLast(space.count)
                tail = Int(os[out.count])
                os.removeLast(space.count); oe.removeLast(space.count)
            }
        }
        return (out, os, tail)
    }

    // MARK: encoding

    /// Pieces as (byte range in normalized, id).
    func encodePieces(_ s: [UInt8]) -> [(Range<Int>, Int)] {
        if s.isEmpty { return [] }
        let raw = proto.modelType == 2 ? encodeBPE(s) : encodeUnigram(s)
        var out: [(Range<Int>, Int)] = []
        var prevUnk = false
        for (r, id) in raw {
            let isUnk = id == proto.unkId
            if isUnk && proto.byteFallback {
                // Like the library: all byte pieces but the last have an empty span at the start.
                for i in r {
                    let bid = byteIds[Int(s[i])]
                    out.append((i + 1 == r.upperBound ? r : r.lowerBound..<r.lowerBound, bid >= 0 ? bid : proto.unkId))
                }
            } else if isUnk && prevUnk, let last = out.last {
                out[out.count - 1] = (last.0.lowerBound..<r.upperBound, id)
            } else {
                out.append((r, id))
            }
            prevUnk = isUnk
        }
        return out
    }

    func encodeUnigram(_ s: [UInt8]) -> [(Range<Int>, Int)] {
        let n = s.count
        let unkScore = minScore - 10.0
        var score = [Float](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var ids = [Int](repeating: -1, count: n + 1)
        var start = 0
        while start < n {
            let base = score[start]
            var single = false
            let mblen = min(utf8CharLen(s[start]), n - start)
            trie.prefixes(s, from: start) { len, id in
                let p = proto.pieces[id]
                if p.type == .unused { return }
                let end = start + len
                // `length * max_score - 0.1`: a float product, the subtraction in double.
                let sc: Float = p.type == .userDefined ? Float(Double(Float(len) * maxScore) - 0.1) : p.score
                // Path scores are floats and a later path must be strictly better: of equal paths, the one whose
                // last piece starts first wins (the library's output on long runs of one character agrees with
                // adding in float, not in double).
                let cand = sc + base
                if from[end] < 0 || cand > score[end] { score[end] = cand; from[end] = start; ids[end] = id }
                if len == mblen { single = true }
            }
            if !single {
                let end = start + mblen
                let cand = unkScore + base
                if from[end] < 0 || cand > score[end] { score[end] = cand; from[end] = start; ids[end] = proto.unkId }
            }
            start += mblen
        }
        var out: [(Range<Int>, Int)] = []
        var end = n
        while end > 0 {
            let st = from[end]
            if st < 0 { break }
            out.append((st..<end, ids[end]))
            end = st
        }
        return out.reversed()
    }

    func encodeBPE(_ s: [UInt8]) -> [(Range<Int>, Int)] {
        struct Sym { var start: Int; var end: Int; var prev: Int; var next: Int; var freeze: Bool }
        var syms: [Sym] = []
        var pos = 0
        while pos < s.count {
            var len = 0
            var freeze = false
            if hasUserDefined { userDefined.prefixes(s, from: pos) { l, _ in len = max(len, l) } }
            if len > 0 { freeze = true } else { len = min(utf8CharLen(s[pos]), s.count - pos) }
            syms.append(Sym(start: pos, end: pos + len, prev: syms.count - 1, next: pos + len < s.count ? syms.count + 1 : -1, freeze: freeze))
            pos += len
        }
        struct Pair { var left: Int; var right: Int; var score: Float; var size: Int }
        var heap: [Pair] = []
        func better(_ a: Pair, _ b: Pair) -> Bool { a.score > b.score || (a.score == b.score && a.left < b.left) }
        func push(_ p: Pair) {
            heap.append(p)
            var i = heap.count - 1
            while i > 0 { let q = (i - 1) / 2; if better(heap[i], heap[q]) { heap.swapAt(i, q); i = q } else { break } }
        }
        func pop() -> Pair? {
            guard !heap.isEmpty else { return nil }
            let top = heap[0]; let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var m = i
                    if l < heap.count && better(heap[l], heap[m]) { m = l }
                    if r < heap.count && better(heap[r], heap[m]) { m = r }
                    if m == i { break }
                    heap.swapAt(i, m); i = m
                }
            }
            return top
        }
        func maybeAdd(_ l: Int, _ r: Int) {
            if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze { return }
            // Normal, user-defined and unused pieces can be merged into (the trie holds those).
            guard let id = trie.exact(s, syms[l].start..<syms[r].end) else { return }
            push(Pair(left: l, right: r, score: proto.pieces[id].score, size: syms[r].end - syms[l].start))
        }
        for i in 1..<max(1, syms.count) { maybeAdd(i - 1, i) }
        while let top = pop() {
            let l = top.left, r = top.right
            if syms[l].end == syms[l].start || syms[r].end == syms[r].start { continue }
            if syms[r].end - syms[l].start != top.size || syms[l].next != r { continue }
            syms[l].end = syms[r].end
            syms[l].next = syms[r].next
            if syms[r].next >= 0 { syms[syms[r].next].prev = l }
            syms[r].start = syms[r].end
            maybeAdd(syms[l].prev, l)
            maybeAdd(l, syms[l].next)
        }
        var out: [(Range<Int>, Int)] = []
        var i = syms.isEmpty ? -1 : 0
        while i >= 0 {
            let r = syms[i].start..<syms[i].end
            resegment(s, r, into: &out)
            i = syms[i].next
        }
        return out
    }

    /// Splits unused pieces back into pieces that are in use (BPE only).
    private func resegment(_ s: [UInt8], _ r: Range<Int>, into out: inout [(Range<Int>, Int)]) {
        let piece = String(decoding: s[r], as: UTF8.self)
        guard let id = pieceToId[VocabKey(piece)] else { out.append((r, proto.unkId)); return }
        if proto.pieces[id].type != .unused { out.append((r, id)); return }
        // Find a split point whose halves are both known pieces.
        for k in (r.lowerBound + 1)..<r.upperBound {
            let a = String(decoding: s[r.lowerBound..<k], as: UTF8.self), b = String(decoding: s[k..<r.upperBound], as: UTF8.self)
            if pieceToId[VocabKey(a)] != nil && pieceToId[VocabKey(b)] != nil {
                resegment(s, r.lowerBound..<k, into: &out); resegment(s, k..<r.upperBound, into: &out); return
            }
        }
        out.append((r, id))
    }

    /// Encodes a text to ids.
    public func encode(_ text: String) -> [Int] { encodeToEncoding(text).ids }

    /// Encodes to pieces (the `out_type=str` form of the Python library).
    public func encodePieces(_ text: String) -> [String] { encodeToEncoding(text).tokens }

    func encodeToEncoding(_ text: String, typeId: Int = 0) -> Encoding {
        let input = Array(text.utf8)
        let (norm, os, tail) = normalize(input)
        // input byte -> char index
        var charIndex = [Int](repeating: 0, count: input.count + 1)
        var ci = 0
        for i in input.indices {
            charIndex[i] = ci
            if i + 1 == input.count || input[i + 1] & 0xC0 != 0x80 { ci += 1 }
        }
        charIndex[input.count] = ci
        // The library's spans: a piece runs from the input position of its first normalized byte to
        // that of the next piece (or the end), so removed input goes to the piece before it.
        func origin(_ k: Int) -> Int { k < norm.count ? charIndex[Int(os[k])] : charIndex[tail] }
        var e = Encoding()
        for (r, id) in encodePieces(norm) {
            let a = origin(r.lowerBound)
            let b = r.isEmpty ? a : origin(r.upperBound)
            let tok = id == proto.unkId ? String(decoding: norm[r], as: UTF8.self) : proto.pieces[id].piece
            e.append(id: id, token: tok, typeId: typeId, offset: (a, b), special: false, word: nil)
        }
        return e
    }

    public func decode(_ ids: [Int]) -> String {
        var out: [UInt8] = []
        var pendingBytes: [UInt8] = []
        var bos = true
        func flush() {
            if pendingBytes.isEmpty { return }
            out += Array(String(decoding: pendingBytes, as: UTF8.self).utf8)
            pendingBytes.removeAll()
            bos = false
        }
        for id in ids {
            guard id >= 0, id < proto.pieces.count else { continue }
            let p = proto.pieces[id]
            switch p.type {
            case .control: continue
            case .byte:
                let u = Array(p.piece.utf8)
                if u.count == 6, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) { pendingBytes.append(b) }
                continue
            default: break
            }
            flush()
            if p.type == .unknown {
                out += Array(proto.unkSurface.utf8)
            } else {
                var u = Array(p.piece.utf8)[...]
                if bos && proto.addDummyPrefix && !proto.treatWhitespaceAsSuffix && u.starts(with: SentencePieceProcessor.space) {
                    u = u.dropFirst(3)
                }
                var i = u.startIndex
                while i < u.endIndex {
                    if u[i] == 0xE2 && i + 2 < u.endIndex && u[i + 1] == 0x96 && u[i + 2] == 0x81 { out.append(0x20); i += 3 } else { out.append(u[i]); i += 1 }
                }
            }
            if !out.isEmpty { bos = false }
        }
        flush()
        return String(decoding: out, as: UTF8.self)
    }

    public var unkId: Int { proto.unkId }
    public var bosId: Int { proto.bosId }
    public var eosId: Int { proto.eosId }
    public var padId: Int { proto.padId }
    public var vocabSize: Int { proto.pieces.count }
    public func idToPiece(_ id: Int) -> String? { id >= 0 && id < proto.pieces.count ? proto.pieces[id].piece : nil }
    public func pieceToId(_ piece: String) -> Int { pieceToId[VocabKey(piece)] ?? proto.unkId }
}

/// The vocabulary side of a SentencePiece model, so that it fits `Tokenizer.model`.
public final class SentencePieceVocabModel: TokenizerModel {
    let pieces: [String]
    let ids: [VocabKey: Int]
    init(pieces: [String], ids: [VocabKey: Int]) { self.pieces = pieces; self.ids = ids }
    public func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        throw TokenizerError.io("SentencePiece models encode whole texts")
    }
    public func tokenToId(_ token: String) -> Int? { ids[VocabKey(token)] }
    public func idToToken(_ id: Int) -> String? { id >= 0 && id < pieces.count ? pieces[id] : nil }
    public var vocabSize: Int { pieces.count }
    public func toJSON() -> JSONValue { .null }

}
