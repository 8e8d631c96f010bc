import JSON
import Foundation

public final class WordPieceModel: TokenizerModel {
    public let vocab: [VocabKey: Int]
    let idToString: [String?]
    /// Tries for word-initial tokens and for continuation tokens (prefix stripped).
    let initialTrie: ScalarTrie
    let continuationTrie: ScalarTrie
    public let unkToken: String
    public let prefix: String
    public let maxInputCharsPerWord: Int

    public init(vocab: [VocabKey: Int], unkToken: String = "[UNK]", prefix: String = "##", maxInputCharsPerWord: Int = 100) {
        self.vocab = vocab
        self.unkToken = unkToken
        self.prefix = prefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.idToString = vocabArray(vocab)
        var a = ScalarTrie(keys: vocab.count), b = ScalarTrie(keys: prefix.isEmpty ? 0 : vocab.count)
        let prefixScalars = prefix.unicodeScalars.count
        for (k, id) in vocab {
            a.insert(k.string, id: id)
            // Byte prefix; a valid UTF-8 prefix ends on a scalar boundary, so dropping its scalars is the same.
            if !prefix.isEmpty, k.string.utf8.starts(with: prefix.utf8) {
                b.insert(k.string.unicodeScalars.dropFirst(prefixScalars), id: id)
            }
        }
        if prefix.isEmpty { b = a }
        initialTrie = a
        continuationTrie = b
    }

    convenience init(json n: JNode) throws {
        self.init(vocab: try parseVocabObject(try n.field("vocab")),
                  unkToken: try n.string("unk_token", default: "[UNK]"),
                  prefix: try n.string("continuing_subword_prefix", default: "##"),
                  maxInputCharsPerWord: try n.int("max_input_chars_per_word", default: 100))
    }

    func unk(_ len: Int) throws -> [ModelToken] {
        guard let id = vocab[VocabKey(unkToken)] else {
            throw TokenizerError.invalidField(path: "$.model.unk_token", component: "WordPiece", reason: "unk token '\(unkToken)' not in vocabulary")
        }
        return [ModelToken(id: id, value: unkToken, start: 0, end: len)]
    }

    public func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        let n = word.count
        if n > maxInputCharsPerWord { return try unk(n) }
        let b = word.startIndex
        var out: [ModelToken] = []
        var start = 0
        while start < n {
            // Longest vocabulary entry starting here (the greedy longest-match of WordPiece).
            var bestLen = 0, bestId = -1
            (start == 0 ? initialTrie : continuationTrie).prefixes(word, from: b + start) { len, id in bestLen = len; bestId = id }
            guard bestId >= 0, let value = idToString[bestId] else { return try unk(n) }
            out.append(ModelToken(id: bestId, value: value, start: start, end: start + bestLen))
            start += bestLen
        }
        return out
    }

    public func tokenToId(_ token: String) -> Int? { vocab[VocabKey(token)] }
    public func idToToken(_ id: Int) -> String? { id >= 0 && id < idToString.count ? idToString[id] : nil }
    public var vocabSize: Int { vocab.count }
    public func toJSON() -> JSONValue {
        .obj([("type", .string("WordPiece")), ("unk_token", .string(unkToken)),
              ("continuing_subword_prefix", .string(prefix)),
              ("max_input_chars_per_word", .number(Double(maxInputCharsPerWord))), ("vocab", vocabJSON(vocab))])
    }
}
