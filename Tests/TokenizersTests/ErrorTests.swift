import JSON
import Foundation
import XCTest
@testable import Tokenizers

/// Malformed inputs are thrown errors naming the JSON path and the component type.
final class ErrorTests: XCTestCase {
    func baseJSON() throws -> JSONValue { try Fixtures.json("bert_wordpiece.tokenizer.json") }

    func load(_ v: JSONValue) throws -> Tokenizer { try Tokenizer(jsonValue: v) }

    func expect(_ expected: TokenizerError, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssertEqual(e as? TokenizerError, expected, "got \(e)", file: file, line: line)
        }
    }

    func testMalformedJSON() {
        for text in ["{", "{\"model\": }", "[1, 2", "{\"a\": tru}", "{\"a\": \"unterminated}", "{} trailing", ""] {
            XCTAssertThrowsError(try Tokenizer(jsonString: text)) { e in
                guard case .malformedJSON = e as? TokenizerError else { return XCTFail("\(text): \(e)") }
            }
        }
    }

    func testTopLevelNotAnObject() {
        XCTAssertThrowsError(try Tokenizer(jsonString: "[]"))
    }

    func testUnknownComponentTypes() throws {
        let base = try baseJSON()
        expect(.unknownType(path: "$.normalizer.type", type: "Fancy")) {
            _ = try self.load(base.overriding(.obj([("normalizer", .obj([("type", .string("Fancy"))]))])))
        }
        expect(.unknownType(path: "$.pre_tokenizer.pretokenizers[1].type", type: "Nope")) {
            _ = try self.load(base.overriding(.obj([("pre_tokenizer", .obj([("type", .string("Sequence")), ("pretokenizers", .array([
                .obj([("type", .string("Whitespace"))]), .obj([("type", .string("Nope"))]),
            ]))]))])))
        }
        expect(.unknownType(path: "$.decoder.type", type: "Mystery")) {
            _ = try self.load(base.overriding(.obj([("decoder", .obj([("type", .string("Mystery"))]))])))
        }
        expect(.unknownType(path: "$.post_processor.type", type: "Other")) {
            _ = try self.load(base.overriding(.obj([("post_processor", .obj([("type", .string("Other"))]))])))
        }
        expect(.unknownType(path: "$.model.type", type: "Magic")) {
            _ = try self.load(base.overriding(.obj([("model", .obj([("type", .string("Magic"))]))])))
        }
    }

    func testMissingFields() throws {
        let base = try baseJSON()
        expect(.missingField(path: "$.model", component: "tokenizer")) {
            _ = try self.load(.obj([("normalizer", .null)]))
        }
        expect(.missingField(path: "$.model.vocab", component: "WordPiece")) {
            _ = try self.load(base.overriding(.obj([("model", .obj([("type", .string("WordPiece"))]))])))
        }
        expect(.missingField(path: "$.normalizer.type", component: "tokenizer")) {
            _ = try self.load(base.overriding(.obj([("normalizer", .obj([("lowercase", .bool(true))]))])))
        }
        expect(.missingField(path: "$.pre_tokenizer.pattern", component: "Split")) {
            _ = try self.load(base.overriding(.obj([("pre_tokenizer", .obj([("type", .string("Split")), ("behavior", .string("Removed"))]))])))
        }
        expect(.missingField(path: "$.post_processor.sep", component: "BertProcessing")) {
            _ = try self.load(base.overriding(.obj([("post_processor", .obj([("type", .string("BertProcessing"))]))])))
        }
    }

    func testInvalidFields() throws {
        let base = try baseJSON()
        XCTAssertThrowsError(try load(base.overriding(.obj([("normalizer", .obj([("type", .string("Lowercase"))])),
                                                             ("pre_tokenizer", .obj([("type", .string("Split")), ("pattern", .obj([("Regex", .string("(unclosed"))])), ("behavior", .string("Removed"))]))])))) { e in
            guard case let .invalidField(path, component, _) = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, "$.pre_tokenizer.pattern.Regex")
            XCTAssertEqual(component, "Split")
        }
        XCTAssertThrowsError(try load(base.overriding(.obj([("pre_tokenizer", .obj([("type", .string("Split")), ("pattern", .obj([("String", .string("x"))])), ("behavior", .string("Sideways"))]))])))) { e in
            guard case let .invalidField(path, _, _) = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, "$.pre_tokenizer.behavior")
        }
        // BPE merges referencing tokens that are not in the vocabulary.
        let bpe = JSONValue.obj([("model", .obj([
            ("type", .string("BPE")), ("vocab", .obj([("a", .number(0)), ("b", .number(1))])),
            ("merges", .array([.string("a b")])),
        ]))])
        XCTAssertThrowsError(try load(bpe)) { e in
            guard case let .invalidField(path, component, _) = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, "$.model.merges[0]")
            XCTAssertEqual(component, "BPE")
        }
        let badMerge = JSONValue.obj([("model", .obj([
            ("type", .string("BPE")), ("vocab", .obj([("a", .number(0)), ("b", .number(1)), ("ab", .number(2))])),
            ("merges", .array([.string("a b c")])),
        ]))])
        XCTAssertThrowsError(try load(badMerge))
        // Wrong JSON kinds.
        XCTAssertThrowsError(try load(base.overriding(.obj([("normalizer", .obj([("type", .string("Strip")), ("strip_left", .string("yes"))]))])))) { e in
            guard case let .invalidField(path, component, _) = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, "$.normalizer.strip_left")
            XCTAssertEqual(component, "Strip")
        }
        // Token ids must be sane.
        let hugeId = JSONValue.obj([("model", .obj([("type", .string("WordPiece")), ("vocab", .obj([("a", .number(1e12))]))]))])
        XCTAssertThrowsError(try load(hugeId)) { e in
            guard case let .invalidField(path, component, _) = e as? TokenizerError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, "$.model.vocab.a")
            XCTAssertEqual(component, "WordPiece")
        }
        // Unigram unk_id out of range.
        let uni = JSONValue.obj([("model", .obj([("type", .string("Unigram")), ("unk_id", .number(5)),
                                                   ("vocab", .array([.array([.string("a"), .number(-1)])]))]))])
        XCTAssertThrowsError(try load(uni))
    }

    func testMissingUnknownTokenIsAnErrorNotACrash() throws {
        let wp = JSONValue.obj([("model", .obj([("type", .string("WordPiece")), ("unk_token", .string("[UNK]")),
                                                  ("vocab", .obj([("a", .number(0))]))]))])
        let tok = try load(wp)
        XCTAssertEqual(try tok.encode("a").ids, [0])
        XCTAssertThrowsError(try tok.encode("b"))
        let uni = JSONValue.obj([("model", .obj([("type", .string("Unigram")), ("vocab", .array([.array([.string("a"), .number(-1)])]))]))])
        let t2 = try load(uni)
        XCTAssertEqual(try t2.encode("aa").ids, [0, 0])
        XCTAssertThrowsError(try t2.encode("b"))
    }

    func testMalformedSentencePieceModel() throws {
        XCTAssertThrowsError(try SentencePieceProcessor(modelData: [0x0A, 0x05, 0x0A])) { e in
            guard case .malformedModel = e as? TokenizerError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try SentencePieceProcessor(modelData: [0xFF, 0xFF, 0xFF]))
        XCTAssertThrowsError(try SentencePieceProcessor(modelData: []))
        // Truncated real model.
        let data = [UInt8](try Fixtures.data("sp_unigram.model"))
        XCTAssertThrowsError(try SentencePieceProcessor(modelData: Array(data.prefix(1000))))
    }

    /// A piece's type is a protobuf enum (an int32, whose negative values take ten bytes): any varint there is a type
    /// or a `malformedModel` error, never a trap. The first input is the one the fuzzer found.
    func testSentencePiecePieceTypeOfAnyVarint() throws {
        let found: [UInt8] = [0x0A, 0x0E, 0x18, 0x96, 0xFF, 0xFF, 0xFF, 0xFF, 0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0x29,
                              0xFD, 0xFF, 0xFF]
        XCTAssertThrowsError(try SentencePieceProcessor(modelData: found))
        func varint(_ value: UInt64) -> [UInt8] {
            var v = value, out: [UInt8] = []
            repeat { out.append(UInt8(v & 0x7F) | (v >= 0x80 ? 0x80 : 0)); v >>= 7 } while v != 0
            return out
        }
        for type: UInt64 in [0, 1, 2, 6, 7, 1 << 31, 1 << 32, 1 << 63, UInt64(bitPattern: -1), UInt64(bitPattern: -3)] {
            let piece: [UInt8] = [0x0A, 0x01, 0x61, 0x18] + varint(type)
            let model: [UInt8] = [0x0A, UInt8(piece.count)] + piece
            do {
                let proto = try SentencePieceModelProto(data: model)
                XCTAssertEqual(proto.pieces.first.map { UInt64($0.type.rawValue) }, type)
            } catch let error as TokenizerError {
                guard case .malformedModel(let reason) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(reason.contains("unknown piece type"), reason)
                XCTAssertFalse((1...6).contains(type), "type \(type): \(reason)")
            }
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try Tokenizer.load(from: URL(fileURLWithPath: "/nonexistent/tokenizer.json"))) { e in
            guard case .io = e as? TokenizerError else { return XCTFail("\(e)") }
        }
    }

    func testTruncationErrors() throws {
        let tok = try Tokenizer.load(from: Fixtures.url("bert_wordpiece.tokenizer.json"))
        tok.truncation = TruncationParams(maxLength: 5, strategy: .onlySecond)
        XCTAssertThrowsError(try tok.encode("hello world this is long")) { e in
            guard case .truncation = e as? TokenizerError else { return XCTFail("\(e)") }
        }
        tok.truncation = TruncationParams(maxLength: 5, strategy: .onlyFirst)
        XCTAssertThrowsError(try tok.encode("hello", pair: "a much longer second sequence here"))
    }

    func testInvalidUTF8BytesAreReplaced() throws {
        let tok = try Tokenizer.load(from: Fixtures.url("roberta_bpe.tokenizer.json"))
        let text = decodeUTF8Lossy([0x61, 0xFF, 0x62])
        XCTAssertEqual(Array(text.unicodeScalars), ["a", "\u{FFFD}", "b"])
        let e = try tok.encode(text, addSpecialTokens: false)
        XCTAssertEqual(e.offsets.last?.1, 3)
    }

    func testJSONRoundTrip() throws {
        let v = try Fixtures.json("bert_template.tokenizer.json")
        let again = try JSONValue.parse(try v.serialized())
        XCTAssertEqual(v, again)
        XCTAssertEqual(try JSONValue.parse("\"\\u00e9\\ud83d\\ude00\""), .string("é😀"))
        // Keys differing only by normalization stay distinct.
        if case let .object(o) = try JSONValue.parse("{\"\u{e9}\": 1, \"e\u{301}\": 2}") { XCTAssertEqual(o.pairs.count, 2) } else { XCTFail() }
    }
}
