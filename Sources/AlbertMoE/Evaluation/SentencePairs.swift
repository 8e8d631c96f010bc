import Foundation
import Tokenizers

/// Sentence-pair files for similarity tasks: TSV or CSV with a header, or JSON lines, holding the columns
/// sentence1, sentence2 and score (a number; other columns are ignored).
public enum SentencePairs {
    static let columns = ["sentence1", "sentence2", "score"]

    /// The pairs of a file, in order. Errors name the file, the line and what is wrong.
    public static func read(_ url: URL) throws -> [SentencePair] {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AlbertMoEError.badFile(path: url.path, reason: "no such file")
        }
        var pairs: [SentencePair] = []
        try TextCorpus.forEachRecord(in: url, columns: columns, numericColumns: ["score"]) { fields, line in
            guard let score = Double(fields[2].trimmingCharacters(in: .whitespaces)), score.isFinite else {
                throw AlbertMoEError.badFile(path: url.path, line: line, reason: "score '\(fields[2])' is not a number")
            }
            pairs.append(SentencePair(fields[0], fields[1], score: score))
            return true
        }
        guard pairs.count >= 2 else {
            throw AlbertMoEError.badFile(path: url.path, reason: "a similarity task needs at least 2 pairs, found \(pairs.count)")
        }
        return pairs
    }
}
