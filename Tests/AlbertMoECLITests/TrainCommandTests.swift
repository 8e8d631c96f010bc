import Foundation
import Tokenizers
import Tensors
import XCTest

/// Runs the built training commands (`train-clm`, `train-mlm`, `albertmoe train`) as a user would.
final class TrainCommandTests: XCTestCase {
    func run(_ executable: String, _ args: [String]) throws -> CommandResult { try runCommand(executable, args) }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A corpus with repeated structure (the same for a given seed, so that a failure can be replayed), and the
    /// flags of a model small enough to train in a second.
    func corpus(in dir: URL, lines: Int = 200, seed: UInt64 = 0) throws -> URL {
        let words = ["red", "green", "blue", "cat", "dog", "bird", "runs", "sleeps", "eats", "fast", "slowly", "today"]
        var g = SeededGenerator(seed: seed)
        var text = ""
        for _ in 0..<lines { text += (0..<8).map { _ in words.randomElement(using: &g)! }.joined(separator: " ") + "\n" }
        let url = dir.appendingPathComponent("corpus.txt")
        try Data(text.utf8).write(to: url)
        return url
    }

    let tinyModel = ["--hidden_size", "32", "--embedding_size", "16", "--num_hidden_layers", "2", "--num_attention_heads", "2",
                     "--intermediate_size", "48", "--num_experts", "4", "--max_position_embeddings", "64", "--max_length", "32",
                     "--batch_size", "8", "--tokenizer_vocab_size", "120", "--logging_steps", "2"]

    func testTrainCLMEndToEnd() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir)
        let out = dir.appendingPathComponent("model")
        let r = try run("train-clm", ["--mode", "pretrain", "--dataset", data.path, "--model_path", out.path, "--max_steps", "6",
                                      "--save_steps", "3", "--save_total_limit", "1", "--validation_split_percentage", "10"] + tinyModel)
        XCTAssertEqual(r.status, 0, r.stderr)
        for file in ["config.json", "model.safetensors", "tokenizer.json", "checkpoint-6/optimizer.safetensors",
                     "checkpoint-6/trainer_state.json", "logs/metrics.jsonl"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
        // The model, its checkpoint and the tokenizer trained for it name the roles of its special tokens.
        for directory in [out, out.appendingPathComponent("checkpoint-6")] {
            XCTAssertEqual(try Tokenizer.load(from: directory).specialTokens.byRole.mapValues(\.content),
                           [.pad: "<pad>", .eos: "<|endoftext|>"], directory.path)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint-3").path))
        XCTAssertTrue(r.stderr.contains("perplexity"), r.stderr)
        XCTAssertTrue(r.stderr.contains("Sample completions"), r.stderr)

        // Resuming continues from the checkpoint's step.
        let resumed = try run("train-clm", ["--mode", "pretrain", "--dataset", data.path, "--model_path", out.path,
                                            "--max_steps", "8", "--validation_split_percentage", "10",
                                            "--resume_from_checkpoint", out.appendingPathComponent("checkpoint-6").path] + tinyModel)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("at step 6"), resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("Trained 8 steps"), resumed.stderr)

        // Evaluation: held-out perplexity and a sentence-pair task, as a table and eval_results.json.
        let pairs = dir.appendingPathComponent("pairs.tsv")
        try Data("sentence1\tsentence2\tscore\nred cat runs\tred cat runs\t5\nred cat\tblue dog sleeps\t1\ngreen bird\tgreen bird eats\t4\n".utf8)
            .write(to: pairs)
        let evaluated = try run("train-clm", ["--mode", "evaluate", "--model_path", out.path, "--dataset", data.path,
                                              "--validation_split_percentage", "10", "--custom_tasks", pairs.path] + tinyModel)
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        XCTAssertTrue(evaluated.stdout.contains("perplexity") && evaluated.stdout.contains("cosine_spearman"), evaluated.stdout)
        let results = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("eval_results.json"))) as! [String: Any]
        XCTAssertEqual((results["results"] as? [[String: Any]])?.map { $0["task"] as? String }, ["perplexity", "pairs"])

        // Sentence embeddings of each line, as JSON arrays or a .npy file.
        let lines = dir.appendingPathComponent("lines.txt")
        try Data("red cat runs\nblue dog\n".utf8).write(to: lines)
        let embedded = try run("albertmoe", ["embed", "--model", out.path, "--input", lines.path])
        XCTAssertEqual(embedded.status, 0, embedded.stderr)
        let vectors = try embedded.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [Double] }
        XCTAssertEqual(vectors.map(\.count), [32, 32])
        for v in vectors { XCTAssertEqual(v.map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-4) }
        let npy = dir.appendingPathComponent("e.npy")
        XCTAssertEqual(try run("albertmoe", ["embed", "--model", out.path, "--input", lines.path, "--output", npy.path]).status, 0)
        let bytes = try Data(contentsOf: npy)
        XCTAssertEqual(Array(bytes.prefix(6)), [0x93] + Array("NUMPY".utf8))
        let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
        XCTAssertEqual((10 + headerLength) % 64, 0)
        XCTAssertEqual(bytes.count, 10 + headerLength + 2 * 32 * 4)
        XCTAssertTrue(String(decoding: bytes[10..<(10 + headerLength)], as: UTF8.self).contains("'shape': (2, 32)"))

        // Serving: one completion of --input_text, the prompt first.
        let served = try run("train-clm", ["--mode", "serve", "--model_path", out.path, "--input_text", "red cat",
                                           "--gen_max_length", "10", "--temperature", "0"] + tinyModel)
        XCTAssertEqual(served.status, 0, served.stderr)
        XCTAssertTrue(served.stdout.hasPrefix("red cat"), served.stdout)
        let longPrompt = Array(repeating: "red cat runs", count: 40).joined(separator: " ")
        let tooLong = try run("train-clm", ["--mode", "serve", "--model_path", out.path, "--input_text", longPrompt] + tinyModel)
        XCTAssertNotEqual(tooLong.status, 0)
        XCTAssertTrue(tooLong.stderr.contains("--truncate_prompt"), tooLong.stderr)
        let cut = try run("train-clm", ["--mode", "serve", "--model_path", out.path, "--input_text", longPrompt,
                                        "--truncate_prompt"] + tinyModel)
        XCTAssertEqual(cut.status, 0, cut.stderr)
        XCTAssertTrue(cut.stderr.contains("Warning"), cut.stderr)
        let bad = try run("train-clm", ["--mode", "evaluate", "--model_path", out.path, "--custom_tasks", data.path] + tinyModel)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("corpus.txt"), bad.stderr)
    }

    func testUmbrellaTrainMLM() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir)
        let out = dir.appendingPathComponent("mlm")
        let r = try run("albertmoe", ["train", "--task_type", "mlm", "--mode", "pretrain", "--dataset", data.path,
                                      "--model_path", out.path, "--max_steps", "3", "--optimizer", "adamw",
                                      "--lr_scheduler", "cosine", "--warmup_steps", "1", "--max_grad_norm", "1"] + tinyModel)
        XCTAssertEqual(r.status, 0, r.stderr)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
        XCTAssertEqual(config["architectures"] as? [String], ["AlbertForMaskedLM"])
        XCTAssertEqual(try Tokenizer.load(from: out).specialTokens.byRole.mapValues(\.content),
                       [.pad: "[PAD]", .unk: "[UNK]", .cls: "[CLS]", .sep: "[SEP]", .mask: "[MASK]"])

        let evaluated = try run("albertmoe", ["train", "--task_type", "mlm", "--mode", "evaluate", "--model_path", out.path,
                                              "--validation_file", data.path] + tinyModel)
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        XCTAssertTrue(evaluated.stdout.contains("masked_token_accuracy"), evaluated.stdout)
        let served = try run("albertmoe", ["train", "--task_type", "mlm", "--mode", "serve", "--model_path", out.path,
                                           "--input_text", "red [MASK] runs"] + tinyModel)
        XCTAssertEqual(served.status, 0, served.stderr)
        XCTAssertTrue(served.stdout.contains("Mask #1"), served.stdout)
        let noMask = try run("albertmoe", ["train", "--task_type", "mlm", "--mode", "serve", "--model_path", out.path,
                                           "--input_text", "red cat runs"] + tinyModel)
        XCTAssertNotEqual(noMask.status, 0)
        XCTAssertTrue(noMask.stderr.contains("[MASK]"), noMask.stderr)
    }

    /// A copy of the model directory `source` whose tokenizer.json declares fixed padding and truncation at 128
    /// (as many published tokenizer.json files do), padding with the tokenizer's token 0.
    func copyDeclaringPadding(_ source: URL, to copy: URL) throws {
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(file), to: copy.appendingPathComponent(file))
        }
        let tokenizer = try Tokenizer.load(from: source.appendingPathComponent("tokenizer.json"))
        tokenizer.padding = PaddingParams(fixedLength: 128, padId: 0, padToken: try XCTUnwrap(tokenizer.idToToken(0)))
        tokenizer.truncation = TruncationParams(maxLength: 128)
        try tokenizer.saveFiles(to: copy)
        XCTAssertEqual(try Tokenizer.load(from: copy).encode("red cat").ids.count, 128, "the copy declares padding")
    }

    /// A model whose tokenizer.json declares its own padding and truncation serves, evaluates and embeds exactly as
    /// the same model without them: the file's padding never reaches the model as content.
    func testDeclaredTokenizerPaddingChangesNoOutput() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir)
        let pairs = dir.appendingPathComponent("pairs.tsv")
        try Data("sentence1\tsentence2\tscore\nred cat runs\tred cat runs\t5\nred cat\tblue dog sleeps\t1\ngreen bird\tgreen bird eats\t4\n".utf8)
            .write(to: pairs)
        let lines = dir.appendingPathComponent("lines.txt")
        try Data("red cat runs\nblue dog\n\(Array(repeating: "green bird eats", count: 30).joined(separator: " "))\n".utf8).write(to: lines)
        for task in ["clm", "mlm"] {
            let plain = dir.appendingPathComponent(task), padded = dir.appendingPathComponent(task + "-padded")
            let trained = try run("train-\(task)", ["--mode", "pretrain", "--dataset", data.path, "--model_path", plain.path,
                                                   "--max_steps", "2"] + tinyModel)
            XCTAssertEqual(trained.status, 0, trained.stderr)
            try copyDeclaringPadding(plain, to: padded)
            var outputs: [[String]] = [], results: [NSObject?] = []
            for model in [plain, padded] {
                let served = try run("train-\(task)", ["--mode", "serve", "--model_path", model.path, "--input_text",
                                                      task == "clm" ? "red cat" : "red [MASK] runs", "--gen_max_length", "12",
                                                      "--temperature", "0"] + tinyModel)
                XCTAssertEqual(served.status, 0, served.stderr)
                let evaluated = try run("train-\(task)", ["--mode", "evaluate", "--model_path", model.path, "--validation_file",
                                                         data.path, "--custom_tasks", pairs.path] + tinyModel)
                XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
                let json = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("eval_results.json")))
                results.append((json as? [String: Any])?["results"] as? NSObject)
                let embedded = try run("albertmoe", ["embed", "--model", model.path, "--input", lines.path])
                XCTAssertEqual(embedded.status, 0, embedded.stderr)
                outputs.append([served.stdout, embedded.stdout])
            }
            XCTAssertEqual(outputs[1], outputs[0], task)
            XCTAssertNotNil(results[0], task)
            XCTAssertEqual(results[1], results[0], task)
        }
    }

    /// `--save_every N` counts epochs, as in the Python package: MODEL_PATH/epoch_N/ every N epochs and after the
    /// last, each a model directory that the inference commands load; `--save_steps` is the checkpoint interval.
    func testSaveEveryCountsEpochs() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir, lines: 40)
        let out = dir.appendingPathComponent("model")
        let r = try run("train-clm", ["--task_type", "clm", "--mode", "pretrain", "--dataset", data.path, "--model_path", out.path,
                                      "--num_epochs", "3", "--save_every", "2", "--save_steps", "4",
                                      "--validation_split_percentage", "0"] + tinyModel)
        XCTAssertEqual(r.status, 0, r.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertEqual(names.filter { $0.hasPrefix("epoch_") }.sorted(), ["epoch_2", "epoch_3"])
        // 40 lines in batches of 8: 5 steps an epoch; checkpoints every 4 steps and at each epoch's end.
        XCTAssertEqual(Set(names.filter { $0.hasPrefix("checkpoint-") }),
                       ["checkpoint-4", "checkpoint-5", "checkpoint-8", "checkpoint-10", "checkpoint-12", "checkpoint-15"])
        XCTAssertFalse(names.contains { $0.hasPrefix(".") }, "no partial directory is left: \(names)")
        for epoch in ["epoch_2", "epoch_3"] {
            let model = out.appendingPathComponent(epoch)
            for file in ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent(file).path), "\(epoch)/\(file)")
            }
            let served = try run("train-clm", ["--mode", "serve", "--model_path", model.path, "--input_text", "red cat",
                                               "--gen_max_length", "8", "--temperature", "0"])
            XCTAssertEqual(served.status, 0, served.stderr)
            XCTAssertEqual(try run("albertmoe", ["embed", "--model", model.path, "--input", data.path]).status, 0)
        }
        // The last epoch's directory holds the final model.
        XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent("epoch_3/model.safetensors")),
                       try Data(contentsOf: out.appendingPathComponent("model.safetensors")))

        // Stopped by --max_steps inside an epoch: the directory of the epoch it stopped in.
        let stopped = dir.appendingPathComponent("stopped")
        let s = try run("train-mlm", ["--mode", "pretrain", "--dataset", data.path, "--model_path", stopped.path,
                                      "--save_every", "1", "--max_steps", "7", "--validation_split_percentage", "0"] + tinyModel)
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: stopped.path).filter { $0.hasPrefix("epoch_") }.sorted(),
                       ["epoch_1", "epoch_2"])
    }

    /// `--task_type`, which the Python package requires on every command line, is accepted where it agrees with
    /// the command and named where it does not.
    func testTaskTypeAsThePythonPackageRequiresIt() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir, lines: 16)
        for (command, task) in [("train-clm", "clm"), ("train-mlm", "mlm")] {
            let ok = try run(command, ["--task_type", task, "--mode", "pretrain", "--dataset", data.path, "--model_path",
                                       dir.appendingPathComponent(task).path, "--max_steps", "1"] + tinyModel)
            XCTAssertEqual(ok.status, 0, ok.stderr)
            let other = task == "clm" ? "mlm" : "clm"
            let wrong = try run(command, ["--task_type", other, "--mode", "pretrain", "--dataset", data.path] + tinyModel)
            XCTAssertNotEqual(wrong.status, 0)
            XCTAssertTrue(wrong.stderr.contains("--task_type \(other)") && wrong.stderr.contains("train-\(other)"), wrong.stderr)
            let bad = try run(command, ["--task_type", "xlm", "--dataset", data.path] + tinyModel)
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains("task_type"), bad.stderr)
        }
        let missing = try run("albertmoe", ["train", "--mode", "pretrain", "--dataset", data.path] + tinyModel)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("--task_type"), missing.stderr)
        let badTasks = try run("train-clm", ["--eval_tasks", "foo", "--dataset", data.path] + tinyModel)
        XCTAssertNotEqual(badTasks.status, 0)
        XCTAssertTrue(badTasks.stderr.contains("--eval_tasks"), badTasks.stderr)
    }

    /// The Python package's README command lines, word for word but for a local file in place of the hub dataset
    /// name (and the model directory of an `epoch_N/` in place of `./my_clm_model`), run through both executables,
    /// with and without the `--task_type` its parser requires.
    func testThePythonPackagesReadmeCommandLines() throws {
        let dir = try temporaryDirectory()
        let text = try corpus(in: dir, lines: 8)
        let squad = dir.appendingPathComponent("squad.jsonl")
        let contexts = try String(contentsOf: text, encoding: .utf8).split(separator: "\n")
            .map { #"{"id": "x", "context": "\#($0)", "question": "what?"}"# }
        try Data(contexts.joined(separator: "\n").utf8).write(to: squad)
        let size = ["--batch_size", "8", "--hidden_size", "768", "--num_experts", "8", "--max_position_embeddings", "512"]
        let lines: [(String, [String])] = [
            ("train-clm", ["--mode", "pretrain", "--dataset", text.path, "--dataset_config", "wikitext-2-raw-v1",
                           "--num_epochs", "3"] + size + ["--use_wandb"]),
            ("train-clm", ["--mode", "pretrain", "--dataset", text.path, "--dataset_config", "wikitext-2-raw-v1",
                           "--num_epochs", "3"] + size + ["--push_to_hub", "username/my-albert-moe", "--hub_token",
                                                          "your_hf_token", "--use_wandb"]),
            ("train-mlm", ["--mode", "pretrain", "--dataset", text.path, "--dataset_config", "wikitext-2-raw-v1",
                           "--num_epochs", "3"] + size + ["--use_wandb"]),
            ("train-clm", ["--mode", "pretrain", "--dataset", text.path, "--dataset_config", "wikitext-103-raw-v1",
                           "--streaming", "--max_samples", "50000"] + size + ["--use_wandb"]),
            ("train-clm", ["--mode", "pretrain", "--dataset", squad.path, "--dataset_config", "plain_text", "--text_column",
                           "context", "--streaming", "--max_samples", "10000", "--batch_size", "4",
                           "--max_position_embeddings", "512"]),
            ("train-clm", ["--mode", "pretrain", "--num_epochs", "3", "--dataset", text.path]),
        ]
        for (index, (command, flags)) in lines.enumerated() {
            let task = command == "train-clm" ? "clm" : "mlm"
            let out = dir.appendingPathComponent("run\(index)")
            // Odd lines as the Python parser requires them (with --task_type), even lines as its README prints them.
            let args = flags + ["--model_path", out.path] + (index % 2 == 1 ? ["--task_type", task] : [])
            let r = try run(command, args)
            XCTAssertEqual(r.status, 0, "\(command) \(args): \(r.stderr)")
            // The reference's --save_every 1000 (epochs) writes the last epoch's directory only.
            let model = out.appendingPathComponent("epoch_3")
            XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path),
                          "\(command) \(args) wrote no epoch_3/")
            defer { try? FileManager.default.removeItem(at: out) }   // a base-size run's checkpoints take 0.5 GB each
            if index == 0 {
                let served = try run("train-clm", ["--mode", "serve", "--model_path", model.path, "--input_text",
                                                   "Once upon a time", "--gen_max_length", "100", "--temperature", "0.8",
                                                   "--top_k", "50", "--top_p", "0.95"])
                XCTAssertEqual(served.status, 0, served.stderr)
                XCTAssertTrue(served.stdout.hasPrefix("Once upon a time"), served.stdout)
            }
            if index == 2 {
                let served = try run("train-mlm", ["--mode", "serve", "--model_path", model.path, "--input_text",
                                                   "The weather today is [MASK] and [MASK]."])
                XCTAssertEqual(served.status, 0, served.stderr)
                XCTAssertTrue(served.stdout.contains("Mask #2"), served.stdout)
            }
        }
    }

    /// Ctrl-C finishes the step, writes a checkpoint, says how to resume, and exits cleanly.
    func testInterruptWritesACheckpoint() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir)
        let out = dir.appendingPathComponent("model")
        let errURL = dir.appendingPathComponent("stderr.txt")
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = Bundle.main.bundleURL.appendingPathComponent("train-clm")
        process.arguments = ["--mode", "pretrain", "--dataset", data.path, "--model_path", out.path, "--max_steps", "1000000"] + tinyModel
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !(try String(contentsOf: errURL, encoding: .utf8)).contains("step 4") { usleep(50_000) }
        process.interrupt()
        process.waitUntilExit()
        let err = try String(contentsOf: errURL, encoding: .utf8)
        XCTAssertEqual(process.terminationStatus, 0, err)
        XCTAssertTrue(err.contains("Resume with --resume_from_checkpoint"), err)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix("checkpoint-") }
        XCTAssertEqual(checkpoints.count, 1, "\(checkpoints)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(checkpoints[0] + "/trainer_state.json").path))
    }

    func testMistakesAreNamedBeforeTraining() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir)
        let out = dir.appendingPathComponent("m").path
        func expectFailure(_ args: [String], mentioning needle: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try run("train-clm", ["--mode", "pretrain", "--model_path", out] + args)
            XCTAssertNotEqual(r.status, 0, file: file, line: line)
            XCTAssertTrue(r.stderr.contains(needle), "expected \(needle) in: \(r.stderr)", file: file, line: line)
        }
        try expectFailure(["--dataset", "wikitext"] + tinyModel, mentioning: "not in the Hugging Face cache")
        try expectFailure(["--dataset", dir.appendingPathComponent("missing.txt").path] + tinyModel, mentioning: "missing.txt")
        try expectFailure(["--dataset", data.path, "--max_length", "600"], mentioning: "max_position_embeddings")
        try expectFailure(["--dataset", data.path, "--attention", "bidirectional"] + tinyModel,
                          mentioning: "--attention bidirectional")
        try expectFailure(["--dataset", data.path] + tinyModel + ["--max_length", "1"], mentioning: "--max_length")
        try expectFailure(["--dataset", data.path, "--optimizer", "lion"] + tinyModel, mentioning: "--optimizer")
        try expectFailure(["--dataset", data.path, "--hidden_size", "30"] + tinyModel.dropFirst(2), mentioning: "num_attention_heads")
        let bad = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"text\": \"fine\"}\n{\"text\": broken}\n".utf8).write(to: bad)
        try expectFailure(["--dataset", bad.path] + tinyModel, mentioning: "bad.jsonl:2")
        // Streaming reads the validation file only at the first validation: it is checked before training.
        try expectFailure(["--dataset", data.path, "--streaming", "--validation_file", bad.path] + tinyModel, mentioning: "bad.jsonl:2")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/logs"), "training started")
        try expectFailure(["--dataset", data.path, "--tokenizer_name", "albert-base-v2"] + tinyModel, mentioning: "albert-base-v2")
        try expectFailure(["--dataset", data.path, "--resume_from_checkpoint", dir.path] + tinyModel, mentioning: "not a checkpoint")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
    }

    /// Flag values out of their range are refused by the flag's name with the value, before training; a negative
    /// number is a flag's value (not taken for an option), for every command.
    func testFlagValuesAreRefusedByName() throws {
        let dir = try temporaryDirectory()
        let data = try corpus(in: dir, lines: 20)
        let out = dir.appendingPathComponent("m").path
        let cases: [([String], [String])] = [
            (["--batch_size", "-1"], ["--batch_size must be at least 1, got -1"]),
            (["--warmup_steps", "-3"], ["--warmup_steps must be >= 0, got -3"]),
            (["--eval_tasks", "foo"], ["--eval_tasks", "got foo"]),
            (["--text_column", ""], ["--text_column"]),
            (["--momentum", "nan"], ["--momentum must be a finite number, got nan"]),
            (["--max_lr", "inf"], ["--max_lr must be a finite number, got inf"]),
            (["--learning_rate", "-inf"], ["--learning_rate must be a finite number, got -inf"]),
            (["--beta2", "-nan"], ["--beta2 must be a finite number"]),
            (["--tokenizer_vocab_size", "1"], ["--tokenizer_vocab_size", "got 1", "1000000"]),
            (["--tokenizer_vocab_size", "1000000000"], ["--tokenizer_vocab_size", "got 1000000000"]),
            (["--tokenizer_vocab_size", "-7"], ["--tokenizer_vocab_size", "got -7"]),
        ]
        for (flags, needles) in cases {
            for (executable, command) in [("train-clm", [String]()), ("albertmoe", ["train", "--task_type", "clm"])] {
                let r = try run(executable, command + ["--mode", "pretrain", "--dataset", data.path, "--model_path", out]
                                                    + tinyModel + flags)
                XCTAssertNotEqual(r.status, 0, "\(flags)")
                for needle in needles { XCTAssertTrue(r.stderr.contains(needle), "\(flags): expected \(needle) in \(r.stderr)") }
                XCTAssertFalse(r.stderr.contains("Missing value"), r.stderr)
            }
        }
        for (size, needle) in [("1000000000", "got 1000000000"), ("-5", "got -5"), ("5", "more than the 5 special tokens")] {
            let r = try run("albertmoe", ["train-tokenizer", "--model", "bpe", "--vocab_size", size, "--output", out, data.path])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains("--vocab_size") && r.stderr.contains(needle), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// A `save_to_disk` DatasetDict as --dataset (its train split, streamed) and as --validation_file (its
    /// validation split); a split it lacks is named with the ones it has.
    func testTrainOnASavedDatasetDict() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("ColumnarTests/Fixtures")
        let dict = fixtures.appendingPathComponent("saved_dataset_dict").path
        let dir = try temporaryDirectory()
        let out = dir.appendingPathComponent("model").path
        let r = try run("train-clm", ["--mode", "pretrain", "--dataset", dict, "--dataset_split", "train", "--validation_file", dict,
                                      "--streaming", "--model_path", out, "--max_steps", "2"] + tinyModel)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("perplexity"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model.safetensors"))
        let missing = try run("train-clm", ["--mode", "pretrain", "--dataset", dict, "--dataset_split", "test", "--model_path", out] + tinyModel)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no split 'test' in this DatasetDict (splits: 'train', 'validation')"), missing.stderr)
        let parquet = fixtures.appendingPathComponent("shards").path
        let column = try run("train-clm", ["--mode", "pretrain", "--dataset", parquet, "--text_column", "body", "--model_path", out] + tinyModel)
        XCTAssertNotEqual(column.status, 0)
        XCTAssertTrue(column.stderr.contains("train-00000-of-00003.parquet: no column 'body' (columns: 'id', 'text', 'score')"), column.stderr)
    }
}

/// The environment with the Hugging Face hub offline and an empty cache: no test reaches the network or the user's
/// cache.
func offlineEnvironment() -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    environment["HF_HUB_OFFLINE"] = "1"
    environment["HF_HUB_CACHE"] = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-empty-hub-cache").path
    return environment
}
