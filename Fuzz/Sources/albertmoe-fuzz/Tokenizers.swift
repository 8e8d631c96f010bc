import Foundation
import JSON
@testable import Tokenizers

/// A short text with what tokenizers treat specially: accents, CJK, emoji, digits, spaces, special tokens.
let sampleText = "Hello, wörld!  ça va? 東京 🙂 x1234 [MASK] <s></s> ▁a\u{301}"

/// The JSON reader: a value that parses serializes to text that parses to the same value (numbers to within a unit
/// in the last place: the reader rounds as serde_json does, twice).
func fuzzJSON(_ data: Data) {
    expecting(JSONError.self) {
        let value = try JSONValue.parse(data)
        for indent in [nil, 2] {
            let again = try JSONValue.parse(value.serialized(indent: indent))
            precondition(nearlyEqual(again, value), "serialized JSON reads back differently")
        }
    }
}

private func nearlyEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case let (.number(x), .number(y)): return x == y || x.nextUp == y || x.nextDown == y
    case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy(nearlyEqual)
    case let (.object(x), .object(y)):
        return x.pairs.count == y.pairs.count && zip(x.pairs, y.pairs).allSatisfy { $0.0 == $1.0 && nearlyEqual($0.1, $1.1) }
    default: return a == b
    }
}

/// tokenizer.json: the tokenizer, then a text and a pair encoded and decoded.
func fuzzTokenizerJSON(_ data: Data) {
    expecting(TokenizerError.self) {
        let tokenizer = try Tokenizer(json: data)
        try exercise(tokenizer)
    }
}

/// The JSON side files of a tokenizer (tokenizer_config.json, special_tokens_map.json, added_tokens.json): the
/// first byte picks the file that the rest is and the tokenizer beside it (a small tokenizer.json, or a
/// SentencePiece model, which tokenizer_config.json may make ALBERT's tokenizer); `Tokenizer.load` reads the folder.
func fuzzTokenizerFiles(_ data: Data) {
    let (options, contents) = choice(data)
    let name = ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"][Int(options % 3)]
    let tokenizer = options & 0x80 == 0 ? ("tokenizer.json", smallTokenizerJSON) : ("spiece.model", smallSentencePiece)
    let folder = writeScratch([(name, contents), tokenizer])
    expecting(TokenizerError.self) { try exercise(try Tokenizer.load(from: folder)) }
}

/// A WordPiece tokenizer.json of a few tokens, with BERT's special tokens.
var smallTokenizerJSON: Data {
    Data(#"""
    {"added_tokens": [{"id": 0, "content": "[PAD]", "special": true}, {"id": 1, "content": "[UNK]", "special": true},
      {"id": 2, "content": "[CLS]", "special": true}, {"id": 3, "content": "[SEP]", "special": true},
      {"id": 4, "content": "[MASK]", "special": true}],
     "normalizer": {"type": "BertNormalizer", "lowercase": true}, "pre_tokenizer": {"type": "BertPreTokenizer"},
     "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
     "decoder": {"type": "WordPiece", "prefix": "##"},
     "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
       "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6, "a": 7, "##b": 8,
         "<s>": 9, "</s>": 10, "<pad>": 11, "<unk>": 12}}}
    """#.utf8)
}

/// A small SentencePiece model from the seed corpus. (Read for each input, as the other values that inputs use are
/// made for each: a global made during one input would be reported as its leak.)
var smallSentencePiece: Data {
    (try? Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Corpus/sentencepiece/sp_named_ids.model"))) ?? Data()
}

/// A SentencePiece `.model`: the processor, the tokenizer built from it, and ALBERT's tokenizer built from it.
func fuzzSentencePiece(_ data: Data) {
    expecting(TokenizerError.self) {
        let sp = try SentencePieceProcessor(modelData: [UInt8](data))
        let ids = sp.encode(sampleText)
        _ = sp.decode(ids + [-1, sp.vocabSize, Int.max])
        _ = sp.encodePieces(sampleText)
        try exercise(try Tokenizer(sentencePiece: sp))
        let folder = writeScratch([])
        try exercise(try Tokenizer(jsonValue: try AlbertSentencePiece.tokenizerJSON(sp, folder: folder)))
    }
}

private func exercise(_ tokenizer: Tokenizer) throws {
    let encoding = try tokenizer.encode(sampleText, pair: "a second text")
    _ = try tokenizer.decode(encoding.ids, skipSpecialTokens: false)
    // A model's vocabulary may be larger than its tokenizer's: ids past the tokenizer's end reach decode.
    _ = try tokenizer.decode(encoding.ids + [tokenizer.vocabSize, tokenizer.vocabSize + 7])
    _ = try tokenizer.encodeUnpadded(sampleText, maxLength: 8)
    for id in encoding.ids.prefix(4) { _ = tokenizer.idToToken(id).flatMap(tokenizer.tokenToId) }
}
