import JSON
import Foundation
import XCTest
@testable import Tokenizers

/// Long runs of one character and repeated patterns (<family>.repeats.json), where segmentations tie:
/// Unigram paths of equal score, BPE merges of one rank at several positions, WordPiece matching the same
/// piece again and again. The ascii_* tokenizers are trained on ASCII art so that those ties arise.
final class RepeatGoldenTests: XCTestCase {
    /// Every family has at least this many lines (the script writes the same texts for each).
    static let minimumCases = 150

    /// Checks `<name>.repeats.json` against `<name>.tokenizer.json` (tokens under "tokens") or, for a
    /// SentencePiece family, `<name>.model` (tokens under "pieces").
    func check(_ name: String, sentencePiece: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws {
        let tok = try Tokenizer.load(from: Fixtures.url(sentencePiece ? "\(name).model" : "\(name).tokenizer.json"))
        let cases = try Fixtures.json("\(name).repeats.json")["cases"]!.arrayValue
        XCTAssertGreaterThanOrEqual(cases.count, Self.minimumCases, name, file: file, line: line)
        var failures: [String] = []
        for c in cases {
            let text = c["text"]!.stringValue!
            do {
                let d = try pieceDifferences(try tok.encode(text), c, tokensKey: sentencePiece ? "pieces" : "tokens", tokenizer: tok)
                if !d.isEmpty { failures.append("'\(describe(text))': " + d.joined(separator: "; ")) }
            } catch {
                failures.append("'\(describe(text))' threw \(error)")
            }
        }
        report("\(name) repeats", failures, total: cases.count, file: file, line: line)
    }

    func testBertWordPiece() throws { try check("bert_wordpiece") }
    func testBertCased() throws { try check("bert_cased") }
    func testRobertaByteLevelBPE() throws { try check("roberta_bpe") }
    func testGPT2ByteLevelBPE() throws { try check("gpt2_bpe") }
    func testUnigramMetaspace() throws { try check("unigram_metaspace") }
    func testAlbertPrecompiledUnigram() throws { try check("albert_unigram") }
    /// The files the Swift trainers wrote, as the Python library loads them.
    func testTrainedBPE() throws { try check("trained_bpe") }
    func testTrainedWordPiece() throws { try check("trained_wordpiece") }
    func testTrainedUnigram() throws { try check("trained_unigram") }
    /// Trained by the Python library on ASCII art: pieces like "#", "##", "####" make equal-score paths.
    func testAsciiArtUnigram() throws { try check("ascii_unigram") }
    /// sp_ascii_unigram converted the ALBERT way: float32 scores, some read back by the Rust library one unit in the
    /// last place off, which decides which of two equal-looking paths wins (runs of "_" from 18 on).
    func testAsciiArtAlbertUnigram() throws { try check("ascii_albert_unigram") }
    func testAsciiArtByteLevelBPE() throws { try check("ascii_bpe") }
    /// ascii_bpe with some merges listed a second time at the end: a pair takes the rank of its last listing.
    func testDuplicateMergesTakeTheirLastRank() throws { try check("ascii_bpe_duplicate_merges") }
    /// Whitespace split only: "####" is one word, and its continuation pieces start with the "##" prefix.
    func testAsciiArtWordPiece() throws { try check("ascii_wordpiece") }

    func testSentencePieceUnigramModel() throws { try check("sp_unigram", sentencePiece: true) }
    func testSentencePieceBPEModel() throws { try check("sp_bpe", sentencePiece: true) }
    func testSentencePieceRawUnigramModel() throws { try check("sp_unigram_raw", sentencePiece: true) }
    func testSentencePieceAsciiArtUnigramModel() throws { try check("sp_ascii_unigram", sentencePiece: true) }
    func testSentencePieceAsciiArtBPEModel() throws { try check("sp_ascii_bpe", sentencePiece: true) }
    /// Normal pieces "<s", "ep>", "<c", "ls>" compete with the user-defined "<sep>" and "<cls>".
    func testSentencePieceUserDefinedScore() throws { try check("sp_ascii_user_defined", sentencePiece: true) }

    /// Numbers in a tokenizer.json are read as the Rust library reads them (serde_json's default parser, which
    /// can land one unit in the last place away from the nearest double): Unigram scores then tie, or not,
    /// exactly as they do there.
    func testNumbersReadLikeTheRustLibrary() throws {
        let g = try Fixtures.json("json_floats.json")
        let literals = g["literals"]!.stringArray
        let rust = g["rust"]!.stringArray
        XCTAssertGreaterThan(literals.count, 200)
        XCTAssertEqual(literals.count, rust.count)
        var failures: [String] = []
        var inexact = 0
        for (lit, r) in zip(literals, rust) {
            guard case let .number(v) = try JSONValue.parse(Data(lit.utf8)) else { failures.append("\(lit): not a number"); continue }
            let want = Double(r)!
            // Subnormal results depend on the thread's floating-point mode: the kernels set flush-to-zero on every
            // thread that runs a product (this one too, once another test has), and no tokenizer score is subnormal.
            if want.isSubnormal { continue }   // (a bit test: with denormals-are-zero on, comparisons see 0)
            if v.bitPattern != want.bitPattern { failures.append("\(lit): \(v) != \(r)") }
            if let nearest = Double(lit), nearest.bitPattern != want.bitPattern { inexact += 1 }
        }
        // The fixture must hold literals where the two readings differ, or it would not test anything.
        XCTAssertGreaterThan(inexact, 10)
        report("json numbers", failures, total: literals.count)
    }
}
