import Foundation

/// A decoder turns tokens back into text (`decodeChain` works token by token, like Rust's).
protocol Decoder {
    func decodeChain(_ tokens: [String]) throws -> [String]
}

extension Decoder {
    func decode(_ tokens: [String]) throws -> String { try decodeChain(tokens).joined() }
}

struct WordPieceDecoder: Decoder {
    let prefix: String
    let cleanup: Bool
    static func cleanup(_ s: String) -> String {
        var r = s
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            r = replaceBytes(r, a, b)
        }
        return r
    }
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t0 in
            var t = t0
            if i != 0 {
                if t.hasBytePrefix(prefix) { t = String(decoding: Array(t.utf8.dropFirst(prefix.utf8.count)), as: UTF8.self) } else { t = " " + t }
            }
            return cleanup ? WordPieceDecoder.cleanup(t) : t
        }
    }
}

struct ByteLevelDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        let map = ByteLevelTable.scalarToByte
        for t in tokens {
            var tb: [UInt8] = []
            var ok = true
            for c in t.unicodeScalars {
                if let b = map[c.value] { tb.append(b) } else { ok = false; break }
            }
            if ok { bytes += tb } else { bytes += Array(t.utf8) }
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

struct MetaspaceDecoder: Decoder {
    let replacement: Unicode.Scalar
    let prependScheme: PrependScheme
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var v = String.UnicodeScalarView()
            for c in t.unicodeScalars {
                if c == replacement {
                    if i == 0 && prependScheme != .never { continue }
                    v.append(" ")
                } else { v.append(c) }
            }
            return String(v)
        }
    }
}

struct BPEDecoder: Decoder {
    let suffix: String
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            suffix.isEmpty ? t : replaceBytes(t, suffix, i == tokens.count - 1 ? "" : " ")
        }
    }
}

struct ByteFallbackDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validating: pending, as: UTF8.self) { out.append(s) } else {
                out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for t in tokens {
            let u = Array(t.utf8)
            if u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E, let b = UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16) {
                pending.append(b)
            } else {
                flush()
                out.append(t)
            }
        }
        flush()
        return out
    }
}

struct FuseDecoder: Decoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

struct StripDecoder: Decoder {
    let content: Unicode.Scalar
    let start: Int
    let stop: Int
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { t in
            let cs = Array(t.unicodeScalars)
            var a = 0
            for i in 0..<min(start, cs.count) { if cs[i] == content { a = i + 1 } else { break } }
            var b = cs.count
            for i in 0..<min(stop, cs.count) {
                let idx = cs.count - i - 1
                if cs[idx] == content { b = idx } else { break }
            }
            if b < a { b = a }
            return makeString(cs[a..<b])
        }
    }
}

struct ReplaceDecoder: Decoder {
    let pattern: TextPattern
    let content: String
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { t in
            let s = Array(t.unicodeScalars)
            var out = ""
            for (r, m) in pattern.coverageMatches(in: s) {
                if m { out += content } else { out += makeString(s[r]) }
            }
            return out
        }
    }
}

struct CTCDecoder: Decoder {
    let padToken: String
    let wordDelimiter: String
    let cleanup: Bool
    func decodeChain(_ tokens: [String]) -> [String] {
        var dedup: [String] = []
        for t in tokens where dedup.last != t { dedup.append(t) }
        return dedup.compactMap { t in
            var r = replaceBytes(t, padToken, "")
            if cleanup { r = replaceBytes(WordPieceDecoder.cleanup(r), wordDelimiter, " ") }
            return r.isEmpty ? nil : r
        }
    }
}

struct SequenceDecoder: Decoder {
    let items: [Decoder]
    func decodeChain(_ tokens: [String]) throws -> [String] {
        var t = tokens
        for d in items { t = try d.decodeChain(t) }
        return t
    }
}

enum DecoderFactory {
    static func make(_ node: JNode) throws -> Decoder {
        let type = try node.typeName()
        let n = node.withComponent(type)
        switch type {
        case "WordPiece":
            return WordPieceDecoder(prefix: try n.string("prefix", default: "##"), cleanup: try n.bool("cleanup", default: true))
        case "ByteLevel": return ByteLevelDecoder()
        case "Metaspace":
            return MetaspaceDecoder(replacement: try parseReplacement(n), prependScheme: try parsePrependScheme(n))
        case "BPEDecoder": return BPEDecoder(suffix: try n.string("suffix", default: "</w>"))
        case "ByteFallback": return ByteFallbackDecoder()
        case "Fuse": return FuseDecoder()
        case "Strip":
            let f = try n.field("content")
            guard let c = try f.string().unicodeScalars.first else { throw f.invalid("empty content") }
            return StripDecoder(content: c, start: try n.int("start", default: 0), stop: try n.int("stop", default: 0))
        case "Replace":
            return ReplaceDecoder(pattern: try TextPattern.parse(try n.field("pattern")), content: try n.string("content"))
        case "CTC":
            return CTCDecoder(padToken: try n.string("pad_token", default: "<pad>"),
                              wordDelimiter: try n.string("word_delimiter_token", default: "|"),
                              cleanup: try n.bool("cleanup", default: true))
        case "Sequence":
            return SequenceDecoder(items: try n.field("decoders").array().map { try make($0) })
        default:
            throw TokenizerError.unknownType(path: node.path + ".type", type: type)
        }
    }
}
