import Foundation
import XCTest
@testable import Tokenizers

/// The roles of special tokens (bos, eos, unk, sep, pad, cls, mask) come from the tokenizer's own files, as the
/// Python libraries read them, and a directory the tokenizer writes reads back with the same roles.
final class SpecialTokensTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("special-tokens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// The cases of special_tokens.json (Scripts/make_special_token_fixtures.py), each laid out as a model directory:
    /// the tokenizer file, the files beside it, and the roles Python reads there.
    func fixtureCases() throws -> [(name: String, file: URL, expected: [SpecialTokens.Role: SpecialTokens.Token])] {
        try Fixtures.json("special_tokens.json")["cases"]!.arrayValue.map { c in
            let source = try XCTUnwrap(c["tokenizer"]?.stringValue)
            let dir = try temporaryDirectory()
            let file = dir.appendingPathComponent(source.hasSuffix(".model") ? "tokenizer.model" : "tokenizer.json")
            try FileManager.default.copyItem(at: Fixtures.url(source), to: file)
            if case let .object(files)? = c["files"] {
                for (name, text) in files.pairs { try Data(try XCTUnwrap(text.stringValue).utf8).write(to: dir.appendingPathComponent(name)) }
            }
            var expected: [SpecialTokens.Role: SpecialTokens.Token] = [:]
            for role in SpecialTokens.Role.allCases {
                guard let pair = c["expected"]?[role.rawValue]?.arrayValue, pair.count == 2 else { continue }
                expected[role] = SpecialTokens.Token(id: try XCTUnwrap(pair[0].intValue), content: try XCTUnwrap(pair[1].stringValue))
            }
            return (try XCTUnwrap(c["name"]?.stringValue), file, expected)
        }
    }

    /// tokenizer_config.json (strings and AddedToken objects), special_tokens_map.json (read only where the config has
    /// no added_tokens_decoder, and then over it), tokenizer.json's own declarations and SentencePiece ids: the roles
    /// Python's `PreTrainedTokenizerFast` and `sentencepiece` give, whether the directory or the file is loaded.
    func testRolesAreThoseThePythonLibrariesRead() throws {
        let cases = try fixtureCases()
        XCTAssertEqual(cases.count, 12)
        for c in cases {
            for url in [c.file.deletingLastPathComponent(), c.file] {
                let tokenizer = try Tokenizer.load(from: url)
                XCTAssertEqual(tokenizer.specialTokens.byRole, c.expected, "\(c.name), loaded from \(url.lastPathComponent)")
                for token in c.expected.values { XCTAssertEqual(tokenizer.idToToken(token.id), token.content, c.name) }
            }
        }
    }

    /// A tokenizer written with `saveFiles` reads back with the same roles and the same encodings: every fixture
    /// case, and trained tokenizers with roles declared in memory.
    func testSavedDirectoriesReloadWithTheSameRoles() throws {
        let texts = try String(contentsOf: Fixtures.url("train_corpus.txt"), encoding: .utf8)
        let sample = texts.split(separator: "\n").prefix(20).map(String.init)
        var tokenizers = try fixtureCases().map { try Tokenizer.load(from: $0.file) }
        let options = TrainerOptions(vocabSize: 200, minFrequency: 2, specialTokens: ["<pad>", "</s>", "<mask>", "<unk>"])
        for trained in [try ByteLevelBPETrainer(options: options).train(texts: [texts]),
                        try WordPieceTrainer(options: options).train(texts: [texts])] {
            try trained.declareSpecialTokens([.pad: "<pad>", .eos: "</s>", .mask: "<mask>"])
            tokenizers.append(trained)
        }
        for tokenizer in tokenizers {
            let dir = try temporaryDirectory()
            try tokenizer.saveFiles(to: dir.appendingPathComponent("model"))
            let again = try Tokenizer.load(from: dir.appendingPathComponent("model"))
            XCTAssertEqual(again.specialTokens.byRole, tokenizer.specialTokens.byRole)
            XCTAssertEqual(try again.encodeBatch(sample).map(\.ids), try tokenizer.encodeBatch(sample).map(\.ids))
            // Writing what was read changes nothing.
            try again.saveFiles(to: dir.appendingPathComponent("again"))
            for file in try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("model").path) {
                XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("again/\(file)")),
                               try Data(contentsOf: dir.appendingPathComponent("model/\(file)")), file)
            }
        }
    }

    /// A file that names a token the tokenizer does not have, or that is not JSON, is an error naming the file; so is
    /// declaring an unknown token in memory. A missing role says where it was looked for.
    func testFilesThatCannotBeUsedAreNamed() throws {
        let dir = try temporaryDirectory()
        try FileManager.default.copyItem(at: Fixtures.url("bert_wordpiece.tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        let config = dir.appendingPathComponent("tokenizer_config.json")
        for (text, words) in [(#"{"eos_token": "</s>"}"#, ["tokenizer_config.json", "eos_token", "</s>"]),
                              (#"{"mask_token": {"content": "<mask>"}}"#, ["tokenizer_config.json", "mask_token", "<mask>"]),
                              (#"{"pad_token": 3}"#, ["tokenizer_config.json", "pad_token", "string"]),
                              (#"{"pad_token": "#, ["tokenizer_config.json", "malformed"]),
                              (#"["[PAD]"]"#, ["tokenizer_config.json", "object"])] {
            try Data(text.utf8).write(to: config)
            XCTAssertThrowsError(try Tokenizer.load(from: dir)) { error in
                for word in words { XCTAssertTrue("\(error)".contains(word), "\(text): \(error)") }
            }
        }
        try Data(#"{"pad_token": "[PAD]"}"#.utf8).write(to: config)
        let tokenizer = try Tokenizer.load(from: dir)
        XCTAssertEqual(tokenizer.specialTokens.pad, SpecialTokens.Token(id: 0, content: "[PAD]"))
        XCTAssertNil(tokenizer.specialTokens.eos)
        XCTAssertEqual(tokenizer.specialTokens.missing(.eos),
                       "no eos_token is named in \(dir.appendingPathComponent("tokenizer.json").path), \(config.path)")
        XCTAssertThrowsError(try tokenizer.declareSpecialTokens([.eos: "</s>"])) { error in
            XCTAssertTrue("\(error)".contains("eos_token") && "\(error)".contains("</s>"), "\(error)")
        }
        XCTAssertNil(tokenizer.specialTokens.eos, "a failed declaration changes nothing")
        try tokenizer.declareSpecialTokens([.eos: "[SEP]", .bos: "[CLS]"])
        XCTAssertEqual(tokenizer.specialTokens.eos, SpecialTokens.Token(id: 3, content: "[SEP]"))
        XCTAssertEqual(tokenizer.specialTokenIDs, [0, 1, 2, 3, 4])
    }
}
