import AlbertMoECommands
import Foundation
import Tokenizers
import XCTest

/// Runs the built `albertmoe` command as a user would.
final class CommandLineTests: XCTestCase {
    func albertmoe(_ args: [String], stdin: String = "") throws -> CommandResult {
        try runCommand("albertmoe", args, stdin: stdin)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testTrainThenTokenize() throws {
        let dir = try temporaryDirectory()
        let corpus = dir.appendingPathComponent("corpus.txt")
        let words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "über", "naïve", "日本", "語"]
        let text = (0..<800).map { i in (0..<10).map { j in words[(i * 7 + j * j * 3 + i / 5) % words.count] }.joined(separator: " ") }
        try text.joined(separator: "\n").write(to: corpus, atomically: true, encoding: .utf8)
        let roles: [String: [SpecialTokens.Role: String]] = [
            "bpe": [.bos: "<s>", .pad: "<pad>", .eos: "</s>", .unk: "<unk>", .mask: "<mask>"],
            "wordpiece": [.pad: "[PAD]", .unk: "[UNK]", .cls: "[CLS]", .sep: "[SEP]", .mask: "[MASK]"],
            "unigram": [.pad: "<pad>", .unk: "<unk>", .cls: "[CLS]", .sep: "[SEP]", .mask: "[MASK]"]]
        for model in ["bpe", "wordpiece", "unigram"] {
            let json = dir.appendingPathComponent(model)
            let trained = try albertmoe(["train-tokenizer", "--model", model, "--vocab_size", "200", "--output", json.path, corpus.path])
            XCTAssertEqual(trained.status, 0, trained.stderr)
            // The directory names the roles of the special tokens.
            XCTAssertEqual(try Tokenizer.load(from: json).specialTokens.byRole.mapValues(\.content), roles[model], model)
            let lines = ["the cat sat on über 日本語", "", "dog\tran"]
            let tokenized = try albertmoe(["tokenize", "--tokenizer", json.path], stdin: lines.joined(separator: "\n") + "\n")
            XCTAssertEqual(tokenized.status, 0, tokenized.stderr)
            let tokenizer = try Tokenizer.load(from: json)
            let expected = try lines.map { "[" + (try tokenizer.encode($0).ids.map(String.init).joined(separator: ", ")) + "]" }
            XCTAssertEqual(tokenized.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), expected, model)
            let pairs = try albertmoe(["tokenize", "--tokenizer", json.path, "--pair", "--no_special_tokens"], stdin: "dog\tran\n")
            XCTAssertEqual(pairs.stdout, "[" + (try tokenizer.encode("dog", pair: "ran", addSpecialTokens: false).ids.map(String.init).joined(separator: ", ")) + "]\n")
        }
        // Chosen special tokens have the roles --roles gives them, and no others.
        let chosen = dir.appendingPathComponent("chosen")
        let trained = try albertmoe(["train-tokenizer", "--model", "bpe", "--vocab_size", "200", "--special_tokens", "<a>", "<b>",
                                     "--roles", "eos=<b>", "pad=<a>", "--output", chosen.path, corpus.path])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertEqual(try Tokenizer.load(from: chosen).specialTokens.byRole, [.pad: .init(id: 0, content: "<a>"), .eos: .init(id: 1, content: "<b>")])
        for (roles, words) in [(["last=<b>"], ["--roles", "last=<b>", "eos"]), (["eos"], ["--roles", "ROLE=TOKEN"]),
                               (["eos=<c>"], ["--roles", "<c>"])] {
            let bad = try albertmoe(["train-tokenizer", "--model", "bpe", "--vocab_size", "200", "--special_tokens", "<a>", "<b>",
                                     "--roles"] + roles + ["--output", dir.appendingPathComponent("bad").path, corpus.path])
            XCTAssertNotEqual(bad.status, 0)
            for word in words { XCTAssertTrue(bad.stderr.contains(word), bad.stderr) }
        }
    }

    /// Only a negative number right after an option is attached to it; words after `--` stay as they are.
    func testNegativeNumbersAfterAnOptionAreItsValue() {
        XCTAssertEqual(CommandLineArguments.attachingNegativeValues(
            ["train", "--a", "-1", "--b", "x", "-2", "--c", "-0.5e3", "--d", "-inf", "--e=-4", "--f", "-x", "-1", "--", "--g", "-3"]),
            ["train", "--a=-1", "--b", "x", "-2", "--c=-0.5e3", "--d=-inf", "--e=-4", "--f", "-x", "-1", "--", "--g", "-3"])
        XCTAssertEqual(CommandLineArguments.attachingNegativeValues(["--a"]), ["--a"])
    }

    func testMistakesAreNamed() throws {
        let missing = try albertmoe(["tokenize", "--tokenizer", "/no/such/tokenizer.json"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/no/such/tokenizer.json"), missing.stderr)
        let badModel = try albertmoe(["train-tokenizer", "--model", "bytes", "--vocab_size", "10", "--output", "x.json", "f.txt"])
        XCTAssertNotEqual(badModel.status, 0)
        XCTAssertTrue(badModel.stderr.contains("--model"), badModel.stderr)
        let badBench = try albertmoe(["bench", "--config", "huge"])
        XCTAssertNotEqual(badBench.status, 0)
        XCTAssertTrue(badBench.stderr.contains("--config"), badBench.stderr)
    }
}
