import XCTest
@testable import AlbertMoE
import Tokenizers

final class EvaluationTests: XCTestCase {
    func testCorrelationsMatchSciPy() {
        // scipy.stats.pearsonr / spearmanr on the same values (ties in both samples).
        let x = [1.0, 2.5, 2.5, 4.0, 0.5, 3.0, 5.0], y = [0.2, 0.1, 0.9, 0.8, 0.05, 0.8, 1.0]
        XCTAssertEqual(Correlation.pearson(x, y)!, 0.807199662140105, accuracy: 1e-12)
        XCTAssertEqual(Correlation.spearman(x, y)!, 0.7818181818181817, accuracy: 1e-12)
        XCTAssertEqual(Correlation.ranks([3, 1, 2, 2]), [4, 1, 2.5, 2.5])
        XCTAssertEqual(Correlation.spearman([1, 2, 3, 4], [1, 8, 27, 64])!, 1, accuracy: 1e-12)
        XCTAssertNil(Correlation.pearson([1, 1, 1], [1, 2, 3]))
    }

    func testSimilarityScores() throws {
        let pairs = [SentencePair("a", "b", score: 5), SentencePair("c", "d", score: 1), SentencePair("e", "f", score: 3)]
        // Cosine similarities 1, 0, 0.6: ordered as the gold scores.
        let first: [[Float]] = [[1, 0], [1, 0], [1, 0]], second: [[Float]] = [[1, 0], [0, 1], [0.6, 0.8]]
        let s = try SentenceSimilarity.scores(pairs: pairs, first: first, second: second)
        XCTAssertEqual(s.cosineSpearman, 1, accuracy: 1e-12)
        XCTAssertEqual(s.mainScore, s.cosineSpearman)
        XCTAssertEqual(s.euclideanSpearman, 1, accuracy: 1e-12)
        XCTAssertEqual(s.manhattanSpearman, 1, accuracy: 1e-12)
        XCTAssertEqual(s.named.count, 6)
        XCTAssertThrowsError(try SentenceSimilarity.scores(pairs: Array(pairs.prefix(1)), first: [[1]], second: [[1]]))
    }
}

final class PerplexityTests: XCTestCase {
    func testWindowsScoreEveryTokenOnce() throws {
        let texts = ["the cat sat on the mat and the dog sat on the rug while the bird sang", "a cat", "dog"]
        let tokenizer = try WordPieceTrainer(options: TrainerOptions(vocabSize: 60, minFrequency: 1, specialTokens: ["[PAD]", "[UNK]"]))
            .train(texts: texts)
        var config = tinyConfig()
        config.vocabSize = tokenizer.vocabSize
        let model = AlbertForCausalLM(config, seed: 8)
        let ids = try tokenizer.encode(texts[0]).ids.map(Int32.init)
        // One window: the mean cross-entropy of a plain forward.
        let whole = try model.perplexity(of: [texts[0]], tokenizer: tokenizer)
        model.eval()
        let direct = try withNoGrad { try model(IntTensor(ids, shape: [1, ids.count]), labels: IntTensor(ids, shape: [1, ids.count])).ceLoss! }
        XCTAssertEqual(whole.tokens, ids.count - 1)
        XCTAssertEqual(whole.loss, Double(direct.item), accuracy: 1e-5)
        // Short windows: every token still scored exactly once, with less context (another value).
        let windowed = try model.perplexity(of: texts, tokenizer: tokenizer, window: 6, stride: 3)
        let lengths = try texts.map { try tokenizer.encode($0).ids.count }
        XCTAssertEqual(windowed.tokens, lengths.map { max($0 - 1, 0) }.reduce(0, +))
        XCTAssertTrue(windowed.perplexity.isFinite && windowed.perplexity > 1)
        XCTAssertThrowsError(try model.perplexity(of: texts, tokenizer: tokenizer, window: 6, stride: 6))
        XCTAssertThrowsError(try model.perplexity(of: ["x"], tokenizer: tokenizer))
    }
}
