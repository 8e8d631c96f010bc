import Foundation

/// A pair of sentences and its gold similarity score.
public struct SentencePair: Equatable {
    public let sentence1: String, sentence2: String
    public let score: Double
    public init(_ sentence1: String, _ sentence2: String, score: Double) {
        (self.sentence1, self.sentence2, self.score) = (sentence1, sentence2, score)
    }
}

/// The scores of one semantic-textual-similarity task, as MTEB's STS evaluator computes them: Pearson and
/// Spearman correlations of the gold scores with the cosine similarity of the embeddings, and with the negated
/// Manhattan and Euclidean distances. The main score is the cosine Spearman correlation.
public struct SimilarityScores: Equatable {
    public var cosinePearson: Double, cosineSpearman: Double
    public var manhattanPearson: Double, manhattanSpearman: Double
    public var euclideanPearson: Double, euclideanSpearman: Double
    public var mainScore: Double { cosineSpearman }
    public var pairs: Int

    /// The scores by their MTEB names.
    public var named: [(String, Double)] {
        [("cosine_pearson", cosinePearson), ("cosine_spearman", cosineSpearman),
         ("manhattan_pearson", manhattanPearson), ("manhattan_spearman", manhattanSpearman),
         ("euclidean_pearson", euclideanPearson), ("euclidean_spearman", euclideanSpearman)]
    }
}

public enum SentenceSimilarity {
    /// Scores embeddings of the pairs' sentences (`first[i]`, `second[i]` for `pairs[i]`). Throws when the
    /// scores or similarities are constant (a correlation is then undefined) or there are fewer than 2 pairs.
    public static func scores(pairs: [SentencePair], first: [[Float]], second: [[Float]]) throws -> SimilarityScores {
        precondition(pairs.count == first.count && pairs.count == second.count, "scores: one embedding pair per sentence pair")
        guard pairs.count >= 2 else {
            throw AlbertMoEError.invalidValue(field: "pairs", reason: "an STS task needs at least 2 pairs, got \(pairs.count)")
        }
        var cosine: [Double] = [], manhattan: [Double] = [], euclidean: [Double] = []
        for (a, b) in zip(first, second) {
            var dot = 0.0, na = 0.0, nb = 0.0, l1 = 0.0, l2 = 0.0
            for (x, y) in zip(a, b) {
                let (dx, dy) = (Double(x), Double(y))
                dot += dx * dy; na += dx * dx; nb += dy * dy
                l1 += abs(dx - dy); l2 += (dx - dy) * (dx - dy)
            }
            cosine.append(na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : 0)
            manhattan.append(-l1)
            euclidean.append(-l2.squareRoot())
        }
        let gold = pairs.map(\.score)
        func both(_ s: [Double], _ name: String) throws -> (Double, Double) {
            guard let p = Correlation.pearson(gold, s), let r = Correlation.spearman(gold, s) else {
                throw AlbertMoEError.cannotContinue("the \(name) similarities or the gold scores are all equal: no correlation")
            }
            return (p, r)
        }
        let (cp, cs) = try both(cosine, "cosine")
        let (mp, ms) = try both(manhattan, "Manhattan")
        let (ep, es) = try both(euclidean, "Euclidean")
        return SimilarityScores(cosinePearson: cp, cosineSpearman: cs, manhattanPearson: mp, manhattanSpearman: ms,
                                euclideanPearson: ep, euclideanSpearman: es, pairs: pairs.count)
    }

    /// Embeds every sentence with `encoder` and scores the pairs.
    public static func evaluate(_ encoder: SentenceAlbert, pairs: [SentencePair], batchSize: Int = 32) throws -> SimilarityScores {
        let first = try encoder.encode(pairs.map(\.sentence1), batchSize: batchSize)
        let second = try encoder.encode(pairs.map(\.sentence2), batchSize: batchSize)
        return try scores(pairs: pairs, first: first, second: second)
    }
}
