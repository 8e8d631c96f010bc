import JSON
import Foundation

/// Common trainer options.
public struct TrainerOptions {
    public var vocabSize: Int
    public var minFrequency: Int
    public var specialTokens: [String]
    /// Keep at most this many initial characters (most frequent first); nil keeps all.
    public var limitAlphabet: Int?

    public init(vocabSize: Int, minFrequency: Int = 2, specialTokens: [String] = [], limitAlphabet: Int? = nil) {
        self.vocabSize = vocabSize; self.minFrequency = minFrequency; self.specialTokens = specialTokens; self.limitAlphabet = limitAlphabet
    }

    /// The largest vocabulary size a trainer takes.
    public static let maxVocabSize = 1_000_000

    /// Throws `TokenizerError.training` when `vocabSize` is not above the number of special tokens (no room for a
    /// learned token) or is above `maxVocabSize`. (A byte-level BPE vocabulary holds its 256 byte tokens whatever
    /// the size asked for.) Every trainer checks this first.
    public func validate() throws {
        guard vocabSize > specialTokens.count && vocabSize <= Self.maxVocabSize else {
            throw TokenizerError.training("the vocabulary size must be more than the \(specialTokens.count) special tokens and at "
                                          + "most \(Self.maxVocabSize), got \(vocabSize)")
        }
    }
}

/// Counts the words produced by a tokenizer's normalizer and pre-tokenizer over text files.
func countWords<Texts: Sequence>(texts: Texts, using tok: Tokenizer) throws -> [(String, Int)] where Texts.Element == String {
    var counts: [VocabKey: Int] = [:]
    for text in texts {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            for w in try tok.pretokenize(String(line)) { counts[VocabKey(w), default: 0] += 1 }
        }
    }
    // Deterministic order: by UTF-8 bytes.
    return counts.map { ($0.key.string, $0.value) }.sorted { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
}

extension Tokenizer {
    /// The words (normalized, pre-tokenized splits) of a text, as the model would see them.
    public func pretokenize(_ text: String) throws -> [String] {
        var pre = try addedVocabulary.extractAndNormalize(Array(text.unicodeScalars), normalizer: normalizer)
        try preTokenizer?.preTokenize(&pre)
        return pre.splits.filter { $0.tokens == nil }.map { $0.normalized.string }
    }

    /// The tokenizer as a tokenizer.json document (only for tokenizers loaded from or trained to JSON).
    /// Its `truncation` and `padding` are written as they are now (set by a caller, or as loaded).
    public func toJSONString() throws -> String {
        guard case var .object(o)? = json else {
            throw TokenizerError.io("this tokenizer has no tokenizer.json form (SentencePiece model)")
        }
        o.set("truncation", truncation?.toJSON() ?? .null)
        o.set("padding", padding?.toJSON() ?? .null)
        do { return try JSONValue.object(o).serialized(indent: 2) } catch {
            throw TokenizerError.io("the tokenizer cannot be written as JSON: \(error)")
        }
    }
}

/// The contents of text files, for the trainers.
func readTexts(_ files: [URL]) throws -> [String] {
    try files.map { f in
        guard let data = try? Data(contentsOf: f) else { throw TokenizerError.io("cannot read \(f.path)") }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Byte-pair-encoding merge learning shared by the BPE and WordPiece trainers.
struct BPELearner {
    var vocab: [String] = []
    var ids: [VocabKey: Int] = [:]
    var merges: [(String, String)] = []

    mutating func add(_ s: String) -> Int {
        if let i = ids[VocabKey(s)] { return i }
        ids[VocabKey(s)] = vocab.count
        vocab.append(s)
        return vocab.count - 1
    }

    /// Learns merges on `words` (with counts); `prefix` marks non-initial symbols (WordPiece style).
    mutating func learn(words: [(String, Int)], options: TrainerOptions, initialAlphabet: [Unicode.Scalar], prefix: String?) {
        for s in options.specialTokens { _ = add(s) }
        // Alphabet: given initial characters plus the characters seen, most frequent first when limited.
        var charCounts: [UInt32: Int] = [:]
        for (w, c) in words { for u in w.unicodeScalars { charCounts[u.value, default: 0] += c } }
        var kept = charCounts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { $0.key }
        if let l = options.limitAlphabet, kept.count > l { kept = Array(kept.prefix(l)) }
        let alphabet = Set(kept).union(initialAlphabet.map { $0.value }).sorted()
        for v in alphabet { _ = add(String(Unicode.Scalar(v)!)) }
        let allowed = Set(alphabet)

        // Words as symbol ids; characters outside the alphabet are dropped.
        var seqs: [[Int]] = []
        var counts: [Int] = []
        for (w, c) in words {
            var seq: [Int] = []
            var first = true
            for u in w.unicodeScalars {
                guard allowed.contains(u.value) else { continue }
                var s = String(u)
                if !first, let p = prefix { s = p + s }
                seq.append(add(s))
                first = false
            }
            if !seq.isEmpty { seqs.append(seq); counts.append(c) }
        }

        @inline(__always) func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }
        var pairCounts: [UInt64: Int] = [:]
        var where_: [UInt64: Set<Int>] = [:]
        for (wi, seq) in seqs.enumerated() where seq.count > 1 {
            for i in 0..<(seq.count - 1) {
                let k = key(seq[i], seq[i + 1])
                pairCounts[k, default: 0] += counts[wi]
                where_[k, default: []].insert(wi)
            }
        }
        let prefixLen = prefix?.utf8.count ?? 0
        while vocab.count < options.vocabSize {
            var best: UInt64 = 0
            var bestCount = 0
            for (k, c) in pairCounts where c > 0 {
                if c > bestCount || (c == bestCount && k < best) { best = k; bestCount = c }
            }
            if bestCount < max(1, options.minFrequency) { break }
            let a = Int(best >> 32), b = Int(best & 0xFFFF_FFFF)
            let bs = Array(vocab[b].utf8)
            let newTok = vocab[a] + String(decoding: bs[min(prefixLen, bs.count)...], as: UTF8.self)
            let n = add(newTok)
            merges.append((vocab[a], vocab[b]))
            for wi in where_[best] ?? [] {
                let seq = seqs[wi]
                if seq.count < 2 { continue }
                let c = counts[wi]
                for i in 0..<(seq.count - 1) { pairCounts[key(seq[i], seq[i + 1]), default: 0] -= c }
                var out: [Int] = []
                out.reserveCapacity(seq.count)
                var i = 0
                while i < seq.count {
                    if i + 1 < seq.count && seq[i] == a && seq[i + 1] == b { out.append(n); i += 2 } else { out.append(seq[i]); i += 1 }
                }
                seqs[wi] = out
                if out.count > 1 {
                    for j in 0..<(out.count - 1) {
                        let k = key(out[j], out[j + 1])
                        pairCounts[k, default: 0] += c
                        where_[k, default: []].insert(wi)
                    }
                }
            }
            pairCounts[best] = nil
            where_[best] = nil
        }
    }
}

func addedTokensJSON(_ specials: [String], ids: [VocabKey: Int]) -> JSONValue {
    .array(specials.compactMap { s in
        ids[VocabKey(s)].map { AddedToken(content: s, id: $0, normalized: false, special: true).toJSON() }
    })
}

/// Trains a byte-level BPE tokenizer (GPT-2 / RoBERTa style).
public struct ByteLevelBPETrainer {
    public var options: TrainerOptions
    public var addPrefixSpace: Bool

    public init(options: TrainerOptions, addPrefixSpace: Bool = false) {
        self.options = options; self.addPrefixSpace = addPrefixSpace
    }

    public func train(files: [URL]) throws -> Tokenizer {
        try options.validate()
        return try train(texts: readTexts(files))
    }

    /// Trains on texts (each may hold several lines).
    public func train<Texts: Sequence>(texts: Texts) throws -> Tokenizer where Texts.Element == String {
        try options.validate()
        let pre = JSONValue.obj([("type", .string("ByteLevel")), ("add_prefix_space", .bool(addPrefixSpace)),
                                 ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
        let skeleton = try Tokenizer(jsonValue: .obj([("pre_tokenizer", pre),
                                                       ("model", .obj([("type", .string("WordLevel")), ("vocab", .obj([])), ("unk_token", .string("<unk>"))]))]))
        let words = try countWords(texts: texts, using: skeleton)
        var l = BPELearner()
        l.learn(words: words, options: options, initialAlphabet: ByteLevelTable.byteToScalar, prefix: nil)
        let model = JSONValue.obj([
            ("type", .string("BPE")), ("dropout", .null), ("unk_token", .null), ("continuing_subword_prefix", .null),
            ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)), ("ignore_merges", .bool(false)),
            ("vocab", .object(JSONObject(l.vocab.enumerated().map { ($0.element, .number(Double($0.offset))) }))),
            ("merges", .array(l.merges.map { .array([.string($0.0), .string($0.1)]) })),
        ])
        let json = JSONValue.obj([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", addedTokensJSON(options.specialTokens, ids: l.ids)),
            ("normalizer", .null), ("pre_tokenizer", pre),
            ("post_processor", .obj([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)),
                                     ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
            ("decoder", .obj([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)),
                              ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
            ("model", model),
        ])
        return try Tokenizer(jsonValue: json)
    }
}

/// Trains a BERT-style WordPiece tokenizer (learned as BPE with a "##" continuation prefix).
public struct WordPieceTrainer {
    public var options: TrainerOptions
    public var lowercase: Bool
    public var unkToken: String
    public var prefix: String

    public init(options: TrainerOptions, lowercase: Bool = true, unkToken: String = "[UNK]", prefix: String = "##") {
        self.options = options; self.lowercase = lowercase; self.unkToken = unkToken; self.prefix = prefix
    }

    public func train(files: [URL]) throws -> Tokenizer {
        try options.validate()
        return try train(texts: readTexts(files))
    }

    /// Trains on texts (each may hold several lines).
    public func train<Texts: Sequence>(texts: Texts) throws -> Tokenizer where Texts.Element == String {
        try options.validate()
        let norm = JSONValue.obj([("type", .string("BertNormalizer")), ("clean_text", .bool(true)),
                                  ("handle_chinese_chars", .bool(true)), ("strip_accents", .null), ("lowercase", .bool(lowercase))])
        let pre = JSONValue.obj([("type", .string("BertPreTokenizer"))])
        let skeleton = try Tokenizer(jsonValue: .obj([("normalizer", norm), ("pre_tokenizer", pre),
                                                       ("model", .obj([("type", .string("WordLevel")), ("vocab", .obj([])), ("unk_token", .string("<unk>"))]))]))
        let words = try countWords(texts: texts, using: skeleton)
        var opts = options
        if !opts.specialTokens.contains(unkToken) { opts.specialTokens.insert(unkToken, at: 0) }
        var l = BPELearner()
        l.learn(words: words, options: opts, initialAlphabet: [], prefix: prefix)
        var pairs: [(String, JSONValue)] = []
        var cls: Int? = nil, sep: Int? = nil
        for (i, t) in l.vocab.enumerated() { pairs.append((t, .number(Double(i)))) }
        cls = l.ids[VocabKey("[CLS]")]; sep = l.ids[VocabKey("[SEP]")]
        var post: JSONValue = .null
        if let c = cls, let s = sep {
            func special(_ name: String, _ t: Int) -> JSONValue { .obj([("SpecialToken", .obj([("id", .string(name)), ("type_id", .number(Double(t)))]))]) }
            func seq(_ name: String, _ t: Int) -> JSONValue { .obj([("Sequence", .obj([("id", .string(name)), ("type_id", .number(Double(t)))]))]) }
            post = .obj([
                ("type", .string("TemplateProcessing")),
                ("single", .array([special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)])),
                ("pair", .array([special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)])),
                ("special_tokens", .obj([
                    ("[CLS]", .obj([("id", .string("[CLS]")), ("ids", .array([.number(Double(c))])), ("tokens", .array([.string("[CLS]")]))])),
                    ("[SEP]", .obj([("id", .string("[SEP]")), ("ids", .array([.number(Double(s))])), ("tokens", .array([.string("[SEP]")]))])),
                ])),
            ])
        }
        let json = JSONValue.obj([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", addedTokensJSON(opts.specialTokens, ids: l.ids)),
            ("normalizer", norm), ("pre_tokenizer", pre), ("post_processor", post),
            ("decoder", .obj([("type", .string("WordPiece")), ("prefix", .string(prefix)), ("cleanup", .bool(true))])),
            ("model", .obj([("type", .string("WordPiece")), ("unk_token", .string(unkToken)),
                            ("continuing_subword_prefix", .string(prefix)), ("max_input_chars_per_word", .number(100)),
                            ("vocab", .object(JSONObject(pairs)))])),
        ])
        return try Tokenizer(jsonValue: json)
    }
}
