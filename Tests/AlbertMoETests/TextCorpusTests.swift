import JSON
import Foundation
import XCTest
import Tokenizers
@testable import AlbertMoE

/// Helpers shared by the data-pipeline tests (TextCorpusTests, CollatorTests, BatchLoaderTests).
enum DataTestSupport {
    /// A fresh empty directory, removed when the test ends.
    static func temporaryDirectory(_ test: XCTestCase) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Writes `text` (UTF-8) to `dir/name`, creating folders; returns the file.
    @discardableResult
    static func write(_ text: String, to name: String, in dir: URL) throws -> URL {
        try write(Data(text.utf8), to: name, in: dir)
    }

    @discardableResult
    static func write(_ data: Data, to name: String, in dir: URL) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
        return url
    }

    /// The id of word "w<i>" in `wordTokenizer`.
    static func wordID(_ i: Int) -> Int32 { Int32(5 + i) }

    /// A word-level tokenizer over "w0" ... "w199" (ids 5 ... 204), split on whitespace.
    /// With `template`: specials [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4 and the template [CLS] $A [SEP].
    /// Without: specials <pad> 0, </s> 1, <unk> 2, 3 and 4 unused, and no post-processor (no special tokens added).
    /// The roles are declared as a tokenizer_config.json would: pad and mask, or pad and eos.
    static func wordTokenizer(template: Bool = true) throws -> Tokenizer {
        let specials = template ? ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] : ["<pad>", "</s>", "<unk>", "<x3>", "<x4>"]
        var vocab = specials.enumerated().map { "\"\($0.element)\": \($0.offset)" }
        vocab += (0..<200).map { "\"w\($0)\": \(5 + $0)" }
        let added = specials.prefix(template ? 5 : 3).enumerated().map {
            "{\"id\": \($0.offset), \"content\": \"\($0.element)\", \"special\": true, \"normalized\": false}"
        }
        let post = template ? """
            {"type": "TemplateProcessing", "single": ["[CLS]", "$A", "[SEP]"], "pair": ["[CLS]", "$A", "[SEP]", "$B:1", "[SEP]:1"],
             "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}}
            """ : "null"
        let json = """
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [\(added.joined(separator: ", "))],
             "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": \(post), "decoder": null,
             "model": {"type": "WordLevel", "unk_token": "\(template ? "[UNK]" : "<unk>")", "vocab": {\(vocab.joined(separator: ", "))}}}
            """
        let tokenizer = try Tokenizer(jsonString: json)
        try tokenizer.declareSpecialTokens(template ? [.pad: "[PAD]", .mask: "[MASK]"] : [.pad: "<pad>", .eos: "</s>"])
        return tokenizer
    }
}

final class TextCorpusTests: XCTestCase {
    private func texts(_ corpus: TextCorpus) throws -> [String] { try corpus.readAll().map(\.text) }

    /// Asserts that `body` throws an `AlbertMoEError.badFile` whose description contains every one of `parts`.
    private func assertBadFile(_ parts: [String], file: StaticString = #filePath, line: UInt = #line,
                               _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a bad-file error mentioning \(parts)", file: file, line: line)
        } catch let error as AlbertMoEError {
            guard case .badFile = error else { return XCTFail("expected a bad-file error, got \(error)", file: file, line: line) }
            for part in parts {
                XCTAssertTrue(error.description.contains(part), "'\(error)' does not mention '\(part)'", file: file, line: line)
            }
        } catch {
            XCTFail("expected an AlbertMoEError, got \(error)", file: file, line: line)
        }
    }

    func testPlainTextSkipsBlankLinesAndKeepsLineNumbers() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let url = try DataTestSupport.write("\u{FEFF}first line\n\n   \n  second, with spaces \r\nlast", to: "a.txt", in: dir)
        let examples = try TextCorpus(path: url).readAll()
        XCTAssertEqual(examples.map(\.text), ["first line", "  second, with spaces ", "last"])
        XCTAssertEqual(examples.map(\.line), [1, 4, 5])
        XCTAssertEqual(examples.map(\.index), [0, 1, 2])
        XCTAssertEqual(examples.map(\.file), [url, url, url])
    }

    func testJSONLinesReadTheTextColumn() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let url = try DataTestSupport.write("""
            {"id": 1, "content": "hello \\"there\\"", "text": 5}

            {"content": "", "id": 2}
            {"content": "caf\\u00e9\\nnext", "id": 3}
            """, to: "d.jsonl", in: dir)
        let examples = try TextCorpus(path: url, textColumn: "content").readAll()
        XCTAssertEqual(examples.map(\.text), ["hello \"there\"", "café\nnext"])
        XCTAssertEqual(examples.map(\.line), [1, 4])
    }

    func testCSVQuotingWithCommasQuotesAndNewlines() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let url = try DataTestSupport.write(#"""
            id,text,label
            1,"hello, world",a
            2,"she said ""hi""",b
            3,"line one
            line two",c

            4,plain text,d
            5,,e
            """#, to: "d.csv", in: dir)
        let examples = try TextCorpus(path: url).readAll()
        XCTAssertEqual(examples.map(\.text), ["hello, world", "she said \"hi\"", "line one\nline two", "plain text"])
        XCTAssertEqual(examples.map(\.line), [2, 3, 4, 7])
    }

    func testTSV() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let url = try DataTestSupport.write("label\tsentence\n1\tfoo bar, baz\n2\t\"with\ttab\"\n3\t5\" screen\n",
                                            to: "d.tsv", in: dir)
        XCTAssertEqual(try texts(TextCorpus(path: url, textColumn: "sentence")), ["foo bar, baz", "with\ttab", "5\" screen"])
    }

    func testDirectoryIsReadRecursivelyInPathOrderSkippingHiddenFiles() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        try DataTestSupport.write("from b\n", to: "b.txt", in: dir)
        try DataTestSupport.write("{\"text\": \"from a/c\"}\n", to: "a/c.jsonl", in: dir)
        try DataTestSupport.write("from a/b 1\nfrom a/b 2\n", to: "a/b.txt", in: dir)
        try DataTestSupport.write("text\nfrom a/z\n", to: "a/z/d.csv", in: dir)
        try DataTestSupport.write("hidden\n", to: ".hidden.txt", in: dir)
        try DataTestSupport.write("hidden too\n", to: ".git/x.txt", in: dir)
        let corpus = try TextCorpus(path: dir)
        XCTAssertEqual(corpus.files.map { $0.path.replacingOccurrences(of: dir.path + "/", with: "") },
                       ["a/b.txt", "a/c.jsonl", "a/z/d.csv", "b.txt"])
        let examples = try corpus.readAll()
        XCTAssertEqual(examples.map(\.text), ["from a/b 1", "from a/b 2", "from a/c", "from a/z", "from b"])
        XCTAssertEqual(examples.map(\.index), Array(0..<5))
    }

    func testTinyReadChunksGiveTheSameLines() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let content = (0..<40).map { "línea \($0) ünïcödé 😀 " + String(repeating: "x", count: $0 % 7) }.joined(separator: "\r\n")
        let url = try DataTestSupport.write(content + "\n", to: "u.txt", in: dir)
        let expected = try TextCorpus(path: url).readAll()
        XCTAssertEqual(expected.count, 40)
        for chunk in [1, 2, 3, 5, 64] {
            var corpus = try TextCorpus(path: url)
            corpus.readChunkSize = chunk
            XCTAssertEqual(try corpus.readAll(), expected, "chunk size \(chunk)")
        }
    }

    /// A line (of a text, JSON-lines or CSV file) or a CSV record longer than the limit is refused naming its file and
    /// line, whatever the read chunk; lines of exactly the limit are read. Seeded limits and chunk sizes, then the
    /// documented limit itself.
    func testALineLongerThanTheLimitIsRefusedNamingIt() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        var g = SeededGenerator(seed: 4)
        for trial in 0..<6 {
            let limit = 24 + g.nextInt(below: 80), extra = 1 + g.nextInt(below: 3 * limit)
            let fitting = String(repeating: "a", count: limit), long = String(repeating: "b", count: limit + extra)
            let fittingJSON = "{\"text\": \"" + String(repeating: "a", count: limit - 12) + "\"}"
            let record = "\"" + (0..<(limit / 4 + 1)).map { _ in "cccc" }.joined(separator: "\n") + "\""
            let cases: [(String, String, Int)] = [
                ("long.txt", "ok\n\(fitting)\r\n\(long)\nnever read\n", 3),
                ("last.txt", "ok\n\(long)", 2),
                ("long.jsonl", "\(fittingJSON)\n{\"text\": \"\(long)\"}\n", 2),
                ("long.csv", "text\n\(fitting)\n\"\(long)\"\n", 3),
                ("record.csv", "text\nok\n\(record)\n", 3),
            ]
            for (name, content, line) in cases {
                let url = try DataTestSupport.write(content, to: "\(trial)/\(name)", in: dir)
                var corpus = try TextCorpus(path: url)
                (corpus.textLengthLimit, corpus.readChunkSize) = (limit, 1 + g.nextInt(below: 2 * limit))
                assertBadFile([url.path + ":\(line):", "longer than \(limit) bytes"]) { _ = try corpus.readAll() }
                var read: [Int] = []
                try? corpus.forEachExample { read.append($0.line); return true }
                XCTAssertEqual(read, Array(1..<line).filter { name.hasSuffix(".csv") ? $0 > 1 : true }, "\(name), limit \(limit)")
            }
        }
        let long = try DataTestSupport.write("ok\n" + String(repeating: "x", count: TextCorpus.maxTextLength + 1), to: "4mib.txt", in: dir)
        assertBadFile([long.path + ":2:", "longer than \(TextCorpus.maxTextLength) bytes"]) { _ = try TextCorpus(path: long).readAll() }
    }

    func testMissingPathAndEmptyDirectory() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        assertBadFile(["missing.txt", "no such file"]) { _ = try TextCorpus(path: dir.appendingPathComponent("missing.txt")) }
        let empty = dir.appendingPathComponent("empty-dir")
        try DataTestSupport.write("x\n", to: "empty-dir/.hidden", in: dir)
        assertBadFile(["empty-dir", "no (non-hidden) files"]) { _ = try TextCorpus(path: empty) }
    }

    func testEmptyFilesAreErrors() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let empty = try DataTestSupport.write("", to: "empty.txt", in: dir)
        assertBadFile([empty.path + ":", "no examples"]) { _ = try TextCorpus(path: empty).readAll() }
        let blank = try DataTestSupport.write("\n  \n\n", to: "blank.txt", in: dir)
        assertBadFile([blank.path + ":", "no examples"]) { _ = try TextCorpus(path: blank).readAll() }
        let headerOnly = try DataTestSupport.write("text,label\n", to: "header.csv", in: dir)
        assertBadFile([headerOnly.path + ":", "no examples"]) { _ = try TextCorpus(path: headerOnly).readAll() }
    }

    func testInvalidUTF8NamesTheLine() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        var data = Data("ok\nfine\nbad ".utf8)
        data.append(contentsOf: [0xC3, 0x28])
        data.append(Data(" here\nnever read\n".utf8))
        let url = try DataTestSupport.write(data, to: "bad.txt", in: dir)
        assertBadFile([url.path + ":3:", "invalid UTF-8", "byte 5"]) { _ = try TextCorpus(path: url).readAll() }
    }

    func testJSONErrorsNameTheLine() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let bad = try DataTestSupport.write("{\"text\": \"a\"}\n{\"text\" \"b\"}\n", to: "bad.jsonl", in: dir)
        assertBadFile([bad.path + ":2:", "not valid JSON"]) { _ = try TextCorpus(path: bad).readAll() }
        let array = try DataTestSupport.write("{\"text\": \"a\"}\n[\"b\"]\n", to: "array.jsonl", in: dir)
        assertBadFile([array.path + ":2:", "expected a JSON object", "an array"]) { _ = try TextCorpus(path: array).readAll() }
        let missing = try DataTestSupport.write("{\"text\": \"a\"}\n{\"body\": \"b\", \"id\": 2}\n", to: "missing.json", in: dir)
        assertBadFile([missing.path + ":2:", "no key 'text'", "'body', 'id'"]) { _ = try TextCorpus(path: missing).readAll() }
        let number = try DataTestSupport.write("{\"text\": 3}\n", to: "number.jsonl", in: dir)
        assertBadFile([number.path + ":1:", "'text' is a number, not a string"]) { _ = try TextCorpus(path: number).readAll() }
    }

    func testCSVErrorsNameTheLine() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let missing = try DataTestSupport.write("\nid,body\n1,hello\n", to: "missing.csv", in: dir)
        assertBadFile([missing.path + ":2:", "no column 'text'", "'id', 'body'"]) { _ = try TextCorpus(path: missing).readAll() }
        let tsv = try DataTestSupport.write("id\tbody\n1\thello\n", to: "missing.tsv", in: dir)
        assertBadFile([tsv.path + ":1:", "no column 'text'", "'id', 'body'"]) { _ = try TextCorpus(path: tsv).readAll() }
        let open = try DataTestSupport.write("id,text\n1,fine\n2,\"never closed\n3,more\n", to: "open.csv", in: dir)
        assertBadFile([open.path + ":3:", "unterminated quoted field"]) { _ = try TextCorpus(path: open).readAll() }
        let extra = try DataTestSupport.write("id,text\n1,a,b\n", to: "extra.csv", in: dir)
        assertBadFile([extra.path + ":2:", "3 fields, but the header has 2"]) { _ = try TextCorpus(path: extra).readAll() }
    }

    func testMaxSamplesAcrossFiles() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        try DataTestSupport.write("a\nb\n", to: "1.txt", in: dir)
        try DataTestSupport.write("c\nd\n", to: "2.txt", in: dir)
        let corpus = try TextCorpus(path: dir)
        XCTAssertEqual(try corpus.readAll(maxSamples: 3).map(\.text), ["a", "b", "c"])
        XCTAssertEqual(try corpus.readAll(maxSamples: 10).map(\.text), ["a", "b", "c", "d"])
        XCTAssertEqual(try corpus.readAll(maxSamples: 0).count, 0)
    }

    func testForEachExampleStopsEarlyWithoutReadingFurther() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        // Line 6 is not JSON: stopping before it must not throw.
        let url = try DataTestSupport.write((1...5).map { "{\"text\": \"t\($0)\"}" }.joined(separator: "\n") + "\nnot json\n",
                                            to: "d.jsonl", in: dir)
        let corpus = try TextCorpus(path: url)
        var seen: [String] = []
        try corpus.forEachExample { example in
            seen.append(example.text)
            return seen.count < 3
        }
        XCTAssertEqual(seen, ["t1", "t2", "t3"])
        assertBadFile([url.path + ":6:"]) { _ = try corpus.readAll() }
    }

    func testSplitRuleIsDeterministicDisjointAndNearTheRequestedFraction() {
        let rule = SplitRule(percentage: 10, seed: 7)
        let n = 20_000
        let validation = (0..<n).filter { rule.isValidation(index: $0) }
        XCTAssertEqual(Double(validation.count) / Double(n), 0.10, accuracy: 0.01)
        for i in 0..<n {
            XCTAssertNotEqual(rule.includes(index: i, side: .train), rule.includes(index: i, side: .validation))
        }
        XCTAssertEqual(validation, (0..<n).filter { SplitRule(percentage: 10, seed: 7).isValidation(index: $0) })
        XCTAssertNotEqual(validation, (0..<n).filter { SplitRule(percentage: 10, seed: 8).isValidation(index: $0) })
        // Validation sets grow with the percentage (same hash, larger threshold).
        let larger = Set((0..<n).filter { SplitRule(percentage: 25, seed: 7).isValidation(index: $0) })
        XCTAssertTrue(Set(validation).isSubset(of: larger))
        XCTAssertEqual(Double(larger.count) / Double(n), 0.25, accuracy: 0.015)
        XCTAssertFalse((0..<1000).contains { SplitRule(percentage: 0).isValidation(index: $0) })
        XCTAssertTrue((0..<1000).allSatisfy { SplitRule(percentage: 100).isValidation(index: $0) })
    }

    func testErrorDescriptions() {
        let file = "/data/train.jsonl"
        XCTAssertEqual(AlbertMoEError.badFile(path: file, line: 17, reason: "not valid JSON").description, "/data/train.jsonl:17: not valid JSON")
        XCTAssertEqual(AlbertMoEError.badFile(path: file, reason: "no examples").description, "/data/train.jsonl: no examples")
        let setting = AlbertMoEError.invalidValue(field: "batchSize", reason: "bad setting")
        XCTAssertEqual(setting.description, "batchSize: bad setting")
        XCTAssertEqual(setting.localizedDescription, "batchSize: bad setting")
        XCTAssertEqual(AlbertMoEError.cannotContinue("bad data").localizedDescription, "bad data")
    }
}
