import Foundation
import XCTest
@testable import Tokenizers

/// Random strings from an adversarial character pool (combining marks, jamo, ZWJ sequences,
/// controls, Prepend characters, special tokens glued to text), encoded by every family in Python.
final class FuzzGoldenTests: XCTestCase {
    func testFuzzAllFamilies() throws {
        let g = try Fixtures.json("fuzz.json")
        let texts = g["texts"]!.stringArray
        guard case let .object(families)? = g["families"] else { return XCTFail("no families") }
        var failures: [String] = []
        var total = 0
        XCTAssertEqual(families.pairs.count, 9)
        for (name, cases) in families.pairs {
            XCTAssertEqual(cases.arrayValue.count, texts.count, name)
            let isSP = name.hasPrefix("sp_")
            let tok = try Tokenizer.load(from: Fixtures.url(isSP ? "\(name).model" : "\(name).tokenizer.json"))
            for (text, c) in zip(texts, cases.arrayValue) {
                total += 1
                do {
                    let e = try tok.encode(text)
                    if isSP {
                        var d: [String] = []
                        if e.ids != c["ids"]!.intArray { d.append("ids \(e.ids) != \(c["ids"]!.intArray)") }
                        let dec = try tok.decode(c["ids"]!.intArray)
                        if dec != c["decode"]!.stringValue! { d.append("decode '\(describe(dec))' != '\(describe(c["decode"]!.stringValue!))'") }
                        if !d.isEmpty { failures.append("\(name) '\(describe(text))': " + d.joined(separator: "; ")) }
                    } else {
                        let d = diff(e, c, tokenizer: tok)
                        if !d.isEmpty { failures.append("\(name) '\(describe(text))': " + d.joined(separator: "; ")) }
                    }
                } catch { failures.append("\(name) '\(describe(text))' threw \(error)") }
            }
        }
        XCTAssertEqual(total, texts.count * 9)
        report("fuzz", failures, total: total)
    }
}

/// Batch encoding runs in parallel: it must equal encoding one by one.
final class BatchConsistencyTests: XCTestCase {
    func testBatchEqualsSequential() throws {
        let texts = try Fixtures.json("fuzz.json")["texts"]!.stringArray
        for name in ["bert_wordpiece.tokenizer.json", "roberta_bpe.tokenizer.json", "albert_unigram.tokenizer.json", "sp_bpe.model"] {
            let tok = try Tokenizer.load(from: Fixtures.url(name))
            let batch = try tok.encodeBatch(texts + texts)
            for (i, t) in (texts + texts).enumerated() {
                XCTAssertEqual(batch[i], try tok.encode(t), "\(name) #\(i)")
            }
        }
    }
}
