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

/// A SentencePiece `.model`: the processor, the tokenizer built from it, and ALBERT's tokenizer built from it.
func fuzzSentencePiece(_ data: Data) {
    expecting(TokenizerError.self) {
        let sp = try SentencePieceProcessor(modelData: [UInt8](data))
        let ids = sp.encode(sampleText)
        _ = sp.decode(ids)
        _ = sp.encodePieces(sampleText)
        try exercise(try Tokenizer(sentencePiece: sp))
        let folder = writeScratch([])
        try exercise(try Tokenizer(jsonValue: try AlbertSentencePiece.tokenizerJSON(sp, folder: folder)))
    }
}

private func exercise(_ tokenizer: Tokenizer) throws {
    let encoding = try tokenizer.encode(sampleText, pair: "a second text")
    _ = try tokenizer.decode(encoding.ids, skipSpecialTokens: false)
    _ = try tokenizer.encodeUnpadded(sampleText, maxLength: 8)
    for id in encoding.ids.prefix(4) { _ = tokenizer.idToToken(id).flatMap(tokenizer.tokenToId) }
}
