import ArgumentParser
import Foundation
import Tokenizers

/// `albertmoe tokenize`: one JSON array of ids per input line.
public struct Tokenize: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Print the token ids of each input line as a JSON array.")

    @Option(help: "A tokenizer.json, a SentencePiece .model, or a model directory holding either.")
    var tokenizer: String
    @Option(help: "Read lines from this file instead of standard input.") var input: String?
    @Flag(help: "Each line is a tab-separated pair of texts.") var pair = false
    @Flag(name: .customLong("no_special_tokens"), help: "Leave out the special tokens of the post-processor.")
    var noSpecialTokens = false

    public func run() throws {
        let tok: Tokenizer
        do { tok = try Tokenizer.load(from: URL(fileURLWithPath: tokenizer)) } catch {
            throw ValidationError("cannot load tokenizer \(tokenizer): \(error)")
        }
        let data = try readInput(input)
        // Lines as raw bytes, so invalid UTF-8 is handled the way the Python library handles it.
        var lines = [UInt8](data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { Array($0) }
        if lines.last?.isEmpty == true { lines.removeLast() }
        var out = ""
        for (n, raw) in lines.enumerated() {
            let line = raw.last == UInt8(ascii: "\r") ? Array(raw.dropLast()) : raw
            let encoding: Encoding
            if pair {
                guard let tab = line.firstIndex(of: UInt8(ascii: "\t")) else {
                    throw ValidationError("line \(n + 1) has no tab: --pair expects two texts separated by a tab")
                }
                encoding = try tok.encode(utf8: Array(line[..<tab]), pair: Array(line[(tab + 1)...]),
                                          addSpecialTokens: !noSpecialTokens)
            } else {
                encoding = try tok.encode(utf8: line, addSpecialTokens: !noSpecialTokens)
            }
            out += "[" + encoding.ids.map(String.init).joined(separator: ", ") + "]\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// `albertmoe train-tokenizer`: trains a tokenizer on text files and writes it, with the roles of its special
/// tokens, into a directory.
public struct TrainTokenizer: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "train-tokenizer", abstract: "Train a BPE, WordPiece or Unigram tokenizer on text files.")

    enum Kind: String, ExpressibleByArgument, CaseIterable { case bpe, wordpiece, unigram }

    @Option(help: "bpe (byte-level), wordpiece or unigram.") var model: Kind
    @Option(name: .customLong("vocab_size"), help: ArgumentHelp("The vocabulary size to reach: more than the special tokens, at most "
                                                                      + "\(TrainerOptions.maxVocabSize).")) var vocabSize: Int
    @Option(name: .customLong("min_frequency"), help: "Pairs or words seen fewer times are left out.") var minFrequency = 2
    @Option(name: .customLong("special_tokens"), parsing: .upToNextOption,
            help: "Special tokens, first ids (default: the usual ones of --model, with their roles).")
    var specialTokens: [String] = []
    @Option(name: .customLong("roles"), parsing: .upToNextOption,
            help: "Roles of special tokens as ROLE=TOKEN, ROLE one of bos, eos, unk, sep, pad, cls, mask.")
    var roles: [String] = []
    @Option(help: "The directory to write tokenizer.json, tokenizer_config.json and special_tokens_map.json into.")
    var output: String
    @Argument(help: "Text files to train on.") var files: [String]

    public func validate() throws {
        do { try trainerOptions.validate() } catch { throw ValidationError("--vocab_size: \(error)") }
        guard minFrequency >= 0 else { throw ValidationError("--min_frequency must not be negative") }
        guard !files.isEmpty else { throw ValidationError("give at least one text file to train on") }
        for f in files where !FileManager.default.isReadableFile(atPath: f) {
            throw ValidationError("cannot read training file \(f)")
        }
        _ = try namedRoles()
    }

    /// The trainers' options these flags give.
    private var trainerOptions: TrainerOptions {
        TrainerOptions(vocabSize: vocabSize, minFrequency: minFrequency,
                       specialTokens: specialTokens.isEmpty ? defaultSpecialTokens.map(\.1) : specialTokens)
    }

    public func run() throws {
        let defaults = specialTokens.isEmpty ? defaultSpecialTokens : []
        let options = trainerOptions
        let urls = files.map { URL(fileURLWithPath: $0) }
        let tok: Tokenizer
        switch model {
        case .bpe: tok = try ByteLevelBPETrainer(options: options).train(files: urls)
        case .wordpiece: tok = try WordPieceTrainer(options: options).train(files: urls)
        case .unigram: tok = try UnigramTrainer(options: options).train(files: urls)
        }
        do { try tok.declareSpecialTokens(Dictionary(uniqueKeysWithValues: defaults).merging(try namedRoles()) { _, named in named }) } catch {
            throw ValidationError("--roles: \(error)")
        }
        try tok.saveFiles(to: URL(fileURLWithPath: output))
        print("wrote \(output): \(tok.vocabSize) tokens")
    }

    /// The --roles, by role.
    private func namedRoles() throws -> [SpecialTokens.Role: String] {
        try Dictionary(roles.map { item in
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let role = SpecialTokens.Role(rawValue: parts[0]), !parts[1].isEmpty else {
                throw ValidationError("--roles \(item): expected ROLE=TOKEN, ROLE one of "
                                      + SpecialTokens.Role.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return (role, parts[1])
        }) { _, last in last }
    }

    /// The usual special tokens of each kind of model, in id order, with their roles.
    private var defaultSpecialTokens: [(SpecialTokens.Role, String)] {
        switch model {
        case .bpe: return [(.bos, "<s>"), (.pad, "<pad>"), (.eos, "</s>"), (.unk, "<unk>"), (.mask, "<mask>")]
        case .wordpiece: return [(.pad, "[PAD]"), (.unk, "[UNK]"), (.cls, "[CLS]"), (.sep, "[SEP]"), (.mask, "[MASK]")]
        case .unigram: return [(.pad, "<pad>"), (.unk, "<unk>"), (.cls, "[CLS]"), (.sep, "[SEP]"), (.mask, "[MASK]")]
        }
    }
}

/// The bytes of the --input file, or of standard input when there is none.
func readInput(_ path: String?) throws -> Data {
    guard let path else { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read --input \(path)") }
    return data
}
