import Foundation
import Synchronization

extension Unicode.Scalar {
    /// Rust's `char::is_whitespace` (the White_Space property: this fixed list is all of it, the same
    /// as `properties.isWhitespace` for every scalar, without the property lookup).
    @inline(__always) var isWS: Bool {
        switch value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }
    /// Rust's `char::is_numeric`: general categories Nd, Nl, No.
    var isNumericChar: Bool {
        let v = value
        if v < 0x80 { return v >= 0x30 && v <= 0x39 }
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
    var isLetterChar: Bool {
        let v = value
        if v < 0x80 { return (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
    /// Rust's `char::is_alphanumeric`.
    var isAlphanumericChar: Bool {
        let v = value
        if v < 0x80 { return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) }
        return properties.isAlphabetic || isNumericChar
    }
    /// `is_ascii_punctuation || is_punctuation` (general category P*).
    var isPunctuationChar: Bool {
        let v = value
        if v < 0x80 {
            return (v >= 0x21 && v <= 0x2F) || (v >= 0x3A && v <= 0x40) || (v >= 0x5B && v <= 0x60) || (v >= 0x7B && v <= 0x7E)
        }
        switch properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
    /// The regex crate's `\w`: Alphabetic, M, Nd, Pc, Join_Control.
    var isWordChar: Bool {
        let v = value
        if v < 0x80 { return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F }
        let p = properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
    /// Unicode "Other" categories (Cc, Cf, Cs, Co, Cn).
    var isOtherCategory: Bool {
        switch properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }
    var isNonspacingMark: Bool { value >= 0x300 && properties.generalCategory == .nonspacingMark }
}

/// Unicode normalization with Rust-style change tracking (`unicode-normalization-alignments`).
enum UnicodeForm { case nfd, nfkd, nfc, nfkc }

final class NormalizationCache: Sendable {
    static let shared = NormalizationCache()
    private let canon = Mutex<[UInt32: [Unicode.Scalar]]>([:])
    private let compat = Mutex<[UInt32: [Unicode.Scalar]]>([:])
    private let composed = Mutex<[UInt64: UInt32]>([:])  // 0 = no composition

    func decompose(_ c: Unicode.Scalar, compatibility: Bool) -> [Unicode.Scalar] {
        if c.value < 0xA0 { return [c] }
        if let r = (compatibility ? compat.withLock { $0[c.value] } : canon.withLock { $0[c.value] }) { return r }
        let s = String(c)
        let d = compatibility ? s.decomposedStringWithCompatibilityMapping : s.decomposedStringWithCanonicalMapping
        let r = Array(d.unicodeScalars)
        if compatibility { compat.withLock { $0[c.value] = r } } else { canon.withLock { $0[c.value] = r } }
        return r
    }

    func compose(_ a: Unicode.Scalar, _ b: Unicode.Scalar) -> Unicode.Scalar? {
        // Hangul syllables compose algorithmically (Foundation on Linux misses LV + T).
        let av = a.value, bv = b.value
        if av >= 0x1100 && av <= 0x1112 && bv >= 0x1161 && bv <= 0x1175 {
            return Unicode.Scalar(0xAC00 + ((av - 0x1100) * 21 + (bv - 0x1161)) * 28)
        }
        if av >= 0xAC00 && av <= 0xD7A3 && (av - 0xAC00) % 28 == 0 && bv >= 0x11A8 && bv <= 0x11C2 {
            return Unicode.Scalar(av + (bv - 0x11A7))
        }
        let key = (UInt64(a.value) << 32) | UInt64(b.value)
        if let r = composed.withLock({ $0[key] }) { return r == 0 ? nil : Unicode.Scalar(r) }
        var v = String.UnicodeScalarView()
        v.append(a); v.append(b)
        let c = String(v).precomposedStringWithCanonicalMapping.unicodeScalars
        var r: UInt32 = 0
        if c.count == 1, let f = c.first { r = f.value }
        composed.withLock { $0[key] = r }
        return r == 0 ? nil : Unicode.Scalar(r)
    }
}

func unicodeNormalize(_ ns: inout NormalizedString, _ form: UnicodeForm) {
    // Fast path: text that no form changes.
    let limit: UInt32 = (form == .nfc) ? 0x300 : 0x80
    if !ns.scalars.contains(where: { $0.value >= limit }) { return }
    let compat = (form == .nfkd || form == .nfkc)
    let cache = NormalizationCache.shared
    var dec: [(Unicode.Scalar, Int)] = []
    dec.reserveCapacity(ns.count + 8)
    for c in ns.scalars {
        if c.value < 0x80 { dec.append((c, 0)); continue }
        let d = cache.decompose(c, compatibility: compat)
        for (i, x) in d.enumerated() { dec.append((x, i > 0 ? 1 : 0)) }
    }
    // Canonical ordering: stable sort runs of non-starters by combining class.
    var i = 0
    while i < dec.count {
        if dec[i].0.value < 0x300 || dec[i].0.properties.canonicalCombiningClass.rawValue == 0 { i += 1; continue }
        var j = i
        while j < dec.count, dec[j].0.properties.canonicalCombiningClass.rawValue != 0 { j += 1 }
        if j - i > 1 {
            let run = dec[i..<j].enumerated().sorted { a, b in
                let ca = a.element.0.properties.canonicalCombiningClass.rawValue
                let cb = b.element.0.properties.canonicalCombiningClass.rawValue
                return ca != cb ? ca < cb : a.offset < b.offset
            }.map { $0.element }
            dec.replaceSubrange(i..<j, with: run)
        }
        i = j
    }
    if form == .nfc || form == .nfkc {
        var out: [(Unicode.Scalar, Int)] = []
        out.reserveCapacity(dec.count)
        var starter: Int? = nil
        var lastCCC: UInt8 = 0
        for (c, ch) in dec {
            if c.value < 0x300 {
                // Characters below U+0300 have class 0 and are never the second of a composition.
                starter = out.count; lastCCC = 0; out.append((c, ch)); continue
            }
            let ccc = c.properties.canonicalCombiningClass.rawValue
            if let si = starter {
                let adjacent = (out.count - 1 == si)
                if adjacent || (lastCCC != 0 && lastCCC < ccc) {
                    if let comp = cache.compose(out[si].0, c) {
                        out[si] = (comp, out[si].1 + ch - 1)
                        continue
                    }
                }
            }
            if ccc == 0 { starter = out.count; lastCCC = 0 } else { lastCCC = ccc }
            out.append((c, ch))
        }
        dec = out
    }
    // Skip the transform when nothing changed.
    if dec.count == ns.count && zip(dec, ns.scalars).allSatisfy({ $0.0.0 == $0.1 && $0.0.1 == 0 }) { return }
    ns.transform(dec)
}

/// Lowercases with the full Unicode mapping of each scalar (Rust's `char::to_lowercase`).
func lowercaseScalars(_ ns: inout NormalizedString) {
    ns.mapScalars { c in
        let v = c.value
        if v < 0x80 {
            if v >= 0x41 && v <= 0x5A { return [Unicode.Scalar(v + 32)!] }
            return nil
        }
        let m = c.properties.lowercaseMapping
        let u = Array(m.unicodeScalars)
        if u.count == 1 && u[0] == c { return nil }
        return u
    }
}

/// Converts a Python-style (code point) string to scalars, replacing invalid UTF-8 like Python's
/// `bytes.decode("utf-8", errors="replace")`.
public func decodeUTF8Lossy(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Replaces every occurrence of `target` by `replacement`, comparing UTF-8 bytes exactly.
func replaceBytes(_ s: String, _ target: String, _ replacement: String) -> String {
    let t = Array(target.utf8)
    if t.isEmpty { return s }
    let b = Array(s.utf8)
    if b.count < t.count { return s }
    var out: [UInt8] = []
    out.reserveCapacity(b.count)
    let r = Array(replacement.utf8)
    var i = 0
    var changed = false
    while i < b.count {
        if b[i] == t[0], i + t.count <= b.count, b[i..<(i + t.count)].elementsEqual(t) {
            out += r; i += t.count; changed = true
        } else { out.append(b[i]); i += 1 }
    }
    return changed ? String(decoding: out, as: UTF8.self) : s
}

extension StringProtocol {
    func hasBytePrefix(_ p: String) -> Bool { utf8.starts(with: p.utf8) }
    func hasByteSuffix(_ p: String) -> Bool { utf8.reversed().starts(with: p.utf8.reversed()) }
}
