import JSON
import Foundation

/// Trains a SentencePiece-style Unigram tokenizer (Metaspace words, NFKC).
///
/// This is a compact hard-EM trainer, not a reimplementation of SentencePiece's trainer: it seeds
/// frequent substrings, re-estimates piece probabilities from Viterbi segmentations, and prunes
/// to at most the requested size (fewer when the corpus supports fewer pieces). The output loads
/// in the Python library, which encodes it exactly as
/// we do (same model, same Viterbi).
public struct UnigramTrainer {
    public var options: TrainerOptions
    public var unkToken: String
    public var maxPieceLength: Int
    public var iterations: Int

    public init(options: TrainerOptions, unkToken: String = "<unk>", maxPieceLength: Int = 16, iterations: Int = 4) {
        self.options = options; self.unkToken = unkToken; self.maxPieceLength = maxPieceLength; self.iterations = iterations
    }

    public func train(files: [URL]) throws -> Tokenizer {
        try options.validate()
        let norm = JSONValue.obj([("type", .string("Sequence")), ("normalizers", .array([
            .obj([("type", .string("Nmt"))]), .obj([("type", .string("NFKC"))]),
            .obj([("type", .string("Replace")), ("pattern", .obj([("Regex", .string(" {2,}"))])), ("content", .string(" "))]),
        ]))])
        let meta: [(String, JSONValue)] = [("replacement", .string("\u{2581}")), ("prepend_scheme", .string("always")), ("split", .bool(true))]
        let pre = JSONValue.obj([("type", .string("Metaspace"))] + meta)
        let skeleton = try Tokenizer(jsonValue: .obj([("normalizer", norm), ("pre_tokenizer", pre),
                                                       ("model", .obj([("type", .string("WordLevel")), ("vocab", .obj([])), ("unk_token", .string(unkToken))]))]))
        let words = try countWords(texts: readTexts(files), using: skeleton).map { (Array($0.0.unicodeScalars), $0.1) }
        var specials = options.specialTokens
        if !specials.contains(unkToken) { specials.append(unkToken) }
        let target = max(options.vocabSize - specials.count, 1)

        // Seeds: all characters, plus frequent substrings.
        var charCount: [Unicode.Scalar: Int] = [:]
        var subCount: [[Unicode.Scalar]: Int] = [:]
        for (w, c) in words {
            for x in w { charCount[x, default: 0] += c }
            if w.count < 2 { continue }
            for i in 0..<w.count {
                var j = i + 2
                while j <= min(w.count, i + maxPieceLength) {
                    subCount[Array(w[i..<j]), default: 0] += c
                    j += 1
                }
            }
        }
        let chars = charCount.keys.sorted { $0.value < $1.value }
        let seeds = subCount.filter { $0.value >= max(1, options.minFrequency) }
            .sorted { a, b in
                let fa = a.value * a.key.count, fb = b.value * b.key.count
                if fa != fb { return fa > fb }
                return a.key.lexicographicallyPrecedes(b.key, by: { $0.value < $1.value })
            }
            .prefix(max(target * 4, 64))
        var pieces: [[Unicode.Scalar]] = chars.map { [$0] } + seeds.map { $0.key }
        var scores: [Double] = pieces.map { p in log(Double(p.count == 1 ? charCount[p[0]]! : subCount[p]!)) }
        let required = chars.count

        for iter in 0..<iterations {
            // Normalize to log-probabilities.
            let total = scores.reduce(0) { $0 + exp($1) }
            scores = scores.map { $0 - log(total) }
            var trie = ScalarTrie()
            for (i, p) in pieces.enumerated() { trie.insert(makeString(p[...]), id: i) }
            var usage = [Double](repeating: 0, count: pieces.count)
            for (w, c) in words {
                // Viterbi.
                let n = w.count
                var best = [Double](repeating: -.infinity, count: n + 1)
                var back = [Int](repeating: -1, count: n + 1)
                var piece = [Int](repeating: -1, count: n + 1)
                best[0] = 0
                for s in 0..<n where best[s] > -.infinity {
                    trie.prefixes(w[...], from: s) { len, id in
                        let v = best[s] + scores[id]
                        if v > best[s + len] { best[s + len] = v; back[s + len] = s; piece[s + len] = id }
                    }
                }
                var e = n
                while e > 0, back[e] >= 0 { usage[piece[e]] += Double(c); e = back[e] }
            }
            // Re-estimate and prune (characters are always kept).
            let keep = iter == iterations - 1 ? target : max(target, Int(Double(pieces.count) * 0.75))
            var order = Array(required..<pieces.count).filter { usage[$0] > 0 }
            order.sort { usage[$0] != usage[$1] ? usage[$0] > usage[$1] : $0 < $1 }
            let kept = Array(0..<required) + order.prefix(max(0, keep - required))
            pieces = kept.map { pieces[$0] }
            scores = kept.map { log(max(usage[$0], 0.5)) }
        }
        let total = scores.reduce(0) { $0 + exp($1) }
        scores = scores.map { $0 - log(total) }

        // Final vocabulary: specials, then pieces by decreasing score.
        let ranked = pieces.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
        var vocab: [JSONValue] = specials.map { .array([.string($0), .number(0)]) }
        var seen = Set(specials.map { VocabKey($0) })
        for i in ranked {
            let s = makeString(pieces[i][...])
            if seen.insert(VocabKey(s)).inserted { vocab.append(.array([.string(s), .number(scores[i])])) }
        }
        let unkId = specials.firstIndex(of: unkToken)!
        let json = JSONValue.obj([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(specials.enumerated().map { AddedToken(content: $0.element, id: $0.offset, normalized: false, special: true).toJSON() })),
            ("normalizer", norm), ("pre_tokenizer", pre), ("post_processor", .null),
            ("decoder", .obj([("type", .string("Metaspace"))] + meta)),
            ("model", .obj([("type", .string("Unigram")), ("unk_id", .number(Double(unkId))), ("vocab", .array(vocab)),
                            ("byte_fallback", .bool(false))])),
        ])
        return try Tokenizer(jsonValue: json)
    }
}
