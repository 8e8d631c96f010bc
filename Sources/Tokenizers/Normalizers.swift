import Foundation

/// A normalizer transforms a `NormalizedString` in place, keeping alignments.
public protocol Normalizer {
    func normalize(_ s: inout NormalizedString) throws
}

extension Normalizer {
    /// Normalizes a plain string (convenience for tests and tools).
    public func normalize(_ text: String) throws -> String {
        var n = NormalizedString(text)
        try normalize(&n)
        return n.string
    }
}

public struct BertNormalizer: Normalizer {
    public var cleanText = true
    public var handleChineseChars = true
    public var stripAccents: Bool? = nil
    public var lowercase = true

    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText; self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents; self.lowercase = lowercase
    }

    static func isChinese(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    public func normalize(_ s: inout NormalizedString) {
        if cleanText {
            s.filter { c in
                let v = c.value
                if v == 0 || v == 0xFFFD { return false }
                if v == 0x09 || v == 0x0A || v == 0x0D { return true }
                if v < 0x80 { return !(v < 0x20 || v == 0x7F) }
                return !c.isOtherCategory
            }
            s.mapScalars { c in
                if c.value == 0x20 { return nil }
                if c.value == 0x09 || c.value == 0x0A || c.value == 0x0D || c.isWS { return [" "] }
                return nil
            }
        }
        if handleChineseChars {
            s.mapScalars { c in BertNormalizer.isChinese(c) ? [" ", c, " "] : nil }
        }
        if stripAccents ?? lowercase {
            unicodeNormalize(&s, .nfd)
            s.filter { !$0.isNonspacingMark }
        }
        if lowercase { lowercaseScalars(&s) }
    }
}

public struct LowercaseNormalizer: Normalizer {
    public func normalize(_ s: inout NormalizedString) { lowercaseScalars(&s) }
}

public struct UnicodeNormalizer: Normalizer {
    let form: UnicodeForm
    public func normalize(_ s: inout NormalizedString) { unicodeNormalize(&s, form) }
}

public struct StripAccentsNormalizer: Normalizer {
    public func normalize(_ s: inout NormalizedString) { s.filter { !$0.isNonspacingMark } }
}

public struct StripNormalizer: Normalizer {
    public var left: Bool
    public var right: Bool
    public func normalize(_ s: inout NormalizedString) { s.strip(left: left, right: right) }
}

public struct ReplaceNormalizer: Normalizer {
    let pattern: TextPattern
    let content: [Unicode.Scalar]
    public func normalize(_ s: inout NormalizedString) {
        let m = pattern.find(in: s.scalars)
        if m.isEmpty { return }
        s.replace(matches: coverage(m, count: s.count), content: content)
    }
}

public struct PrependNormalizer: Normalizer {
    let prepend: [Unicode.Scalar]
    public func normalize(_ s: inout NormalizedString) { s.prepend(prepend) }
}

/// The `Nmt` normalizer (SentencePiece's NMT rules: drop control chars, map some spaces to ' ').
public struct NmtNormalizer: Normalizer {
    public func normalize(_ s: inout NormalizedString) {
        s.filter { c in
            switch c.value {
            case 0x0001...0x0008, 0x000B, 0x000E...0x001F, 0x007F, 0x008F, 0x009F: return false
            default: return true
            }
        }
        s.mapScalars { c in
            switch c.value {
            case 0x0009, 0x000A, 0x000C, 0x000D, 0x1680, 0x200B...0x200F, 0x2028, 0x2029, 0x2581, 0xFEFF, 0xFFFD:
                return [" "]
            default: return nil
            }
        }
    }
}

/// Maps every character to the byte-level characters of its UTF-8 bytes (GPT-2 alphabet).
public struct ByteLevelNormalizer: Normalizer {
    public func normalize(_ s: inout NormalizedString) { byteLevelEncode(&s) }
}

public struct SequenceNormalizer: Normalizer {
    public var normalizers: [Normalizer]
    public func normalize(_ s: inout NormalizedString) throws {
        for n in normalizers { try n.normalize(&s) }
    }
}

enum NormalizerFactory {
    static func make(_ node: JNode) throws -> Normalizer {
        let type = try node.typeName()
        let n = node.withComponent(type)
        switch type {
        case "BertNormalizer":
            var sa: Bool? = nil
            if let x = n.optional("strip_accents") { sa = try x.bool() }
            return BertNormalizer(cleanText: try n.bool("clean_text", default: true),
                                  handleChineseChars: try n.bool("handle_chinese_chars", default: true),
                                  stripAccents: sa, lowercase: try n.bool("lowercase", default: true))
        case "Lowercase": return LowercaseNormalizer()
        case "NFC": return UnicodeNormalizer(form: .nfc)
        case "NFD": return UnicodeNormalizer(form: .nfd)
        case "NFKC": return UnicodeNormalizer(form: .nfkc)
        case "NFKD": return UnicodeNormalizer(form: .nfkd)
        case "StripAccents": return StripAccentsNormalizer()
        case "Strip":
            return StripNormalizer(left: try n.bool("strip_left", default: true), right: try n.bool("strip_right", default: true))
        case "Replace":
            return ReplaceNormalizer(pattern: try TextPattern.parse(try n.field("pattern")),
                                     content: Array(try n.string("content").unicodeScalars))
        case "Prepend": return PrependNormalizer(prepend: Array(try n.string("prepend").unicodeScalars))
        case "Nmt": return NmtNormalizer()
        case "ByteLevel": return ByteLevelNormalizer()
        case "Precompiled":
            let f = try n.field("precompiled_charsmap")
            guard let data = Data(base64Encoded: try f.string()) else { throw f.invalid("invalid base64") }
            do { return try PrecompiledNormalizer(charsmap: [UInt8](data)) } catch { throw f.invalid("invalid precompiled charsmap") }
        case "Sequence":
            return SequenceNormalizer(normalizers: try n.field("normalizers").array().map { try make($0) })
        default:
            throw TokenizerError.unknownType(path: node.path + ".type", type: type)
        }
    }
}
