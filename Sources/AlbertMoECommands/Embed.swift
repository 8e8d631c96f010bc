import AlbertMoE
import ArgumentParser
import Foundation

/// `albertmoe embed`: sentence embeddings of each input line, from any saved causal or masked model.
public struct Embed: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Write the sentence embedding (mean-pooled, L2-normalised) of each input line.")

    @Option(help: ArgumentHelp("A model directory written by train-clm or train-mlm, or by the Python package "
                + "(pytorch_model.bin and its tokenizer files, no config.json: the size flags give what its weights do not), "
                + "or a Hugging Face model name (from the cache, or downloaded into it)."))
    var model: String
    @Option(name: .customLong("hub_token"), help: "A Hugging Face token for private or gated models (default: HF_TOKEN).")
    var hubToken: String?
    @Option(help: "Read lines from this file instead of standard input.") var input: String?
    @Option(help: "Write here instead of standard output: one JSON array per line, or a .npy file [lines, hidden].")
    var output: String?
    @Option(name: .customLong("batch_size"), help: "Sentences per forward pass.") var batchSize: Int = 32
    @Option(name: .customLong("max_length"), help: "Longer texts are cut to this many tokens.") var maxLength: Int = 128
    @OptionGroup(title: "Model") var sizes: ModelArguments

    public func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch_size must be at least 1, got \(batchSize)") }
        guard maxLength >= 1 else { throw ValidationError("--max_length must be at least 1, got \(maxLength)") }
    }

    public func run() throws {
        let encoder: SentenceAlbert
        let directory = try HubNames(token: hubToken).modelDirectory(model, flag: "model")
        do {
            let workload = ModelWorkload.inference(batchSize: batchSize, sequenceLength: maxLength, logits: false)
            encoder = try SentenceAlbert.load(from: directory, options: sizes.loadOptions(for: workload)) { notice in
                FileHandle.standardError.write(Data((notice + "\n").utf8))
            }
        } catch {
            throw ValidationError("--model \(model): \(error)")
        }
        guard encoder.tokenizer != nil else {
            throw ValidationError("--model \(model) holds no tokenizer.json or SentencePiece model to encode text with")
        }
        encoder.maxSequenceLength = maxLength
        let data = try readInput(input)
        guard let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("\(input ?? "standard input") is not valid UTF-8")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        if lines.last == "" { lines.removeLast() }
        let embeddings = try encoder.encode(lines, batchSize: batchSize)
        // JSON has no NaN or infinity, and such an embedding is no answer in either format.
        if let line = embeddings.firstIndex(where: { $0.contains { !$0.isFinite } }) {
            throw ValidationError("the embedding of input line \(line + 1) holds \(embeddings[line].first { !$0.isFinite }!): "
                                  + "the model computes no numbers for it")
        }
        let out: Data
        if let output, output.hasSuffix(".npy") {
            out = NumPy.float32Array(embeddings.flatMap { $0 }, shape: [embeddings.count, encoder.config.hiddenSize])
        } else {
            out = Data(embeddings.map { "[" + $0.map { "\($0)" }.joined(separator: ", ") + "]\n" }.joined().utf8)
        }
        if let output {
            do { try out.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
                throw ValidationError("cannot write --output \(output): \(error.localizedDescription)")
            }
        } else {
            FileHandle.standardOutput.write(out)
        }
    }
}

/// The .npy format (version 1.0): a magic string, a header dictionary padded to 64 bytes, then the raw data.
enum NumPy {
    static func float32Array(_ values: [Float], shape: [Int]) -> Data {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(header.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(header.utf8))
        values.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!)
            .assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        return data
    }
}
