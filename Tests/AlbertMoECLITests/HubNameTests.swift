import AlbertMoE
import Foundation
import Tokenizers
import XCTest

/// The commands given Hugging Face names, against a cache laid out as huggingface_hub lays it out, offline.
final class HubNameTests: XCTestCase {
    var cache: URL!
    var work: URL!
    let commit = String(repeating: "c0ffee", count: 7).prefix(40).description

    override func setUpWithError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-hubnames-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        cache = dir.appendingPathComponent("hub")
        work = dir.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)

        // A tiny causal model with its tokenizer, stored as models--tester--tiny-clm: blobs, and symlinks to them.
        let texts = ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog met"]
        let tokenizer = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 300, minFrequency: 1,
                                                                        specialTokens: ["<pad>", "<|endoftext|>"])).train(texts: texts)
        try tokenizer.declareSpecialTokens([.pad: "<pad>", .eos: "<|endoftext|>"])
        let config = AlbertMoEConfig(vocabSize: tokenizer.vocabSize, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2,
                                     numAttentionHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 64, numExperts: 4,
                                     topKExperts: 2)
        let saved = dir.appendingPathComponent("saved")
        try AlbertForCausalLM(config, seed: 1).save(to: saved)
        try tokenizer.saveFiles(to: saved)
        try cacheRepository("models--tester--tiny-clm", try FileManager.default.contentsOfDirectory(atPath: saved.path).sorted()
            .map { ($0, saved.appendingPathComponent($0)) })
        try Data(texts.joined(separator: "\n").utf8).write(to: work.appendingPathComponent("lines.txt"))
    }

    /// Runs a built command in the work folder, offline, with the cache above.
    func run(_ executable: String, _ args: [String]) throws -> CommandResult {
        var environment = offlineEnvironment()
        environment["HF_HUB_CACHE"] = cache.path
        environment["HF_ENDPOINT"] = "http://127.0.0.1:9"
        return try runCommand(executable, args, environment: environment, directory: work)
    }

    func testCommandsTakeCachedHubNames() throws {
        // A bare legacy name finds the namespaced repository.
        let embedded = try run("albertmoe", ["embed", "--model", "tiny-clm", "--input", "lines.txt"])
        XCTAssertEqual(embedded.status, 0, embedded.stderr)
        XCTAssertEqual(embedded.stdout.split(separator: "\n").count, 3)

        let served = try run("train-clm", ["--mode", "serve", "--model_path", "tester/tiny-clm", "--input_text", "the cat",
                                           "--temperature", "0", "--gen_max_length", "8"])
        XCTAssertEqual(served.status, 0, served.stderr)
        XCTAssertTrue(served.stdout.hasPrefix("the cat"), served.stdout)

        let evaluated = try run("train-clm", ["--mode", "evaluate", "--model_path", "tester/tiny-clm", "--validation_file",
                                              "lines.txt", "--max_length", "16", "--logging_dir", "results"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work.appendingPathComponent("results/eval_results.json").path))
        XCTAssertFalse(FileManager.default.fileExists(
            atPath: cache.appendingPathComponent("models--tester--tiny-clm/snapshots/\(commit)/eval_results.json").path))

        let trained = try run("train-clm", ["--mode", "pretrain", "--dataset", "lines.txt", "--tokenizer_name", "tester/tiny-clm",
                                            "--model_path", "out", "--max_steps", "1", "--hidden_size", "16", "--embedding_size", "8",
                                            "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "24",
                                            "--num_experts", "2", "--max_position_embeddings", "32", "--max_length", "16",
                                            "--validation_split_percentage", "0"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertFalse(trained.stderr.contains("Training a byte-level BPE tokenizer"), trained.stderr)
        let hubTokenizer = try Tokenizer.load(from: cache.appendingPathComponent("models--tester--tiny-clm/snapshots/\(commit)"))
        XCTAssertEqual(try Tokenizer.load(from: work.appendingPathComponent("out")).vocabSize, hubTokenizer.vocabSize)
    }

    /// Lays `files` (path in the repository -> file to copy) into the cache as huggingface_hub stores a download:
    /// blobs, relative symlinks from snapshots/COMMIT, refs/main.
    func cacheRepository(_ folder: String, _ files: [(String, URL)]) throws {
        let repo = cache.appendingPathComponent(folder)
        let snapshot = repo.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        for (n, (path, source)) in files.enumerated() {
            let etag = String(format: "%040x", n + 1)
            try FileManager.default.copyItem(at: source, to: repo.appendingPathComponent("blobs/\(etag)"))
            let link = snapshot.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            let depth = path.split(separator: "/").count - 1
            try FileManager.default.createSymbolicLink(atPath: link.path,
                                                       withDestinationPath: String(repeating: "../", count: depth + 2) + "blobs/\(etag)")
        }
        try Data(commit.utf8).write(to: repo.appendingPathComponent("refs/main"))
    }

    /// The Python package's default names (`--tokenizer_name albert-base-v2 --dataset wikitext --dataset_config
    /// wikitext-2-raw-v1`) train offline from a cache that holds them under their namespaced repositories: an ALBERT
    /// SentencePiece tokenizer and the dataset's parquet shards.
    func testThePythonPackagesDefaultNamesTrainFromTheCacheOffline() throws {
        let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        let albert = tests.appendingPathComponent("AlbertMoETests/Fixtures/reference_models/mlm")
        try cacheRepository("models--albert--albert-base-v2", ["spiece.model", "tokenizer.json", "tokenizer_config.json",
                                                               "special_tokens_map.json"].map { ($0, albert.appendingPathComponent($0)) })
        let shards = tests.appendingPathComponent("ColumnarTests/Fixtures/shards")
        try cacheRepository("datasets--Salesforce--wikitext", (0..<3).map {
            ("wikitext-2-raw-v1/train-0000\($0)-of-00003.parquet", shards.appendingPathComponent("train-0000\($0)-of-00003.parquet"))
        } + [("README.md", albert.appendingPathComponent("tokenizer_config.json"))])
        let trained = try run("train-clm", ["--task_type", "clm", "--tokenizer_name", "albert-base-v2", "--dataset", "wikitext",
                                            "--dataset_config", "wikitext-2-raw-v1", "--model_path", "wiki", "--max_steps", "3",
                                            "--batch_size", "4", "--hidden_size", "16", "--embedding_size", "8",
                                            "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "24",
                                            "--num_experts", "2", "--max_position_embeddings", "32", "--max_length", "16"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertTrue((trained.stdout + trained.stderr).contains("Trained 3 steps"), trained.stdout + trained.stderr)
        let saved = try Tokenizer.load(from: work.appendingPathComponent("wiki"))
        let reference = try Tokenizer.load(from: albert)
        XCTAssertEqual(try saved.encode("The cat sat on the mat.").ids, try reference.encode("The cat sat on the mat.").ids)
        let again = try run("train-clm", ["--task_type", "clm", "--tokenizer_name", "albert-base-v2", "--dataset", "wikitext",
                                          "--dataset_config", "wikitext-2-raw-v1", "--dataset_split", "test", "--model_path", "wiki2"])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("test"), again.stderr)
    }

    func testNamesTheCacheDoesNotHoldAreErrorsOffline() throws {
        let dataset = try run("train-clm", ["--mode", "pretrain", "--dataset", "tester/absent-data"])
        XCTAssertNotEqual(dataset.status, 0)
        XCTAssertTrue(dataset.stderr.contains("--dataset tester/absent-data"), dataset.stderr)
        XCTAssertTrue(dataset.stderr.contains(cache.appendingPathComponent("datasets--tester--absent-data").path), dataset.stderr)
        XCTAssertTrue(dataset.stderr.contains("HF_HUB_OFFLINE"), dataset.stderr)

        let tokenizer = try run("train-clm", ["--mode", "pretrain", "--dataset", "lines.txt", "--tokenizer_name", "absent"])
        XCTAssertNotEqual(tokenizer.status, 0)
        XCTAssertTrue(tokenizer.stderr.contains("--tokenizer_name absent"), tokenizer.stderr)
        XCTAssertTrue(tokenizer.stderr.contains("models--*--absent"), tokenizer.stderr)

        let serve = try run("albertmoe", ["serve", "--model", "tester/absent", "--port", "0"])
        XCTAssertNotEqual(serve.status, 0)
        XCTAssertTrue(serve.stderr.contains("--model tester/absent"), serve.stderr)

        for path in ["no/such/file.txt", "missing.jsonl"] {
            let notAName = try run("train-clm", ["--mode", "pretrain", "--dataset", path])
            XCTAssertNotEqual(notAName.status, 0)
            XCTAssertTrue(notAName.stderr.contains("--dataset \(path): no such file or directory"), notAName.stderr)
        }
    }
}
