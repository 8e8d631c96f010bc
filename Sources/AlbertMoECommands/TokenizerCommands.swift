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

/// `albertmoe train-tokenizer`: trains a tokenizer on text files and writes its tokenizer.json.
public struct TrainTokenizer: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "train-tokenizer", abstract: "Train a BPE, WordPiece or Unigram tokenizer on text files.")

    enum Kind: String, ExpressibleByArgument, CaseIterable { case bpe, wordpiece, unigram }

    @Option(help: "bpe (byte-level), wordpiece or unigram.") var model: Kind
    @Option(name: .customLong("vocab_size"), help: "The vocabulary size to reach.") var vocabSize: Int
    @Option(name: .customLong("min_frequency"), help: "Pairs or words seen fewer times are left out.") var minFrequency = 2
    @Option(name: .customLong("special_tokens"), parsing: .upToNextOption, help: "Special tokens, first ids.")
    var specialTokens: [String] = []
    @Option(help: "Where to write tokenizer.json.") var output: String
    @Argument(help: "Text files to train on.") var files: [String]

    public func validate() throws {
        guard vocabSize > 0 else { throw ValidationError("--vocab_size must be positive, got \(vocabSize)") }
        guard minFrequency >= 0 else { throw ValidationError("--min_frequency must not be negative") }
        guard !files.isEmpty else { throw ValidationError("give at least one text file to train on") }
        for f in files where !FileManager.default.isReadableFile(atPath: f) {
            throw ValidationError("cannot read training file \(f)")
        }
    }

    public func run() throws {
        let special = specialTokens.isEmpty ? defaultSpecialTokens : specialTokens
        let options = TrainerOptions(vocabSize: vocabSize, minFrequency: minFrequency, specialTokens: special)
        let urls = files.map { URL(fileURLWithPath: $0) }
        let tok: Tokenizer
        switch model {
        case .bpe: tok = try ByteLevelBPETrainer(options: options).train(files: urls)
        case .wordpiece: tok = try WordPieceTrainer(options: options).train(files: urls)
        case .unigram: tok = try UnigramTrainer(options: options).train(files: urls)
        }
        try tok.save(to: URL(fileURLWithPath: output))
        print("wrote \(output): \(tok.vocabSize) tokens")
    }

    private var defaultSpecialTokens: [String] {
        switch model {
        case .bpe: return ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        case .wordpiece: return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        case .unigram: return ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
        }
    }
}

/// The bytes of the --input file, or of standard input when there is none.
func readInput(_ path: String?) throws -> Data {
    guard let path else { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read --input \(path)") }
    return data
}
