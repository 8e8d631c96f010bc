import JSON
import Foundation
import XCTest
@testable import Tokenizers

enum Fixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent(name)
    }
    static func data(_ name: String) throws -> Data { try Data(contentsOf: url(name)) }
    static func json(_ name: String) throws -> JSONValue { try JSONValue.parse(try data(name)) }
}

extension JSONValue {
    subscript(_ k: String) -> JSONValue? {
        if case let .object(o) = self { return o[k] }
        return nil
    }
    var arrayValue: [JSONValue] { if case let .array(a) = self { return a }; return [] }
    var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    var intValue: Int? { if case let .number(d) = self { return Int(d) }; return nil }
    var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }
    var intArray: [Int] { arrayValue.compactMap { $0.intValue } }
    var stringArray: [String] { arrayValue.compactMap { $0.stringValue } }
    var isNull: Bool { if case .null = self { return true }; return false }

    /// Returns a copy of this object with the given top-level keys replaced.
    func overriding(_ other: JSONValue) -> JSONValue {
        guard case var .object(d) = self, case let .object(o) = other else { return self }
        for (k, v) in o.pairs {
            if let i = d.pairs.firstIndex(where: { $0.0 == k }) { d.pairs[i].1 = v } else { d.pairs.append((k, v)) }
        }
        return .object(d)
    }
}

/// The text of a golden case (invalid UTF-8 is decoded with replacement, like Python's errors="replace").
func caseText(_ c: JSONValue) -> String {
    if let b = c["text_b64"]?.stringValue, let d = Data(base64Encoded: b) { return decodeUTF8Lossy([UInt8](d)) }
    return c["text"]?.stringValue ?? ""
}

func describe(_ s: String) -> String {
    s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? String(format: "\\u{%X}", $0.value) : String($0) }.joined()
}

/// Compares an encoding with a golden dict; returns a list of differences.
func diff(_ e: Encoding, _ g: JSONValue, tokenizer: Tokenizer, fields: Bool = true) -> [String] {
    var out: [String] = []
    if e.ids != g["ids"]!.intArray { out.append("ids \(e.ids) != \(g["ids"]!.intArray)") }
    if e.tokens != g["tokens"]!.stringArray { out.append("tokens \(e.tokens) != \(g["tokens"]!.stringArray)") }
    if e.typeIds != g["type_ids"]!.intArray { out.append("type_ids \(e.typeIds) != \(g["type_ids"]!.intArray)") }
    if e.attentionMask != g["attention_mask"]!.intArray { out.append("attention_mask differs") }
    if e.specialTokensMask != g["special_tokens_mask"]!.intArray { out.append("special_tokens_mask \(e.specialTokensMask) != \(g["special_tokens_mask"]!.intArray)") }
    let go = g["offsets"]!.arrayValue.map { $0.intArray }
    let eo = e.offsets.map { [$0.0, $0.1] }
    if eo != go { out.append("offsets \(eo) != \(go)") }
    if let d = g["decode"]?.stringValue {
        do {
            let s = try tokenizer.decode(g["ids"]!.intArray, skipSpecialTokens: true)
            if s != d { out.append("decode '\(describe(s))' != '\(describe(d))'") }
        } catch { out.append("decode threw \(error)") }
    }
    if let d = g["decode_keep"]?.stringValue {
        do {
            let s = try tokenizer.decode(g["ids"]!.intArray, skipSpecialTokens: false)
            if s != d { out.append("decode_keep '\(describe(s))' != '\(describe(d))'") }
        } catch { out.append("decode_keep threw \(error)") }
    }
    return out
}

/// How a SentencePiece-style case (ids, `tokensKey`, offsets, decode of its ids) differs from an encoding.
func pieceDifferences(_ e: Encoding, _ c: JSONValue, tokensKey: String, tokenizer: Tokenizer,
                      skipSpecialTokens: Bool = true) throws -> [String] {
    var d: [String] = []
    if e.ids != c["ids"]!.intArray { d.append("ids \(e.ids) != \(c["ids"]!.intArray)") }
    if e.tokens != c[tokensKey]!.stringArray { d.append("\(tokensKey) \(e.tokens) != \(c[tokensKey]!.stringArray)") }
    let go = c["offsets"]!.arrayValue.map { $0.intArray }
    if e.offsets.map({ [$0.0, $0.1] }) != go { d.append("offsets \(e.offsets.map { [$0.0, $0.1] }) != \(go)") }
    let dec = try tokenizer.decode(c["ids"]!.intArray, skipSpecialTokens: skipSpecialTokens)
    if dec != c["decode"]!.stringValue! { d.append("decode '\(describe(dec))' != '\(describe(c["decode"]!.stringValue!))'") }
    return d
}

func report(_ name: String, _ failures: [String], total: Int, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertGreaterThan(total, 0, "\(name): no case ran (the fixture is empty)", file: file, line: line)
    if !failures.isEmpty {
        XCTFail("\(name): \(failures.count)/\(total) cases differ:\n" + failures.prefix(8).joined(separator: "\n"), file: file, line: line)
    }
}
