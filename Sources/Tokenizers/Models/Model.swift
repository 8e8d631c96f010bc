import JSON
import Foundation

/// A tokenization model: turns one pre-tokenized word into tokens.
public protocol TokenizerModel: AnyObject {
    /// Tokenizes a word given as unicode scalars; token ranges index into `word`.
    func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken]
    func tokenToId(_ token: String) -> Int?
    func idToToken(_ id: Int) -> String?
    var vocabSize: Int { get }
    /// The model's part of tokenizer.json.
    func toJSON() -> JSONValue
}

@inline(__always) func makeString(_ s: ArraySlice<Unicode.Scalar>) -> String {
    var v = String.UnicodeScalarView()
    v.append(contentsOf: s)
    return String(v)
}

func parseVocabObject(_ node: JNode) throws -> [VocabKey: Int] {
    var vocab: [VocabKey: Int] = [:]
    guard case let .object(o) = node.value else { throw node.invalid("expected an object") }
    vocab.reserveCapacity(o.pairs.count)
    for (k, v) in o.pairs {
        // Ids index dense tables, so absurd values are rejected rather than allocated.
        guard case let .number(d) = v, d == d.rounded(), d >= 0, d < 100_000_000 else {
            throw TokenizerError.invalidField(path: node.path + "." + k, component: node.component, reason: "expected a token id (0 ..< 100000000)")
        }
        vocab[VocabKey(k)] = Int(d)
    }
    return vocab
}

/// "<0xAB>": the name of a byte-fallback token.
func byteTokenName(_ b: UInt8) -> String {
    let hex: StaticString = "0123456789ABCDEF"
    let h = hex.utf8Start
    return String(decoding: [UInt8(ascii: "<"), UInt8(ascii: "0"), UInt8(ascii: "x"), h[Int(b >> 4)], h[Int(b & 15)], UInt8(ascii: ">")],
                  as: UTF8.self)
}

func vocabArray(_ vocab: [VocabKey: Int]) -> [String?] {
    let n = (vocab.values.max() ?? -1) + 1
    var r = [String?](repeating: nil, count: n)
    for (k, v) in vocab where v >= 0 { r[v] = k.string }
    return r
}

func vocabJSON(_ vocab: [VocabKey: Int]) -> JSONValue {
    let sorted = vocab.sorted { $0.value < $1.value }
    return .object(JSONObject(sorted.map { ($0.key.string, .number(Double($0.value))) }))
}

enum ModelFactory {
    static func make(_ node: JNode) throws -> TokenizerModel {
        // Older files may omit the model type; infer it like the Rust library does.
        var type: String
        if node.has("type") {
            type = try node.typeName()
        } else if node.has("merges") {
            type = "BPE"
        } else if node.has("continuing_subword_prefix") || node.has("max_input_chars_per_word") {
            type = "WordPiece"
        } else if case .array = try node.field("vocab").value {
            type = "Unigram"
        } else {
            type = "WordLevel"
        }
        let n = node.withComponent(type)
        switch type {
        case "WordPiece": return try WordPieceModel(json: n)
        case "BPE": return try BPEModel(json: n)
        case "Unigram": return try UnigramModel(json: n)
        case "WordLevel": return try WordLevelModel(json: n)
        default: throw TokenizerError.unknownType(path: node.path + ".type", type: type)
        }
    }
}

public final class WordLevelModel: TokenizerModel {
    let vocab: [VocabKey: Int]
    let idToString: [String?]
    let unkToken: String

    init(json n: JNode) throws {
        vocab = try parseVocabObject(try n.field("vocab"))
        idToString = vocabArray(vocab)
        unkToken = try n.string("unk_token", default: "<unk>")
    }

    public func tokenize(_ word: ArraySlice<Unicode.Scalar>) throws -> [ModelToken] {
        let s = makeString(word)
        let b = word.startIndex
        if let id = vocab[VocabKey(s)] { return [ModelToken(id: id, value: s, start: 0, end: word.endIndex - b)] }
        guard let u = vocab[VocabKey(unkToken)] else { throw TokenizerError.invalidField(path: "$.model.unk_token", component: "WordLevel", reason: "unk token not in vocabulary") }
        return [ModelToken(id: u, value: unkToken, start: 0, end: word.endIndex - b)]
    }
    public func tokenToId(_ token: String) -> Int? { vocab[VocabKey(token)] }
    public func idToToken(_ id: Int) -> String? { id >= 0 && id < idToString.count ? idToString[id] : nil }
    public var vocabSize: Int { vocab.count }
    public func toJSON() -> JSONValue {
        .obj([("type", .string("WordLevel")), ("vocab", vocabJSON(vocab)), ("unk_token", .string(unkToken))])
    }
}
