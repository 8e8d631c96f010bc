import Foundation
import XCTest
@testable import Tokenizers

/// Each family: a tokenizer.json built or trained by the Python library, and the Python encodings
/// of a varied sample (ids, tokens, type ids, masks, offsets, decode with and without specials).
final class FamilyGoldenTests: XCTestCase {
    func checkFamily(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Tokenizer.load(from: Fixtures.url("\(name).tokenizer.json"))
        let cases = try Fixtures.json("\(name).cases.json")["cases"]!.arrayValue
        XCTAssertFalse(cases.isEmpty)
        var failures: [String] = []
        for c in cases {
            let text = caseText(c)
            let pair = c["pair"]?.stringValue
            let add = c["add_special_tokens"]?.boolValue ?? true
            do {
                var e = try tok.encode(text, pair: pair, addSpecialTokens: add)
                if let b = c["text_b64"]?.stringValue, let raw = Data(base64Encoded: b) {
                    // Invalid UTF-8: the byte entry point must agree too.
                    e = try tok.encode(utf8: [UInt8](raw), addSpecialTokens: add)
                }
                let d = diff(e, c, tokenizer: tok)
                if !d.isEmpty { failures.append("'\(describe(text))'\(pair.map { " + '\($0)'" } ?? "") add=\(add): " + d.joined(separator: "; ")) }
            } catch {
                failures.append("'\(describe(text))' threw \(error)")
            }
        }
        report(name, failures, total: cases.count, file: file, line: line)
    }

    func testBertWordPiece() throws { try checkFamily("bert_wordpiece") }
    func testBertTemplate() throws { try checkFamily("bert_template") }
    func testBertCased() throws { try checkFamily("bert_cased") }
    func testRobertaByteLevelBPE() throws { try checkFamily("roberta_bpe") }
    func testGPT2ByteLevelBPE() throws { try checkFamily("gpt2_bpe") }
    func testUnigramMetaspace() throws { try checkFamily("unigram_metaspace") }
    func testAlbertPrecompiledUnigram() throws { try checkFamily("albert_unigram") }

    func checkSentencePiece(_ name: String) throws {
        let g = try Fixtures.json("\(name).sp.json")
        let sp = try SentencePieceProcessor(contentsOf: Fixtures.url("\(name).model"))
        XCTAssertEqual(sp.vocabSize, g["vocab_size"]!.intValue)
        XCTAssertEqual(sp.unkId, g["unk_id"]!.intValue)
        XCTAssertEqual(sp.bosId, g["bos_id"]!.intValue)
        XCTAssertEqual(sp.eosId, g["eos_id"]!.intValue)
        XCTAssertEqual(sp.padId, g["pad_id"]!.intValue)
        let tok = try Tokenizer.load(from: Fixtures.url("\(name).model"))
        var failures: [String] = []
        let cases = g["cases"]!.arrayValue
        for c in cases {
            let text = caseText(c)
            let e = try tok.encode(text)
            let d = try pieceDifferences(e, c, tokensKey: "pieces", tokenizer: tok)
            if !d.isEmpty { failures.append("'\(describe(text))': " + d.joined(separator: "; ")) }
        }
        report(name, failures, total: cases.count)
    }

    func testSentencePieceUnigramModel() throws { try checkSentencePiece("sp_unigram") }
    func testSentencePieceBPEModel() throws { try checkSentencePiece("sp_bpe") }
    /// No dummy prefix, extra whitespace kept, identity normalization, byte fallback.
    func testSentencePieceRawUnigramModel() throws { try checkSentencePiece("sp_unigram_raw") }

    func testSentencePiecePairsPaddingTruncation() throws {
        let tok = try Tokenizer.load(from: Fixtures.url("sp_unigram.model"))
        tok.padding = PaddingParams(fixedLength: 12, direction: .right, padId: 0, padToken: "<pad>")
        tok.truncation = TruncationParams(maxLength: 12)
        let e = try tok.encode("Hello, world!", pair: "the world")
        XCTAssertEqual(e.ids, [259, 150, 13, 141, 11, 13, 0, 0, 0, 0, 0, 0])  // sp.encode of each text
        XCTAssertEqual(e.typeIds, [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(e.attentionMask, [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
        let long = try tok.encode(String(repeating: "hello world ", count: 20))
        XCTAssertEqual(long.count, 12)
        XCTAssertEqual(long.overflowing.count, 3)
    }

    func testLoadFromDirectory() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-dir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Fixtures.url("sp_unigram.model"), to: dir.appendingPathComponent("spiece.model"))
        let a = try Tokenizer.load(from: dir)
        XCTAssertEqual(try a.encode("Hello, world!").ids, [259, 150, 13, 141])
        try FileManager.default.copyItem(at: Fixtures.url("bert_wordpiece.tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        let b = try Tokenizer.load(from: dir)
        XCTAssertEqual(try b.encode("hello").tokens, ["[CLS]", "hello", "[SEP]"])
    }
}
