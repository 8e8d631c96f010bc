import Foundation

/// A post-processor adds special tokens and adjusts type ids / offsets.
protocol PostProcessor {
    /// Number of special tokens added for a single sequence or a pair.
    func addedTokens(isPair: Bool) -> Int
    /// Processes the encodings (one per sequence); the results are concatenated by the caller.
    func processEncodings(_ encs: [Encoding], addSpecialTokens: Bool) throws -> [Encoding]
}

func mergeEncodings(_ encs: [Encoding]) -> Encoding {
    var e = encs.first ?? Encoding()
    for o in encs.dropFirst() { e.append(o) }
    return e
}

struct BertProcessing: PostProcessor {
    let sep: (String, Int)
    let cls: (String, Int)
    func addedTokens(isPair: Bool) -> Int { isPair ? 3 : 2 }
    func processEncodings(_ encs: [Encoding], addSpecialTokens: Bool) -> [Encoding] {
        guard addSpecialTokens else { return encs }
        var e = Encoding()
        e.reserve(encs.reduce(0) { $0 + $1.count } + encs.count + 1)
        for (i, body) in encs.enumerated() {
            let t = i == 0 ? 0 : 1
            if i == 0 { e.append(id: cls.1, token: cls.0, typeId: 0, offset: (0, 0), special: true, word: nil) }
            e.append(body, typeId: t)
            e.append(id: sep.1, token: sep.0, typeId: t, offset: (0, 0), special: true, word: nil)
        }
        e.overflowing = encs.first?.overflowing ?? []
        return [e]
    }
}

/// Trims leading/trailing spaces (Ġ or whitespace) of byte-level tokens out of their offsets.
func byteLevelTrimOffsets(_ e: inout Encoding, addPrefixSpace: Bool) {
    byteLevelTrimOffsets(&e, addPrefixSpace: addPrefixSpace, range: 0..<e.count, firstIndex: 0)
    for j in e.overflowing.indices { byteLevelTrimOffsets(&e.overflowing[j], addPrefixSpace: addPrefixSpace) }
}

/// Trims the tokens in `range`; token `range.lowerBound + k` counts as index `firstIndex + k`.
func byteLevelTrimOffsets(_ e: inout Encoding, addPrefixSpace: Bool, range: Range<Int>, firstIndex: Int) {
    let space = ByteLevelTable.byteToScalar[0x20]
    for i in range {
        let tok = e.tokens[i].unicodeScalars
        var lead = 0
        for c in tok { if c == space || c.isWS { lead += 1 } else { break } }
        var trail = 0
        for c in tok.reversed() { if c == space || c.isWS { trail += 1 } else { break } }
        if lead == 0 && trail == 0 { continue }
        var (s, t) = e.offsets[i]
        if lead > 0 {
            let isFirst = (i - range.lowerBound + firstIndex) == 0 || s == 0
            if isFirst && addPrefixSpace && lead == 1 { lead = 0 }
            s = min(s + lead, t)
        }
        if trail > 0 && t >= trail { t = max(t - trail, s) }
        e.offsets[i] = (s, t)
    }
}

struct RobertaProcessing: PostProcessor {
    let sep: (String, Int)
    let cls: (String, Int)
    let trimOffsets: Bool
    let addPrefixSpace: Bool
    func addedTokens(isPair: Bool) -> Int { isPair ? 4 : 2 }
    func processEncodings(_ encs0: [Encoding], addSpecialTokens: Bool) -> [Encoding] {
        var e = Encoding()
        e.reserve(encs0.reduce(0) { $0 + $1.count } + 2 * encs0.count)
        for (i, body) in encs0.enumerated() {
            if addSpecialTokens {
                if i == 0 { e.append(id: cls.1, token: cls.0, typeId: 0, offset: (0, 0), special: true, word: nil) } else {
                    e.append(id: sep.1, token: sep.0, typeId: 0, offset: (0, 0), special: true, word: nil)
                }
            }
            let start = e.count
            e.append(body, typeId: 0)
            if trimOffsets { byteLevelTrimOffsets(&e, addPrefixSpace: addPrefixSpace, range: start..<e.count, firstIndex: 0) }
            if addSpecialTokens { e.append(id: sep.1, token: sep.0, typeId: 0, offset: (0, 0), special: true, word: nil) }
        }
        var first = encs0.first?.overflowing ?? []
        if trimOffsets { for j in first.indices { byteLevelTrimOffsets(&first[j], addPrefixSpace: addPrefixSpace) } }
        e.overflowing = first
        return [e]
    }
}

struct ByteLevelProcessing: PostProcessor {
    let trimOffsets: Bool
    let addPrefixSpace: Bool
    func addedTokens(isPair: Bool) -> Int { 0 }
    func processEncodings(_ encs0: [Encoding], addSpecialTokens: Bool) -> [Encoding] {
        var encs = encs0
        if trimOffsets { for i in encs.indices { byteLevelTrimOffsets(&encs[i], addPrefixSpace: addPrefixSpace) } }
        // Like the default processing: the pair keeps type id 1.
        return encs
    }
}

struct TemplateProcessing: PostProcessor {
    enum Piece { case sequence(Int, typeId: Int); case special(String, typeId: Int) }
    let single: [Piece]
    let pair: [Piece]
    let specials: [String: (ids: [Int], tokens: [String])]

    func addedTokens(isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { acc, p in
            if case let .special(id, _) = p { return acc + (specials[id]?.ids.count ?? 0) }
            return acc
        }
    }

    func processEncodings(_ encs: [Encoding], addSpecialTokens: Bool) throws -> [Encoding] {
        let template = encs.count > 1 ? pair : single
        var out = Encoding()
        out.reserve(encs.reduce(0) { $0 + $1.count } + addedTokens(isPair: encs.count > 1))
        for p in template {
            switch p {
            case let .sequence(i, typeId):
                guard i < encs.count else { continue }
                out.append(encs[i], typeId: typeId)
            case let .special(id, typeId):
                if addSpecialTokens, let s = specials[id] {
                    for (i, t) in zip(s.ids, s.tokens) {
                        out.append(id: i, token: t, typeId: typeId, offset: (0, 0), special: true, word: nil)
                    }
                }
            }
        }
        return [out]
    }

    static func parsePieces(_ n: JNode) throws -> [Piece] {
        var out: [Piece] = []
        for p in try n.array() {
            if let s = p.optional("Sequence") {
                let id = try s.string("id")
                guard id == "A" || id == "B" else { throw s.invalid("sequence id must be A or B") }
                out.append(.sequence(id == "A" ? 0 : 1, typeId: try s.int("type_id", default: 0)))
            } else if let s = p.optional("SpecialToken") {
                out.append(.special(try s.string("id"), typeId: try s.int("type_id", default: 0)))
            } else if case let .string(str) = p.value {
                out.append(try parseTemplateString(str, p))
            } else {
                throw p.invalid("expected a Sequence or SpecialToken piece")
            }
        }
        return out
    }

    /// Parses "$A", "$B:1", "[CLS]:0" style pieces.
    static func parseTemplateString(_ s: String, _ n: JNode) throws -> Piece {
        var name = s
        var typeId = 0
        if let colon = s.lastIndex(of: ":"), let t = Int(s[s.index(after: colon)...]) {
            name = String(s[..<colon]); typeId = t
        }
        if name.hasPrefix("$") {
            let r = name.dropFirst()
            if r == "" || r == "A" || r == "a" { return .sequence(0, typeId: typeId) }
            if r == "B" || r == "b" { return .sequence(1, typeId: typeId) }
            if let t = Int(r) { return .sequence(0, typeId: t) }
            throw n.invalid("invalid template piece '\(s)'")
        }
        return .special(name, typeId: typeId)
    }
}

struct SequenceProcessing: PostProcessor {
    let items: [PostProcessor]
    func addedTokens(isPair: Bool) -> Int { items.reduce(0) { $0 + $1.addedTokens(isPair: isPair) } }
    func processEncodings(_ encs: [Encoding], addSpecialTokens: Bool) throws -> [Encoding] {
        var e = encs
        for p in items { e = try p.processEncodings(e, addSpecialTokens: addSpecialTokens) }
        return e
    }
}

enum PostProcessorFactory {
    static func tokenPair(_ n: JNode) throws -> (String, Int) {
        let a = try n.array()
        guard a.count == 2 else { throw n.invalid("expected [token, id]") }
        return (try a[0].string(), try a[1].int())
    }

    static func make(_ node: JNode) throws -> PostProcessor {
        let type = try node.typeName()
        let n = node.withComponent(type)
        switch type {
        case "BertProcessing":
            return BertProcessing(sep: try tokenPair(try n.field("sep")), cls: try tokenPair(try n.field("cls")))
        case "RobertaProcessing":
            return RobertaProcessing(sep: try tokenPair(try n.field("sep")), cls: try tokenPair(try n.field("cls")),
                                     trimOffsets: try n.bool("trim_offsets", default: true),
                                     addPrefixSpace: try n.bool("add_prefix_space", default: true))
        case "ByteLevel":
            return ByteLevelProcessing(trimOffsets: try n.bool("trim_offsets", default: true),
                                       addPrefixSpace: try n.bool("add_prefix_space", default: true))
        case "TemplateProcessing":
            var specials: [String: (ids: [Int], tokens: [String])] = [:]
            if let st = n.optional("special_tokens") {
                for (k, v) in try st.object() {
                    specials[k] = (try v.field("ids").array().map { try $0.int() }, try v.field("tokens").array().map { try $0.string() })
                }
            }
            let single = try TemplateProcessing.parsePieces(try n.field("single"))
            let pair = try TemplateProcessing.parsePieces(try n.field("pair"))
            for p in single + pair {
                if case let .special(id, _) = p, specials[id] == nil {
                    throw TokenizerError.invalidField(path: n.path + ".special_tokens", component: type, reason: "missing special token '\(id)'")
                }
            }
            return TemplateProcessing(single: single, pair: pair, specials: specials)
        case "Sequence":
            return SequenceProcessing(items: try n.field("processors").array().map { try make($0) })
        default:
            throw TokenizerError.unknownType(path: node.path + ".type", type: type)
        }
    }
}
