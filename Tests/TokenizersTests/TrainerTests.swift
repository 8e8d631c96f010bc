import JSON
import Foundation
import XCTest
@testable import Tokenizers

/// Trainers: the tokenizer.json they write is loaded by the Python library, which must encode
/// the sample exactly as we do (trained_*.cases.json are the Python encodings of our file).
///
/// To refresh the fixtures: run these tests with TOKENIZERS_WRITE_TRAINED=<Fixtures dir>, then
/// run Scripts/make_tokenizer_goldens.py --trained-only.
final class TrainerTests: XCTestCase {
    static let samples = [
        "Hello, world!", "The QUICK brown fox jumped over the lazy dog.", "Héllo wörld: café, naïve résumé",
        "日本語のテキストと中文字符, 한국어 문장.", "emoji 😀👍🏽 family 👨\u{200d}👩\u{200d}👧 rocket🚀!",
        "multiple   spaces\n\nnewlines\t\ttabs", "digits 1234567890 3.14159", "I'm sure they'll say we've done it",
        "", "supercalifragilisticexpialidocious", "<s> special </s> [CLS] x [SEP] <mask>",
    ]

    func trainBPE() throws -> Tokenizer {
        try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 700, minFrequency: 2,
                                                        specialTokens: ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
            .train(files: [Fixtures.url("train_corpus.txt")])
    }

    func trainWordPiece() throws -> Tokenizer {
        try WordPieceTrainer(options: TrainerOptions(vocabSize: 500, minFrequency: 2,
                                                     specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
            .train(files: [Fixtures.url("train_corpus.txt")])
    }

    func check(_ name: String, _ tok: Tokenizer) throws {
        let json = try tok.toJSONString()
        // Deterministic: training again gives the same file.
        if let dir = ProcessInfo.processInfo.environment["TOKENIZERS_WRITE_TRAINED"] {
            let d = URL(fileURLWithPath: dir)
            try Data(json.utf8).write(to: d.appendingPathComponent("\(name).tokenizer.json"))
            var encs: [JSONValue] = []
            for s in Self.samples {
                let e = try tok.encode(s)
                encs.append(.obj([("text", .string(s)), ("ids", .array(e.ids.map { .number(Double($0)) })),
                                  ("offsets", .array(e.offsets.map { .array([.number(Double($0.0)), .number(Double($0.1))]) })),
                                  ("decode", .string(try tok.decode(e.ids)))]))
            }
            try Data(JSONValue.obj([("cases", .array(encs))]).serialized(indent: nil).utf8)
                .write(to: d.appendingPathComponent("\(name).swift_encodings.json"))
        }
        // The Swift encodings the Python verdict was computed against are still ours.
        let swiftCases = try Fixtures.json("\(name).swift_encodings.json")["cases"]!.arrayValue
        XCTAssertEqual(swiftCases.count, Self.samples.count)
        for (c, s) in zip(swiftCases, Self.samples) {
            let e = try tok.encode(s)
            XCTAssertEqual(c["ids"]!.intArray, e.ids, "\(name): '\(s)'")
            XCTAssertEqual(c["offsets"]!.arrayValue.map { $0.intArray }, e.offsets.map { [$0.0, $0.1] }, "\(name): '\(s)'")
            XCTAssertEqual(c["decode"]!.stringValue, try tok.decode(e.ids), "\(name): '\(s)'")
        }
        let committed = try String(contentsOf: Fixtures.url("\(name).tokenizer.json"), encoding: .utf8)
        XCTAssertEqual(try JSONValue.parse(json), try JSONValue.parse(committed), "\(name): training output changed")
        // Python's encodings of the committed file.
        let cases = try Fixtures.json("\(name).cases.json")["cases"]!.arrayValue
        XCTAssertEqual(cases.count, Self.samples.count)
        var failures: [String] = []
        for c in cases {
            let text = caseText(c)
            let d = diff(try tok.encode(text), c, tokenizer: tok)
            if !d.isEmpty { failures.append("'\(describe(text))': " + d.joined(separator: "; ")) }
        }
        report(name, failures, total: cases.count)
        let verdict = try Fixtures.json("trained_verdict.json")
        XCTAssertEqual(verdict[name]?["python_loads"]?.boolValue, true)
        XCTAssertEqual(verdict[name]?["identical_encodings"]?.boolValue, true)
    }

    func testByteLevelBPETrainer() throws {
        let tok = try trainBPE()
        XCTAssertEqual(tok.vocabSize, 700)
        XCTAssertEqual(tok.tokenToId("<s>"), 0)
        try check("trained_bpe", tok)
    }

    func testWordPieceTrainer() throws {
        let tok = try trainWordPiece()
        XCTAssertEqual(tok.vocabSize, 500)
        XCTAssertEqual(tok.tokenToId("[PAD]"), 0)
        XCTAssertEqual(try tok.encode("hello").tokens.first, "[CLS]")
        try check("trained_wordpiece", tok)
    }

    func testUnigramTrainer() throws {
        let tok = try UnigramTrainer(options: TrainerOptions(vocabSize: 600, minFrequency: 2,
                                                             specialTokens: ["<pad>", "<unk>", "<s>", "</s>"]))
            .train(files: [Fixtures.url("train_corpus.txt")])
        XCTAssertEqual(tok.tokenToId("<unk>"), 1)
        XCTAssertLessThanOrEqual(tok.vocabSize, 600)
        try check("trained_unigram", tok)
    }

    func testTrainerErrors() {
        XCTAssertThrowsError(try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 300))
            .train(files: [URL(fileURLWithPath: "/nonexistent/corpus.txt")]))
    }

    /// Every trainer refuses a vocabulary size with no room beyond the special tokens, or above the limit, naming
    /// it; the sizes just inside the bounds train.
    func testVocabularySizeBounds() throws {
        let specials = ["<pad>", "<unk>", "<mask>"]
        let trainers: [(String, (TrainerOptions, [String]) throws -> Tokenizer)] = [
            ("bpe", { try ByteLevelBPETrainer(options: $0).train(texts: $1) }),
            ("wordpiece", { try WordPieceTrainer(options: $0, unkToken: "<unk>").train(texts: $1) }),
            ("unigram", { options, texts in
                let file = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-unigram-\(UUID().uuidString).txt")
                try Data(texts.joined(separator: "\n").utf8).write(to: file)
                defer { try? FileManager.default.removeItem(at: file) }
                return try UnigramTrainer(options: options).train(files: [file])
            }),
        ]
        let texts = ["a small corpus of words", "words of a corpus"]
        for (name, train) in trainers {
            for size in [Int.min, -1, 0, specials.count, TrainerOptions.maxVocabSize + 1, 1_000_000_000] {
                XCTAssertThrowsError(try train(TrainerOptions(vocabSize: size, minFrequency: 1, specialTokens: specials), texts),
                                     "\(name) \(size)") { error in
                    XCTAssertTrue("\(error)".contains("got \(size)"), "\(error)")
                    XCTAssertTrue("\(error)".contains("\(TrainerOptions.maxVocabSize)"), "\(error)")
                }
            }
            XCTAssertNoThrow(try train(TrainerOptions(vocabSize: specials.count + 1, minFrequency: 1, specialTokens: specials), texts), name)
        }
    }
}
