import Foundation
import JSON

/// The tokens that play a part for a model (beginning and end of text, unknown, separator, padding, classifier,
/// mask), as the tokenizer's own files name them: tokenizer.json's declarations (the model's unknown token, a
/// BERT-shaped post-processor's classifier and separator) or a SentencePiece model's ids, then tokenizer_config.json
/// and special_tokens_map.json beside it. A role that no file names has no token; nothing is guessed from names.
public struct SpecialTokens {
    public enum Role: String, CaseIterable, Sendable {
        case bos, eos, unk, sep, pad, cls, mask
        /// Its key in tokenizer_config.json and special_tokens_map.json: "bos_token", ...
        public var key: String { rawValue + "_token" }
    }

    public struct Token: Equatable, Sendable {
        public var id: Int
        public var content: String
        public init(id: Int, content: String) { self.id = id; self.content = content }
    }

    /// The token of each role that has one.
    public var byRole: [Role: Token] = [:]
    /// The files the roles were read from (none for a tokenizer made in memory), for messages about a missing role.
    public internal(set) var files: [String] = []

    public init() {}

    public subscript(role: Role) -> Token? {
        get { byRole[role] }
        set { byRole[role] = newValue }
    }

    public var bos: Token? { byRole[.bos] }
    public var eos: Token? { byRole[.eos] }
    public var unk: Token? { byRole[.unk] }
    public var sep: Token? { byRole[.sep] }
    public var pad: Token? { byRole[.pad] }
    public var cls: Token? { byRole[.cls] }
    public var mask: Token? { byRole[.mask] }

    /// Says that `role` has no token and where it was looked for.
    public func missing(_ role: Role) -> String {
        files.isEmpty ? "the tokenizer names no \(role.key) (it was not read from files)"
            : "no \(role.key) is named in \(files.joined(separator: ", "))"
    }

    // MARK: Reading

    /// The roles a tokenizer.json declares by itself: the model's unknown token, and the classifier and separator of
    /// a BertProcessing or RobertaProcessing post-processor or of a template "X $A Y" (also inside a Sequence).
    init(declaredBy tokenizer: Tokenizer) {
        let model = tokenizer.model
        let unk = (model as? WordPieceModel)?.unkToken ?? (model as? WordLevelModel)?.unkToken
            ?? (model as? BPEModel)?.unkToken ?? (model as? UnigramModel)?.unkId.flatMap(model.idToToken)
        if let unk, let id = tokenizer.tokenToId(unk) { byRole[.unk] = Token(id: id, content: unk) }
        func separators(_ p: PostProcessor) -> [Role: Token] {
            switch p {
            case let b as BertProcessing: return [.cls: Token(id: b.cls.1, content: b.cls.0), .sep: Token(id: b.sep.1, content: b.sep.0)]
            case let r as RobertaProcessing: return [.cls: Token(id: r.cls.1, content: r.cls.0), .sep: Token(id: r.sep.1, content: r.sep.0)]
            case let t as TemplateProcessing:
                guard t.single.count == 3, case let .special(first, _) = t.single[0], case .sequence = t.single[1],
                      case let .special(last, _) = t.single[2], let cls = t.specials[first], let sep = t.specials[last],
                      cls.ids.count == 1, sep.ids.count == 1 else { return [:] }
                return [.cls: Token(id: cls.ids[0], content: cls.tokens[0]), .sep: Token(id: sep.ids[0], content: sep.tokens[0])]
            case let s as SequenceProcessing:
                return s.items.reduce(into: [:]) { roles, p in roles.merge(separators(p)) { a, _ in a } }
            default: return [:]
            }
        }
        if let post = tokenizer.postProcessor { byRole.merge(separators(post)) { a, _ in a } }
    }

    /// The roles of a SentencePiece model: its trainer's unk_id, bos_id, eos_id and pad_id (-1: none).
    init(sentencePiece sp: SentencePieceProcessor) {
        for (role, id) in [(Role.unk, sp.unkId), (.bos, sp.bosId), (.eos, sp.eosId), (.pad, sp.padId)] {
            if let piece = sp.idToPiece(id) { byRole[role] = Token(id: id, content: piece) }
        }
    }

    /// Reads the roles that tokenizer_config.json and special_tokens_map.json in `folder` name (a string or an
    /// object with "content"; null names none), as the Python `transformers` library reads them: the config's, and
    /// the map's over them unless the config has "added_tokens_decoder" (then the map is not read).
    mutating func read(folder: URL, for tokenizer: Tokenizer) throws {
        let config = try Self.readJSON(folder.appendingPathComponent(SpecialTokens.configFile))
        let map = config?.has("added_tokens_decoder") == true ? nil
            : try Self.readJSON(folder.appendingPathComponent(SpecialTokens.mapFile))
        for (file, node) in [(SpecialTokens.configFile, config), (SpecialTokens.mapFile, map)] {
            guard let node else { continue }
            let path = folder.appendingPathComponent(file).path
            files.append(path)
            for role in Role.allCases {
                guard let value = node.optional(role.key) else { continue }
                let content = try value.has("content") ? value.string("content") : value.string()
                guard let id = tokenizer.tokenToId(content) else {
                    throw TokenizerError.invalidField(path: value.path, component: path,
                                                      reason: "\(content.debugDescription) is not a token of the tokenizer")
                }
                byRole[role] = Token(id: id, content: content)
            }
        }
    }

    static let configFile = "tokenizer_config.json", mapFile = "special_tokens_map.json"

    /// The JSON object in `url`, or nil when there is no such file.
    static func readJSON(_ url: URL) throws -> JNode? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            let node = JNode(try JSONValue.parse(try Data(contentsOf: url)), component: url.lastPathComponent)
            guard case .object = node.value else { throw node.invalid("expected a JSON object") }
            return node
        } catch {
            throw TokenizerError.io("\(url.path): \(error)")
        }
    }

    // MARK: Writing

    /// Writes tokenizer_config.json and special_tokens_map.json naming the roles into `folder`; the config names
    /// `tokenizerClass` too, so that the Python library loads the tokenizer with these roles and no defaults of its own.
    func write(to folder: URL, tokenizerClass: String?) throws {
        let roles = Role.allCases.compactMap { role in byRole[role].map { (role.key, JSONValue.string($0.content)) } }
        let config = roles + (tokenizerClass.map { [("tokenizer_class", .string($0))] } ?? [])
        for (file, pairs) in [(SpecialTokens.configFile, config), (SpecialTokens.mapFile, roles)] {
            let url = folder.appendingPathComponent(file)
            do { try Data(JSONValue.obj(pairs).serialized(indent: 2).utf8).write(to: url, options: .atomic) } catch {
                throw TokenizerError.io("cannot write \(url.path)")
            }
        }
    }
}

extension Tokenizer {
    /// Gives roles to tokens of this tokenizer, by content, as a tokenizer_config.json would; other roles stay.
    public func declareSpecialTokens(_ roles: [SpecialTokens.Role: String]) throws {
        let tokens = try roles.mapValues { content in
            guard let id = tokenToId(content) else {
                let role = roles.first { $0.value == content }!.key
                throw TokenizerError.invalidField(path: "$." + role.key, component: "special tokens",
                                                  reason: "\(content.debugDescription) is not a token of the tokenizer")
            }
            return SpecialTokens.Token(id: id, content: content)
        }
        specialTokens.byRole.merge(tokens) { _, new in new }
    }

    /// The ids that are never content (the Python library's `all_special_ids`): the special added tokens and the
    /// tokens of the roles.
    public var specialTokenIDs: Set<Int> {
        Set(addedTokens.filter(\.special).map(\.id)).union(specialTokens.byRole.values.map(\.id))
    }

    /// Writes the tokenizer into `directory` (created if needed) as a model directory holds it: tokenizer.json (or
    /// the SentencePiece model as tokenizer.model), with tokenizer_config.json and special_tokens_map.json naming
    /// the roles. `Tokenizer.load(from:)` reads the same tokenizer and roles back.
    public func saveFiles(to directory: URL) throws {
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TokenizerError.io("cannot create \(directory.path)")
        }
        let (name, data) = try sentencePiece.map { ("tokenizer.model", Data($0.modelData)) }
            ?? ("tokenizer.json", Data(toJSONString().utf8))
        let url = directory.appendingPathComponent(name)
        do { try data.write(to: url, options: .atomic) } catch { throw TokenizerError.io("cannot write \(url.path)") }
        try specialTokens.write(to: directory, tokenizerClass: sentencePiece == nil ? "PreTrainedTokenizerFast" : nil)
    }
}
