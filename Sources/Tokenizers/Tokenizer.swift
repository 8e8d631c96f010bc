import JSON
import Foundation

// How the pieces fit (mirrors the Rust `tokenizers` pipeline, so that outputs match exactly):
//
//   text --(AddedVocabulary.extractAndNormalize: non-normalized added tokens are cut out of the
//   raw text, each remaining piece is normalized, then normalized added tokens are cut out)-->
//   PreTokenizedString --(PreTokenizer: splits)--> words --(TokenizerModel.tokenize)--> tokens
//   --> Encoding (offsets through each NormalizedString's alignments) --(truncation,
//   PostProcessor, padding)--> final Encoding.
//
// Text is handled as unicode scalars. `NormalizedString` keeps, for every normalized scalar, the
// range of original code points it comes from and applies the Rust alignment rules (see
// `transform`, `replace`, `prepend`), so offsets are code-point offsets like Python's.
// Components are chosen by the JSON "type" fields in the *Factory enums; errors name the JSON
// path and the component. Vocabulary keys are `VocabKey` (byte equality, not Swift's canonical
// String equality). SentencePiece `.model` files go through `SentencePieceProcessor`, which
// follows the `sentencepiece` library (its own normalizer, Viterbi in Float, BPE by score).

/// A tokenizer compatible with the Hugging Face `tokenizers` library (tokenizer.json) and with
/// SentencePiece `.model` files.
public final class Tokenizer {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    public let model: TokenizerModel
    let postProcessor: PostProcessor?
    let decoder: Decoder?
    var addedVocabulary: AddedVocabulary
    public var truncation: TruncationParams?
    public var padding: PaddingParams?
    /// Set when loaded from a SentencePiece `.model`: encoding follows the `sentencepiece` library.
    let sentencePiece: SentencePieceProcessor?
    /// The JSON this tokenizer was loaded from (nil for SentencePiece models); added tokens
    /// registered later are reflected in its "added_tokens".
    public private(set) var json: JSONValue?
    /// The tokens of the roles (bos, eos, pad, mask, ...), as the tokenizer's files name them.
    public var specialTokens = SpecialTokens()

    init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: TokenizerModel, postProcessor: PostProcessor?,
         decoder: Decoder?, addedTokens: [AddedToken], truncation: TruncationParams?, padding: PaddingParams?,
         json: JSONValue?) throws {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedVocabulary = try AddedVocabulary(tokens: addedTokens, normalizer: normalizer)
        self.truncation = truncation
        self.padding = padding
        self.sentencePiece = nil
        self.json = json
        specialTokens = SpecialTokens(declaredBy: self)
    }

    init(sentencePiece sp: SentencePieceProcessor) throws {
        normalizer = nil; preTokenizer = nil; postProcessor = nil; decoder = nil
        model = sp.model
        addedVocabulary = try AddedVocabulary(tokens: [], normalizer: nil)
        sentencePiece = sp
        json = nil
        specialTokens = SpecialTokens(sentencePiece: sp)
    }

    // MARK: Loading

    /// Parses a tokenizer.json document.
    public convenience init(json data: Data) throws {
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch let error as JSONError {
            throw TokenizerError.malformedJSON(offset: error.offset, reason: error.reason)
        }
        try self.init(jsonValue: value)
    }

    public convenience init(jsonString: String) throws { try self.init(json: Data(jsonString.utf8)) }

    public convenience init(jsonValue: JSONValue) throws {
        let root = JNode(jsonValue)
        guard case .object = jsonValue else { throw root.invalid("expected a JSON object at the top level") }
        let model = try ModelFactory.make(try root.field("model"))
        let normalizer = try root.optional("normalizer").map(NormalizerFactory.make)
        let pre = try root.optional("pre_tokenizer").map(PreTokenizerFactory.make)
        let post = try root.optional("post_processor").map(PostProcessorFactory.make)
        let dec = try root.optional("decoder").map(DecoderFactory.make)
        let added = try root.optional("added_tokens")?.array().map(AddedToken.parse) ?? []
        let trunc = try root.optional("truncation").map(TruncationParams.parse)
        let pad = try root.optional("padding").map(PaddingParams.parse)
        try self.init(normalizer: normalizer, preTokenizer: pre, model: model, postProcessor: post, decoder: dec,
                      addedTokens: added, truncation: trunc, padding: pad, json: jsonValue)
    }

    /// Loads a tokenizer.json, a SentencePiece `.model`, or a directory holding either
    /// (tokenizer.json is preferred, then tokenizer.model / spiece.model / any *.model), with the roles that
    /// tokenizer_config.json and special_tokens_map.json beside it name (see `SpecialTokens`). A SentencePiece model
    /// whose tokenizer_config.json names ALBERT's tokenizer class is ALBERT's tokenizer, as the Python library builds
    /// it (lowercasing, `[CLS] A [SEP]`, the added tokens: see `AlbertSentencePiece`).
    public static func load(from url: URL) throws -> Tokenizer {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw TokenizerError.io("no such file: \(url.path)")
        }
        if isDir.boolValue {
            let fm = FileManager.default
            let json = url.appendingPathComponent("tokenizer.json")
            if fm.fileExists(atPath: json.path) { return try load(from: json) }
            for name in ["tokenizer.model", "spiece.model", "sentencepiece.model"] {
                let p = url.appendingPathComponent(name)
                if fm.fileExists(atPath: p.path) { return try load(from: p) }
            }
            let items = (try? fm.contentsOfDirectory(atPath: url.path)) ?? []
            if let m = items.sorted().first(where: { $0.hasSuffix(".model") }) { return try load(from: url.appendingPathComponent(m)) }
            if let j = items.sorted().first(where: { $0.hasSuffix(".json") }) { return try load(from: url.appendingPathComponent(j)) }
            throw TokenizerError.io("no tokenizer.json or .model file in \(url.path)")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw TokenizerError.io("cannot read \(url.path)") }
        let ext = url.pathExtension.lowercased()
        let looksLikeJSON = data.prefix(16).first { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 && $0 != 0xEF && $0 != 0xBB && $0 != 0xBF } == UInt8(ascii: "{")
        let folder = url.deletingLastPathComponent()
        let tokenizer: Tokenizer
        if ext == "model" || (ext != "json" && !looksLikeJSON) {
            let sp = try SentencePieceProcessor(modelData: [UInt8](data))
            let albert = AlbertSentencePiece.tokenizerClass(in: folder).map(AlbertSentencePiece.classes.contains) == true
            tokenizer = albert ? try Tokenizer(jsonValue: try AlbertSentencePiece.tokenizerJSON(sp, folder: folder))
                               : try Tokenizer(sentencePiece: sp)
        } else {
            tokenizer = try Tokenizer(json: data)
        }
        tokenizer.specialTokens.files = [url.path]
        try tokenizer.specialTokens.read(folder: folder, for: tokenizer)
        return tokenizer
    }

    // MARK: Vocabulary

    public func tokenToId(_ token: String) -> Int? { addedVocabulary.byContent[VocabKey(token)] ?? model.tokenToId(token) }
    public func idToToken(_ id: Int) -> String? { addedVocabulary.byId[id]?.content ?? model.idToToken(id) }
    public var vocabSize: Int {
        model.vocabSize + addedVocabulary.tokens.filter { model.tokenToId($0.content) == nil }.count
    }

    // MARK: Added tokens

    /// The added tokens, by id.
    public var addedTokens: [AddedToken] { addedVocabulary.tokens.sorted { $0.id < $1.id } }

    /// Registers tokens like the Python `add_tokens` (the `id` of each given token is ignored: a
    /// token already known keeps its id, others get the next free id). Returns how many were added.
    @discardableResult
    public func addTokens(_ new: [AddedToken]) throws -> Int {
        guard sentencePiece == nil else { throw TokenizerError.io("cannot add tokens to a SentencePiece model") }
        let vs = model.vocabSize
        var next = addedVocabulary.tokens.map { $0.id }.max().map { ($0 >= vs || vs == 0) ? $0 + 1 : vs } ?? vs
        var list = addedVocabulary.tokens
        var added = 0
        for t0 in new where !t0.content.isEmpty {
            var t = t0
            if let i = list.firstIndex(where: { VocabKey($0.content) == VocabKey(t.content) }) {
                t.id = list[i].id
                if list[i] == t { continue }
            } else if let id = model.tokenToId(t.content) {
                t.id = id
            } else {
                t.id = next; next += 1
            }
            if let i = list.firstIndex(where: { $0.id == t.id }) { list[i] = t } else { list.append(t) }
            added += 1
        }
        addedVocabulary.tokens = list
        try addedVocabulary.refresh(normalizer: normalizer)
        if case var .object(o)? = json {
            o.set("added_tokens", .array(addedTokens.map { $0.toJSON() }))
            json = .object(o)
        }
        return added
    }

    /// Registers special tokens (special, not normalized, no stripping), like `add_special_tokens`.
    @discardableResult
    public func addSpecialTokens(_ contents: [String]) throws -> Int {
        try addTokens(contents.map { AddedToken(content: $0, id: 0, special: true) })
    }

    // MARK: Encoding

    /// Encodes one sequence without post-processing.
    func encodeSequence(_ text: String, typeId: Int) throws -> Encoding {
        let scalars = Array(text.unicodeScalars)
        var pre = try addedVocabulary.extractAndNormalize(scalars, normalizer: normalizer)
        try preTokenizer?.preTokenize(&pre)
        var enc = Encoding()
        enc.reserve(pre.splits.count + pre.splits.count / 4 + 4)  // most words are one or two tokens
        for (w, split) in pre.splits.enumerated() {
            let n = split.normalized
            let toks = try split.tokens ?? model.tokenize(n.scalars[...])
            for t in toks {
                let (a, b) = n.originalRange(t.start..<t.end)
                enc.append(id: t.id, token: t.value, typeId: typeId, offset: (a, b), special: false, word: w)
            }
        }
        return enc
    }

    /// Encodes a text (and optionally a pair), with special tokens, truncation and padding as configured.
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true) throws -> Encoding {
        try encode(text, pair: pair, addSpecialTokens: addSpecialTokens, truncation: truncation, padding: padding)
    }

    /// Encodes a text as a model's input: special tokens as the post-processor adds them, and none of this
    /// tokenizer's own `truncation` and `padding` (a tokenizer.json may declare fixed padding to 128, which would
    /// make pad tokens content). With `maxLength`, the result is cut to at most that many tokens, special tokens
    /// included, by shortening the content, as Python's `tokenizer(text, truncation=True, max_length=N)` does.
    /// Batches are padded by their collator, with attention mask 0 on the padding.
    public func encodeUnpadded(_ text: String, addSpecialTokens: Bool = true, maxLength: Int? = nil) throws -> Encoding {
        var e = try encode(text, pair: nil, addSpecialTokens: addSpecialTokens,
                           truncation: maxLength.map { TruncationParams(maxLength: max(0, $0)) }, padding: nil)
        // Only when the special tokens alone are more than maxLength.
        if let m = maxLength, e.ids.count > m { e.truncate(maxLength: max(0, m), stride: 0, direction: .right) }
        return e
    }

    func encode(_ text: String, pair: String?, addSpecialTokens: Bool, truncation: TruncationParams?,
                padding: PaddingParams?) throws -> Encoding {
        var a: Encoding, b: Encoding?
        if let sp = sentencePiece {
            // SentencePiece adds no special tokens; truncation and padding still apply.
            a = sp.encodeToEncoding(text, typeId: 0)
            b = pair.map { sp.encodeToEncoding($0, typeId: 1) }
        } else {
            a = try encodeSequence(text, typeId: 0)
            b = try pair.map { try encodeSequence($0, typeId: 1) }
        }
        return try postProcess(&a, &b, addSpecialTokens: addSpecialTokens, truncation: truncation, padding: padding)
    }

    /// Encodes raw UTF-8 bytes; invalid sequences become U+FFFD like Python's
    /// `bytes.decode("utf-8", errors="replace")` (the library itself only accepts `str`).
    public func encode(utf8 bytes: [UInt8], pair: [UInt8]? = nil, addSpecialTokens: Bool = true) throws -> Encoding {
        try encode(decodeUTF8Lossy(bytes), pair: pair.map(decodeUTF8Lossy), addSpecialTokens: addSpecialTokens)
    }

    func postProcess(_ a: inout Encoding, _ b: inout Encoding?, addSpecialTokens: Bool, truncation: TruncationParams?,
                     padding: PaddingParams?) throws -> Encoding {
        if var t = truncation {
            let added = postProcessor?.addedTokens(isPair: b != nil) ?? 0
            if addSpecialTokens && added > 0 { t.maxLength = max(0, t.maxLength - added) }
            try truncateEncodings(&a, &b, t)
        }
        var encs = [a] + (b.map { [$0] } ?? [])
        if let p = postProcessor { encs = try p.processEncodings(encs, addSpecialTokens: addSpecialTokens) }
        var merged: Encoding
        if encs.count == 1 {
            merged = encs.removeLast()  // moved out, so later padding mutates it in place
        } else {
            merged = encs.first ?? Encoding()
            let overflowA = merged.overflowing
            for o in encs.dropFirst() { merged.append(o) }
            merged.overflowing = overflowA
        }
        if let p = padding {
            var arr = [merged]
            padEncodings(&arr, p)
            merged = arr[0]
        }
        return merged
    }

    /// Encodes a batch of texts, padding them together when padding is configured. The texts are
    /// spread over the cores unless `parallel` is false (then all work is done on the calling thread).
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, parallel: Bool = true) throws -> [Encoding] {
        var out = try concurrentMap(texts, parallel: parallel) { try self.encode($0, addSpecialTokens: addSpecialTokens) }
        if let p = padding { padEncodings(&out, p) }
        return out
    }

    /// Encodes a batch of pairs.
    public func encodeBatch(pairs: [(String, String)], addSpecialTokens: Bool = true, parallel: Bool = true) throws -> [Encoding] {
        var out = try concurrentMap(pairs, parallel: parallel) { try self.encode($0.0, pair: $0.1, addSpecialTokens: addSpecialTokens) }
        if let p = padding { padEncodings(&out, p) }
        return out
    }

    // MARK: Decoding

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) throws -> String {
        if let sp = sentencePiece { return sp.decode(ids) }
        var toks: [String] = []
        toks.reserveCapacity(ids.count)
        for id in ids {
            guard let t = addedVocabulary.decodeForm[id] ?? model.idToToken(id) else { continue }
            if skipSpecialTokens && addedVocabulary.specialContents.contains(VocabKey(t)) { continue }
            toks.append(t)
        }
        if let d = decoder { return try d.decode(toks) }
        return toks.joined(separator: " ")
    }
}

/// Maps in parallel over large inputs (order is kept); errors are rethrown.
func concurrentMap<T, R>(_ items: [T], parallel: Bool = true, _ f: (T) throws -> R) throws -> [R] {
    if items.count < 8 || !parallel { return try items.map(f) }
    // Unchecked: `f` (a tokenizer's encode) only reads state that nothing changes while the batch runs, and each
    // result slot is written by exactly one iteration, under the lock.
    nonisolated(unsafe) var results = [Result<R, Error>?](repeating: nil, count: items.count)
    nonisolated(unsafe) let items = items
    let lock = NSLock()
    withoutActuallyEscaping(f) { f in
        nonisolated(unsafe) let f = f
        DispatchQueue.concurrentPerform(iterations: items.count) { i in
            let r = Result { try f(items[i]) }
            lock.lock(); results[i] = r; lock.unlock()
        }
    }
    return try results.map { try $0!.get() }
}
