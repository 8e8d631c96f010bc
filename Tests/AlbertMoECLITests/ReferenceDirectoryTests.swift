import Foundation
import XCTest

/// The commands on model directories the reference Python package wrote (pytorch_model.bin and its tokenizer files,
/// no config.json; Tests/AlbertMoETests/Fixtures/reference_models), with the size flags it was trained with.
extension TrainCommandTests {
    static let referenceModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AlbertMoETests/Fixtures/reference_models")
    /// The flags the weights do not determine (the fixtures' num_hidden_layers; top_k_experts is the default).
    static let referenceSizes = ["--num_hidden_layers", "2"]

    struct ReferenceExpected: Decodable {
        struct Embeddings: Decodable { let texts: [String]; let vectors: [[Float]] }
        struct Continuation: Decodable { let prompt: String; let text: String }
        struct Greedy: Decodable { let gen_max_length: Int; let continuations: [Continuation] }
        let embeddings: Embeddings
        let greedy: Greedy
    }

    func referenceExpected() throws -> ReferenceExpected {
        try JSONDecoder().decode(ReferenceExpected.self,
                                 from: Data(contentsOf: Self.referenceModels.appendingPathComponent("expected.json")))
    }

    /// A copy of the reference's masked or causal directory (the causal one shares the masked one's tokenizer files).
    func referenceDirectory(_ name: String, in dir: URL) throws -> URL {
        let fm = FileManager.default
        let copy = dir.appendingPathComponent(name)
        try fm.copyItem(at: Self.referenceModels.appendingPathComponent(name), to: copy)
        let mlm = Self.referenceModels.appendingPathComponent("mlm")
        for file in try fm.contentsOfDirectory(atPath: mlm.path) where !fm.fileExists(atPath: copy.appendingPathComponent(file).path) {
            try fm.copyItem(at: mlm.appendingPathComponent(file), to: copy.appendingPathComponent(file))
        }
        return copy
    }

    func testReferenceCausalModelServesItsGreedyContinuation() throws {
        let dir = try temporaryDirectory()
        let model = try referenceDirectory("clm", in: dir)
        let e = try referenceExpected()
        for c in e.greedy.continuations {
            let r = try run("train-clm", ["--mode", "serve", "--model_path", model.path, "--input_text", c.prompt, "--temperature", "0",
                                          "--gen_max_length", "\(e.greedy.gen_max_length)", "--attention", "bidirectional"]
                            + Self.referenceSizes)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), c.text, c.prompt)
            XCTAssertTrue(r.stderr.contains("without its causal mask"), r.stderr)
        }
        // Without the flag it runs as this package's causal model, and says how to run it as it was trained.
        let masked = try run("train-clm", ["--mode", "serve", "--model_path", model.path, "--input_text", "after monday comes",
                                           "--temperature", "0", "--gen_max_length", "12"] + Self.referenceSizes)
        XCTAssertEqual(masked.status, 0, masked.stderr)
        XCTAssertTrue(masked.stderr.contains("--attention bidirectional"), masked.stderr)
        XCTAssertTrue(masked.stderr.contains("torchtune"), masked.stderr)

        let texts = dir.appendingPathComponent("texts.txt")
        try Data(e.greedy.continuations.map { $0.prompt + "\n" }.joined().utf8).write(to: texts)
        let evaluate = try run("train-clm", ["--mode", "evaluate", "--model_path", model.path, "--validation_file", texts.path,
                                             "--max_length", "32", "--attention", "bidirectional"] + Self.referenceSizes)
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        XCTAssertTrue(evaluate.stderr.contains("perplexity") || evaluate.stdout.contains("perplexity"), evaluate.stderr)
    }

    func testReferenceMaskedModelInEveryCommand() throws {
        let dir = try temporaryDirectory()
        let model = try referenceDirectory("mlm", in: dir)
        let e = try referenceExpected()
        let serve = try run("train-mlm", ["--mode", "serve", "--model_path", model.path,
                                          "--input_text", "the favourite colour of alice is [MASK] ."] + Self.referenceSizes)
        XCTAssertEqual(serve.status, 0, serve.stderr)
        XCTAssertTrue(serve.stdout.contains("Mask #1 (position 17)"), serve.stdout)

        let texts = dir.appendingPathComponent("texts.txt")
        try Data((e.embeddings.texts.joined(separator: "\n") + "\n").utf8).write(to: texts)
        let evaluate = try run("train-mlm", ["--mode", "evaluate", "--model_path", model.path, "--validation_file", texts.path,
                                             "--max_length", "32"] + Self.referenceSizes)
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent("eval_results.json").path))

        let output = dir.appendingPathComponent("embeddings.jsonl")
        let embed = try run("albertmoe", ["embed", "--model", model.path, "--input", texts.path, "--output", output.path,
                                          "--batch_size", "4"] + Self.referenceSizes)
        XCTAssertEqual(embed.status, 0, embed.stderr)
        let vectors = try String(decoding: Data(contentsOf: output), as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode([Float].self, from: Data($0.utf8))
        }
        XCTAssertEqual(vectors.count, e.embeddings.vectors.count)
        for (got, want) in zip(vectors, e.embeddings.vectors) {
            XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-4)
        }

        // A size flag that the weights contradict stops the command, naming both.
        let wrong = try run("albertmoe", ["embed", "--model", model.path, "--input", texts.path, "--hidden_size", "768"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("hidden_size") && wrong.stderr.contains("768") && wrong.stderr.contains("[32, 16]"),
                      wrong.stderr)
        // So does a head count its weights contradict (their RoPE tables say head size 8, so 4 heads).
        let heads = try run("train-mlm", ["--mode", "serve", "--model_path", model.path, "--input_text", "a [MASK]",
                                          "--num_attention_heads", "12"])
        XCTAssertNotEqual(heads.status, 0)
        XCTAssertTrue(heads.stderr.contains("num_attention_heads"), heads.stderr)
    }

    /// A tokenizer directory as the Python package saves it (spiece.model and its json files) trains a model, whose
    /// epoch directory holds pytorch_model.bin and tokenizer files again.
    func testTrainingWithTheReferencesTokenizerDirectory() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir, lines: 40)
        let out = dir.appendingPathComponent("model")
        let r = try run("train-mlm", ["--mode", "pretrain", "--dataset", data.path, "--model_path", out.path, "--num_epochs", "1",
                                      "--save_every", "1", "--validation_split_percentage", "0",
                                      "--tokenizer_name", Self.referenceModels.appendingPathComponent("spiece_only").path] + tinyModel)
        XCTAssertEqual(r.status, 0, r.stderr)
        for file in ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("epoch_1/\(file)").path), file)
        }
        let served = try run("train-mlm", ["--mode", "serve", "--model_path", out.appendingPathComponent("epoch_1").path,
                                           "--input_text", "the [MASK] cat"])
        XCTAssertEqual(served.status, 0, served.stderr)
        XCTAssertTrue(served.stdout.contains("Mask #1"), served.stdout)
    }

    /// `albertmoe convert` gives the Python package's directory a config.json (from its weights and the size flags)
    /// and model.safetensors; the directory then needs no size flags.
    func testConvertGivesTheReferencesDirectoryAConfig() throws {
        let dir = try temporaryDirectory()
        let model = try referenceDirectory("mlm", in: dir)
        let wrong = try run("albertmoe", ["convert", "--model", model.path, "--to", "safetensors", "--num_experts", "8"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("num_experts"), wrong.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: model.appendingPathComponent("config.json").path))

        let r = try run("albertmoe", ["convert", "--model", model.path, "--to", "safetensors"] + Self.referenceSizes)
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("config.json")))
                                   as? [String: Any])
        XCTAssertEqual(config["architectures"] as? [String], ["AlbertForMaskedLM"])
        XCTAssertEqual(config["position_embedding_type"] as? String, "none")
        XCTAssertEqual(config["num_attention_heads"] as? Int, 4)
        XCTAssertEqual(config["num_hidden_layers"] as? Int, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path))

        let e = try referenceExpected()
        let texts = dir.appendingPathComponent("texts.txt")
        try Data((e.embeddings.texts.joined(separator: "\n") + "\n").utf8).write(to: texts)
        let embed = try run("albertmoe", ["embed", "--model", model.path, "--input", texts.path, "--batch_size", "4"])
        XCTAssertEqual(embed.status, 0, embed.stderr)
        let vectors = try embed.stdout.split(separator: "\n").map { try JSONDecoder().decode([Float].self, from: Data($0.utf8)) }
        for (got, want) in zip(vectors, e.embeddings.vectors) {
            XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-4)
        }
    }
}
