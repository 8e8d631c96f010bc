import Foundation
import JSON

/// ALBERT's tokenizer from a SentencePiece model and the files `save_pretrained` writes beside it
/// (tokenizer_config.json, special_tokens_map.json, added_tokens.json), when there is no tokenizer.json: the
/// pipeline the Python `transformers` library builds for it (`AutoTokenizer` converts the SentencePiece model to a
/// fast tokenizer): `` and '' become ", NFKD and accents stripped unless keep_accents, lowercased with do_lower_case,
/// the model's own normalization, runs of spaces made one; Metaspace pieces scored by the Unigram model (pieces
/// ending in a digit and a comma 100 lower); `[CLS] A [SEP]` (pairs `[CLS] A [SEP] B [SEP]`); the added tokens.
enum AlbertSentencePiece {
    /// The tokenizer_config.json classes this applies to.
    static let classes: Set<String> = ["AlbertTokenizer", "AlbertTokenizerFast"]

    /// The tokenizer.json document of `sp` with the settings of `folder`'s tokenizer_config.json.
    static func tokenizerJSON(_ sp: SentencePieceProcessor, folder: URL) throws -> JSONValue {
        let config = try SpecialTokens.readJSON(folder.appendingPathComponent(SpecialTokens.configFile))
        let map = try SpecialTokens.readJSON(folder.appendingPathComponent(SpecialTokens.mapFile))
        let lower = try config?.optional("do_lower_case")?.bool() ?? true
        let keepAccents = try config?.optional("keep_accents")?.bool() ?? false
        func replace(_ pattern: (String, String), _ content: String) -> JSONValue {
            .obj([("type", .string("Replace")), ("pattern", .obj([(pattern.0, .string(pattern.1))])), ("content", .string(content))])
        }
        var normalizers = [replace(("String", "``"), "\""), replace(("String", "''"), "\"")]
        if !keepAccents { normalizers += [.obj([("type", .string("NFKD"))]), .obj([("type", .string("StripAccents"))])] }
        if lower { normalizers.append(.obj([("type", .string("Lowercase"))])) }
        if !sp.proto.precompiledCharsmap.isEmpty {
            normalizers.append(.obj([("type", .string("Precompiled")),
                                     ("precompiled_charsmap", .string(Data(sp.proto.precompiledCharsmap).base64EncodedString()))]))
        }
        normalizers.append(replace(("Regex", " {2,}"), " "))

        let vocab: [JSONValue] = sp.proto.pieces.map { p in
            let s = Array(p.piece.unicodeScalars)
            let numberComma = s.count >= 2 && s[s.count - 1] == "," && s[s.count - 2].properties.numericType == .decimal
            return .array([.string(p.piece), .number(Double(numberComma ? p.score - 100 : p.score))])
        }
        let model = JSONValue.obj([("type", .string("Unigram")), ("unk_id", .number(Double(sp.unkId))), ("vocab", .array(vocab)),
                                   ("byte_fallback", .bool(false))])
        let metaspace = JSONValue.obj([("type", .string("Metaspace")), ("replacement", .string("\u{2581}")),
                                       ("prepend_scheme", .string("always")), ("split", .bool(true))])

        func id(_ token: String) throws -> Int {
            guard let i = sp.proto.pieces.firstIndex(where: { $0.piece == token }) else {
                throw TokenizerError.malformedModel("\(token) is not a piece of the SentencePiece model in \(folder.path), "
                                                    + "which ALBERT's template [CLS] A [SEP] needs")
            }
            return i
        }
        func special(_ name: String, typeId: Int) -> JSONValue {
            .obj([("SpecialToken", .obj([("id", .string(name)), ("type_id", .number(Double(typeId)))]))])
        }
        func sequence(_ name: String, typeId: Int) -> JSONValue {
            .obj([("Sequence", .obj([("id", .string(name)), ("type_id", .number(Double(typeId)))]))])
        }
        let (cls, sep) = (try id("[CLS]"), try id("[SEP]"))
        let post = JSONValue.obj([
            ("type", .string("TemplateProcessing")),
            ("single", .array([special("[CLS]", typeId: 0), sequence("A", typeId: 0), special("[SEP]", typeId: 0)])),
            ("pair", .array([special("[CLS]", typeId: 0), sequence("A", typeId: 0), special("[SEP]", typeId: 0),
                             sequence("B", typeId: 1), special("[SEP]", typeId: 1)])),
            ("special_tokens", .obj([("[CLS]", .obj([("id", .string("[CLS]")), ("ids", .array([.number(Double(cls))])),
                                                     ("tokens", .array([.string("[CLS]")]))])),
                                     ("[SEP]", .obj([("id", .string("[SEP]")), ("ids", .array([.number(Double(sep))])),
                                                     ("tokens", .array([.string("[SEP]")]))]))])),
        ])
        let added = try addedTokens(sp, config: config, map: map, folder: folder)
        return .obj([("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
                     ("normalizer", .obj([("type", .string("Sequence")), ("normalizers", .array(normalizers))])),
                     ("pre_tokenizer", metaspace), ("post_processor", post), ("decoder", metaspace), ("model", model)])
    }

    /// The added tokens, as the Python library registers them: tokenizer_config.json's "added_tokens_decoder" when it
    /// has one; else the special tokens the config and special_tokens_map.json name (not normalized; a plain-string
    /// mask token strips the space on its left, as ALBERT's tokenizer declares it), then added_tokens.json's
    /// (normalized, not special).
    static func addedTokens(_ sp: SentencePieceProcessor, config: JNode?, map: JNode?, folder: URL) throws -> [JSONValue] {
        func entry(id: Int, content: String, lstrip: Bool = false, rstrip: Bool = false, normalized: Bool,
                   singleWord: Bool = false, special: Bool) -> JSONValue {
            .obj([("id", .number(Double(id))), ("content", .string(content)), ("single_word", .bool(singleWord)),
                  ("lstrip", .bool(lstrip)), ("rstrip", .bool(rstrip)), ("normalized", .bool(normalized)), ("special", .bool(special))])
        }
        if let decoder = config?.optional("added_tokens_decoder") {
            return try decoder.object().map { key, token in
                guard let id = Int(key), id >= 0 else { throw token.invalid("the key \(key.debugDescription) is not a token id") }
                return entry(id: id, content: try token.string("content"), lstrip: try token.bool("lstrip", default: false),
                             rstrip: try token.bool("rstrip", default: false), normalized: try token.bool("normalized", default: false),
                             singleWord: try token.bool("single_word", default: false), special: try token.bool("special", default: true))
            }.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        }
        var out: [JSONValue] = [], seen = Set<String>()
        let next = sp.proto.pieces.count
        var extra: [(String, Int)] = []
        if let file = try SpecialTokens.readJSON(folder.appendingPathComponent("added_tokens.json")) {
            extra = try file.object().map { ($0.0, try $0.1.int()) }.sorted { $0.1 < $1.1 }
        }
        for role in SpecialTokens.Role.allCases {
            guard let value = map?.optional(role.key) ?? config?.optional(role.key) else { continue }
            if case .string = value.value {} else if !value.has("content") { continue }
            let content = value.has("content") ? try value.string("content") : try value.string()
            guard !seen.contains(content) else { continue }
            guard let id = sp.proto.pieces.firstIndex(where: { $0.piece == content }) ?? extra.first(where: { $0.0 == content })?.1 else {
                continue
            }
            seen.insert(content)
            let plain = !value.has("content")
            out.append(entry(id: id, content: content,
                             lstrip: plain ? role == .mask : try value.bool("lstrip", default: false),
                             rstrip: plain ? false : try value.bool("rstrip", default: false),
                             normalized: plain ? false : try value.bool("normalized", default: false),
                             singleWord: plain ? false : try value.bool("single_word", default: false), special: true))
        }
        for (content, id) in extra where !seen.contains(content) {
            guard id >= next || sp.proto.pieces[id].piece == content else {
                throw TokenizerError.invalidField(path: "$." + content, component: folder.appendingPathComponent("added_tokens.json").path,
                                                  reason: "id \(id) is the SentencePiece model's piece \(sp.proto.pieces[id].piece.debugDescription)")
            }
            out.append(entry(id: id, content: content, normalized: true, special: false))
        }
        return out.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
    }

    /// The tokenizer_config.json class in `folder`, if the file names one.
    static func tokenizerClass(in folder: URL) -> String? {
        guard let config = try? SpecialTokens.readJSON(folder.appendingPathComponent(SpecialTokens.configFile)),
              let name = config.optional("tokenizer_class"), case let .string(s) = name.value else { return nil }
        return s
    }
}

private extension JSONValue {
    /// The "id" of an added-token entry.
    var id: Int? {
        guard case let .object(o) = self, let pair = o.pairs.first(where: { $0.0 == "id" }), case let .number(d) = pair.1 else { return nil }
        return Int(d)
    }
}
