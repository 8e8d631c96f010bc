import XCTest
@testable import AlbertMoE

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
