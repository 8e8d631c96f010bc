import AlbertMoE
import AlbertMoECommands
import Foundation
import Tokenizers
import XCTest

/// Sizes no real model has, jobs that cannot fit in memory, weights that are no numbers and token ids beyond the
/// vocabulary, given to the built commands: each stops at once with an error naming what is wrong.
final class BoundsCommandTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-bounds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// Runs a command and checks that it failed (an error, not a crash) within a few seconds, naming `names`.
    func expectFailure(_ executable: String, _ args: [String], naming names: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let start = Date()
        let r = try runCommand(executable, args)
        XCTAssertTrue(r.status == 1 || r.status == 64, "status \(r.status): \(r.stderr)", file: file, line: line)
        for name in names { XCTAssertTrue(r.stderr.contains(name), "no \(name) in: \(r.stderr)", file: file, line: line) }
        XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr, file: file, line: line)
        XCTAssertLessThan(Date().timeIntervalSince(start), 20, file: file, line: line)
    }

    func testSizeFlagsNoModelHasStopNamingTheFlag() throws {
        let dir = try temporaryDirectory()
        let corpus = dir.appendingPathComponent("corpus.txt")
        try Data("the cat sat on the mat\nthe dog sat on the rug\n".utf8).write(to: corpus)
        let common = ["--mode", "pretrain", "--dataset", corpus.path, "--model_path", dir.appendingPathComponent("m").path,
                      "--max_length", "32", "--max_position_embeddings", "64"]
        for (flag, value) in [("hidden_size", "1000000000"), ("vocab_size", "1000000000"), ("embedding_size", "1000000000"),
                              ("intermediate_size", "1000000000"), ("hidden_size", "4611686018427387904"),
                              ("num_experts", "1000000"), ("num_hidden_layers", "1000000")] {
            try expectFailure("train-clm", common + ["--\(flag)", value], naming: ["--\(flag)", value])
        }
        // Sizes a real model may have, but not all at once on this machine: the estimate names the field.
        try expectFailure("train-mlm", common + ["--num_experts", "4096", "--intermediate_size", "262144"],
                          naming: ["num_experts", "estimated", "available"])
        try expectFailure("albertmoe", ["embed", "--model", dir.path, "--num_hidden_layers", "1000000"],
                          naming: ["--num_hidden_layers", "1000000"])
    }

    func testConfigJSONSizesNoModelHasStopEveryCommandNamingTheField() throws {
        for (command, field, value) in [(["albertmoe", "embed"], "hidden_size", "1000000000"),
                                        (["albertmoe", "serve"], "num_hidden_layers", "1000000"),
                                        (["albertmoe", "convert", "--to", "pytorch"], "type_vocab_size", "1000000000"),
                                        (["train-clm", "--mode", "serve", "--input_text", "hi"], "num_experts", "1000000"),
                                        (["train-mlm", "--mode", "evaluate"], "vocab_size", "1000000000")] {
            let dir = try temporaryDirectory()
            try Data("{\"\(field)\": \(value), \"architectures\": [\"AlbertForCausalLM\"]}".utf8)
                .write(to: dir.appendingPathComponent("config.json"))
            // Tokenizer files, so that the commands reach the model.
            let tokenizer = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 270, minFrequency: 1, specialTokens: ["<pad>"]))
                .train(texts: ["the cat sat"])
            try tokenizer.saveFiles(to: dir)
            let place = command[0] == "albertmoe" ? ["--model", dir.path] : ["--model_path", dir.path, "--validation_file",
                                                                              dir.appendingPathComponent("tokenizer.json").path]
            try expectFailure(command[0], Array(command.dropFirst()) + place, naming: [field, value])
        }
    }

    /// A tiny causal model with a byte-level tokenizer, saved to `dir`; `change` may alter the model before it is saved.
    func tinyModel(in dir: URL, vocabSize: Int? = nil, change: (AlbertForCausalLM) -> Void = { _ in }) throws {
        let texts = ["the cat sat on the mat", "the dog sat on the rug"]
        let tokenizer = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 300, minFrequency: 1, specialTokens: ["<pad>"]))
            .train(texts: texts)
        try tokenizer.declareSpecialTokens([.pad: "<pad>"])
        let config = AlbertMoEConfig(vocabSize: vocabSize ?? tokenizer.vocabSize, embeddingSize: 8, hiddenSize: 16,
                                     numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 64,
                                     numExperts: 2, topKExperts: 1)
        let model = AlbertForCausalLM(config, seed: 2)
        change(model)
        try model.save(to: dir)
        try tokenizer.saveFiles(to: dir)
        try Data((texts.joined(separator: "\n") + "\n").utf8).write(to: dir.appendingPathComponent("lines.txt"))
    }

    func testEmbedOfTokenIDsBeyondTheVocabularyIsAnError() throws {
        let dir = try temporaryDirectory()
        try tinyModel(in: dir, vocabSize: 50)   // the tokenizer's ids go up to ~300
        try expectFailure("albertmoe", ["embed", "--model", dir.path, "--input", dir.appendingPathComponent("lines.txt").path],
                          naming: ["outside the model's vocabulary", "[0, 50)"])
    }

    func testEmbedOfAModelWithNaNWeightsIsAnErrorNamingTheTensor() throws {
        let dir = try temporaryDirectory()
        try tinyModel(in: dir) { $0.albert.embeddings.embeddingHiddenMappingIn.weight.pointer[5] = .nan }
        let r = try runCommand("albertmoe", ["embed", "--model", dir.path, "--input", dir.appendingPathComponent("lines.txt").path])
        XCTAssertEqual(r.status, 64, r.stderr)
        XCTAssertTrue(r.stderr.contains("embeddings.embedding_hidden_mapping_in.weight") && r.stderr.contains("nan"), r.stderr)
        XCTAssertFalse(r.stdout.contains("nan"), r.stdout)
    }

    func testServeFlagsOfTheConnectionLimitsAreChecked() throws {
        for (flag, value) in [("header_timeout", "0"), ("body_timeout", "-1"), ("idle_timeout", "100000"), ("max_connections", "0")] {
            try expectFailure("albertmoe", ["serve", "--model", "any", "--\(flag)=\(value)"], naming: ["--\(flag)", value])
        }
    }

    func testTheOpenFileLimitIsRaisedToTheHardLimit() throws {
        var limit = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit), 0)
        let hard = limit.rlim_max
        limit.rlim_cur = min(256, hard)
        XCTAssertEqual(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit), 0)
        XCTAssertEqual(OpenFileLimit.raiseToHardLimit(), Int(clamping: hard))
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit), 0)
        XCTAssertEqual(limit.rlim_cur, hard)
    }
}
