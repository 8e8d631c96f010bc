import JSON
import Foundation
import XCTest
@testable import Tokenizers

/// Small tokenizers with one normalizer / pre-tokenizer / decoder / BPE option swapped in
/// (components.json), and padding / truncation / pair batches (batches.json).
final class ComponentGoldenTests: XCTestCase {
    func tokenizerJSON(_ entry: JSONValue) throws -> JSONValue {
        if let full = entry["tokenizer"] { return full }
        let base = try Fixtures.json("\(entry["base"]!.stringValue!).tokenizer.json")
        return base.overriding(entry["overrides"]!)
    }

    func testComponents() throws {
        let entries = try Fixtures.json("components.json")["entries"]!.arrayValue
        XCTAssertGreaterThan(entries.count, 30)
        var failures: [String] = []
        var total = 0
        for entry in entries {
            let name = entry["name"]!.stringValue!
            let tok: Tokenizer
            do { tok = try Tokenizer(jsonValue: try tokenizerJSON(entry)) } catch {
                failures.append("\(name): load failed: \(error)"); continue
            }
            for c in entry["cases"]!.arrayValue {
                total += 1
                let text = caseText(c)
                do {
                    let d = diff(try tok.encode(text), c, tokenizer: tok)
                    if !d.isEmpty { failures.append("\(name) '\(describe(text))': " + d.joined(separator: "; ")) }
                } catch { failures.append("\(name) '\(describe(text))' threw \(error)") }
            }
        }
        report("components", failures, total: total)
    }

    /// Tokens added at run time get the ids Python gave them and encode the same.
    func testAddTokensAtRunTime() throws {
        let entries = try Fixtures.json("components.json")["entries"]!.arrayValue
        let entry = entries.first { $0["name"]?.stringValue == "added_tokens" }!
        let golden = entry["overrides"]!["added_tokens"]!.arrayValue
        let tok = try Tokenizer.load(from: Fixtures.url("bert_wordpiece.tokenizer.json"))
        let before = tok.addedTokens.count
        let added = try tok.addTokens([
            AddedToken(content: "wor", id: 0, singleWord: true),
            AddedToken(content: "ELL", id: 0, normalized: true),
            AddedToken(content: "XYZ", id: 0, rstrip: true, normalized: false),
            AddedToken(content: "Quick", id: 0, lstrip: true, normalized: true),
        ])
        XCTAssertEqual(added, 4)
        try tok.addTokens([AddedToken(content: "<special>", id: 0, lstrip: true, rstrip: true, special: true)])
        XCTAssertEqual(tok.addedTokens.count, before + 5)
        XCTAssertEqual(try tok.addTokens([AddedToken(content: "wor", id: 0, singleWord: true)]), 0)
        XCTAssertEqual(golden.count, 10)
        for g in golden {
            let c = g["content"]!.stringValue!
            let t = tok.addedTokens.first { $0.content == c }
            XCTAssertEqual(t?.id, g["id"]!.intValue, c)
            XCTAssertEqual(t?.special, g["special"]!.boolValue, c)
            XCTAssertEqual(t?.normalized, g["normalized"]!.boolValue, c)
        }
        var failures: [String] = []
        let cases = entry["cases"]!.arrayValue
        for c in cases {
            let d = diff(try tok.encode(caseText(c)), c, tokenizer: tok)
            if !d.isEmpty { failures.append("'\(describe(caseText(c)))': " + d.joined(separator: "; ")) }
        }
        report("added at run time", failures, total: cases.count)
        // The JSON form carries them too.
        let reloaded = try Tokenizer(jsonString: try tok.toJSONString())
        XCTAssertEqual(reloaded.addedTokens, tok.addedTokens)
    }

    func testBatchesPaddingTruncation() throws {
        let entries = try Fixtures.json("batches.json")["entries"]!.arrayValue
        var failures: [String] = []
        var total = 0
        for entry in entries {
            let name = entry["name"]!.stringValue!
            let tok = try Tokenizer(jsonValue: try tokenizerJSON(entry))
            let texts = entry["texts"]!.stringArray
            let pairs = entry["pairs"]!.arrayValue.map { ($0.stringArray[0], $0.stringArray[1]) }
            for (label, golden, run) in [
                ("single", entry["single"]!, { try tok.encodeBatch(texts) }),
                ("paired", entry["paired"]!, { try tok.encodeBatch(pairs: pairs) }),
            ] as [(String, JSONValue, () throws -> [Encoding])] {
                total += 1
                if let err = golden["error"]?.stringValue {
                    do {
                        _ = try run()
                        failures.append("\(name) \(label): expected error '\(err)'")
                    } catch let e as TokenizerError {
                        if case .truncation = e {} else { failures.append("\(name) \(label): wrong error \(e)") }
                    }
                    continue
                }
                do {
                    let encs = try run()
                    let g = golden.arrayValue
                    if encs.count != g.count { failures.append("\(name) \(label): count"); continue }
                    for (i, (e, ge)) in zip(encs, g).enumerated() {
                        let d = diff(e, ge, tokenizer: tok)
                        if !d.isEmpty { failures.append("\(name) \(label)[\(i)]: " + d.joined(separator: "; ")) }
                    }
                } catch { failures.append("\(name) \(label) threw \(error)") }
            }
        }
        report("batches", failures, total: total)
    }
}
