import AlbertMoE
@testable import AlbertMoEServer
import Foundation
import Tokenizers
import XCTest

/// A causal model with a WordPiece tokenizer ends a completion where its tokenizer's files say text ends, the same
/// way in `generate`, over HTTP and in `--mode serve`: at [SEP] when tokenizer_config.json names it the eos token,
/// never when no file names an eos token.
final class EndOfTextTests: XCTestCase {
    /// `train-clm --mode serve` on `directory`, sampling as the other paths do; its standard output.
    func serve(_ directory: URL, prompt: String, totalTokens: Int, seed: UInt64) throws -> String {
        let process = Process()
        process.executableURL = Bundle.main.bundleURL.appendingPathComponent("train-clm")
        process.arguments = ["--mode", "serve", "--model_path", directory.path, "--input_text", prompt,
                             "--gen_max_length", String(totalTokens), "--temperature", "1", "--top_k", "0", "--top_p", "1",
                             "--seed", String(seed)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: out, as: UTF8.self)
    }

    func testWordPieceCausalModelStopsAtItsEosEverywhere() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-eos-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let texts = ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog met in the tall grass",
                     "the bird sang a long song in the tree", "dogs and cats"]
        let tokenizer = try WordPieceTrainer(options: TrainerOptions(
            vocabSize: 60, minFrequency: 1, specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])).train(texts: texts)
        let model = AlbertForCausalLM(ServerFixture.config(vocabSize: tokenizer.vocabSize), seed: 11)
        // The same model twice: with [SEP] named the eos token, and with no eos token named.
        let withEos = root.appendingPathComponent("eos"), withoutEos = root.appendingPathComponent("no-eos")
        try model.save(to: withoutEos)
        try tokenizer.saveFiles(to: withoutEos)
        try tokenizer.declareSpecialTokens([.eos: "[SEP]"])
        try model.save(to: withEos)
        try tokenizer.saveFiles(to: withEos)
        let sep = Int32(try XCTUnwrap(tokenizer.tokenToId("[SEP]")))

        let servers = try [withEos, withoutEos].map { try InferenceServer(modelDirectory: $0, configuration: ServerConfiguration(port: 0)) }
        let ports = try blocking { [try await servers[0].start(), try await servers[1].start()] }
        defer { try? blocking { for server in servers { await server.stop() } } }

        let prompt = "the cat sat", newTokens = 16
        let loaded = try AlbertForCausalLM.load(from: withEos)
        let ids = try tokenizer.encodeUnpadded(prompt, addSpecialTokens: false).ids.map(Int32.init)
        var stoppedInside = 0, neverStopped = 0
        for seed in UInt64(0) ..< 200 where stoppedInside < 3 || neverStopped < 1 {
            var options = SamplingOptions(maxNewTokens: newTokens, temperature: 1, topK: 0, topP: 1, seed: seed)
            let free = try loaded.generate(ids, options: options)
            let stop = free.firstIndex(of: sep)
            // Seeds whose run holds [SEP] with words after it, and seeds whose run has none.
            if let stop, stop + 2 < free.count, stoppedInside < 3 { stoppedInside += 1 } else if stop == nil, neverStopped < 1 {
                neverStopped += 1
            } else { continue }
            for (directory, port) in zip([withEos, withoutEos], ports) {
                let reloaded = try Tokenizer.load(from: directory)
                options.stopTokens = reloaded.specialTokens.eos.map { [Int32($0.id)] } ?? []
                let stops = directory == withEos && stop != nil
                let made = try loaded.generate(ids, options: options)
                XCTAssertEqual(made, stops ? Array(free[...stop!]) : free, "generate, seed \(seed)")
                let content = made.filter { $0 != sep || !stops }.map(Int.init)

                let body = #"{"prompt": "\#(prompt)", "max_tokens": \#(newTokens), "temperature": 1, "top_k": 0, "seed": \#(seed)}"#
                let answer = try RawHTTPClient.post(port: port, "/v1/completions", body).json()
                let choice = try XCTUnwrap((answer["choices"] as? [[String: Any]])?.first)
                XCTAssertEqual(choice["finish_reason"] as? String, stops ? "stop" : "length", "HTTP, seed \(seed)")
                XCTAssertEqual(choice["text"] as? String, try tokenizer.decode(content), "HTTP, seed \(seed)")
                XCTAssertEqual((answer["usage"] as? [String: Int])?["completion_tokens"], made.count, "HTTP, seed \(seed)")

                let served = try serve(directory, prompt: prompt, totalTokens: ids.count + newTokens, seed: seed)
                XCTAssertEqual(served, try tokenizer.decode(ids.map(Int.init) + content) + "\n", "--mode serve, seed \(seed)")
            }
        }
        XCTAssertEqual([stoppedInside, neverStopped], [3, 1], "the seeds searched give both kinds of run")
    }
}
