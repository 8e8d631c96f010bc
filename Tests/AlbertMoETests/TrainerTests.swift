import Foundation
import XCTest
@testable import AlbertMoE
import Tokenizers

/// The training loop: exact resumption, checkpoints, logs and the non-finite-loss guard.
final class TrainerTests: XCTestCase {
    var directory: URL!
    var corpus: TextCorpus!
    var tokenizer: Tokenizer!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-trainer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var g = SeededGenerator(seed: 1)
        let words = ["red", "green", "cat", "dog", "runs", "sleeps", "fast", "today", "and", "the"]
        let lines = (0..<40).map { _ in (0..<(3 + g.nextInt(below: 6))).map { _ in words[g.nextInt(below: words.count)] }.joined(separator: " ") }
        let file = directory.appendingPathComponent("corpus.txt")
        try Data(lines.joined(separator: "\n").utf8).write(to: file)
        corpus = try TextCorpus(path: file)
        tokenizer = try WordPieceTrainer(options: TrainerOptions(vocabSize: 40, minFrequency: 1,
                                                                 specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
            .train(texts: lines)
        try tokenizer.declareSpecialTokens([.pad: "[PAD]", .mask: "[MASK]"])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A fresh trainer (model, optimizer, data) writing under `output`; dropout and shuffling on.
    func makeTrainer(_ output: String, masked: Bool = true, maxSteps: Int, saveSteps: Int = 1000,
                     accumulation: Int = 1, configure: (inout TrainingOptions) -> Void = { _ in }) throws -> Trainer {
        var config = tinyConfig(dropout: 0.1)
        config.vocabSize = tokenizer.vocabSize
        let model: AlbertLMModel = masked ? AlbertForMaskedLM(config, seed: 3) : AlbertForCausalLM(config, seed: 3)
        let collator: Collator = masked ? try MaskedLMCollator(tokenizer: tokenizer)
                                        : CausalLMCollator(padID: try paddingID(of: tokenizer))
        let split = SplitRule(percentage: 20, seed: 5)
        func loader(_ side: SplitSide) throws -> BatchLoader {
            try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: collator,
                            configuration: .init(batchSize: 4, maxLength: 12, shuffle: side == .train, seed: 7,
                                                 split: split, side: side))
        }
        var options = TrainingOptions(outputDirectory: directory.appendingPathComponent(output))
        options.maxSteps = maxSteps
        options.numEpochs = 100
        options.saveSteps = saveSteps
        options.loggingSteps = 2
        options.gradientAccumulationSteps = accumulation
        options.maxGradNorm = 1
        options.progressBar = false
        configure(&options)
        let optimizer = ChillAdam(model.parameters(), maxLR: 0.01)
        let trainer = Trainer(model: model, tokenizer: tokenizer, optimizer: optimizer, trainData: try loader(.train),
                              validationData: try loader(.validation), seed: 7, options: options)
        trainer.report = { _ in }
        return trainer
    }

    /// N steps, a checkpoint, a new process resuming for N more: the same parameters as 2N steps in one go,
    /// across an epoch boundary, for both objectives and with gradient accumulation.
    func testResumeIsExact() throws {
        for (masked, accumulation) in [(true, 1), (false, 2)] {
            let straight = try makeTrainer("straight-\(masked)", masked: masked, maxSteps: 10, accumulation: accumulation)
            XCTAssertEqual(straight.stepsPerEpoch.map { $0 < 10 }, true, "the run must cross an epoch boundary")
            _ = try straight.train()

            let first = try makeTrainer("split-\(masked)", masked: masked, maxSteps: 5, saveSteps: 5, accumulation: accumulation)
            _ = try first.train()
            let checkpoint = directory.appendingPathComponent("split-\(masked)/checkpoint-5")
            let second = try makeTrainer("split-\(masked)", masked: masked, maxSteps: 10, accumulation: accumulation)
            try second.resume(from: checkpoint)
            XCTAssertEqual(second.state.globalStep, 5)
            _ = try second.train()

            XCTAssertEqual(second.state, straight.state)
            for ((name, a), (_, b)) in zip(straight.model.namedParameters(), second.model.namedParameters()) {
                XCTAssertEqual(a.scalars, b.scalars, "\(name) differs after resuming (masked: \(masked))")
            }
        }
    }

    func testCheckpointsLogsAndFinalModel() throws {
        let trainer = try makeTrainer("run", masked: false, maxSteps: 6, saveSteps: 2) { $0.saveTotalLimit = 2; $0.evalSteps = 3 }
        let summary = try trainer.train()
        let out = directory.appendingPathComponent("run")
        let kept = Trainer.checkpoints(in: out).map(\.step)
        XCTAssertEqual(kept.count, 2)
        XCTAssertEqual(kept.last, 6)
        let names = try FileManager.default.contentsOfDirectory(atPath: out.path)
        XCTAssertFalse(names.contains { $0.contains("partial") }, "\(names)")
        for file in ["config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "trainer_state.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint-6/\(file)").path), file)
        }
        // The final model loads with its tokenizer, and gives the logits of the trained one.
        let loaded = try AlbertForCausalLM.load(from: out)
        XCTAssertEqual(try Tokenizer.load(from: out).vocabSize, tokenizer.vocabSize)
        loaded.eval(); trainer.model.eval()
        let x = IntTensor([2, 7, 9, 11], shape: [1, 4])
        XCTAssertEqual(withNoGrad { loaded(x).logits }.scalars, withNoGrad { trainer.model(x).logits }.scalars)

        let lines = try String(contentsOf: out.appendingPathComponent("logs/metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let keys = lines.reduce(into: Set<String>()) { $0.formUnion($1.keys) }
        for key in ["train/loss", "train/clm_loss", "train/aux_loss", "train/tokens_per_s", "train/learning_rate",
                    "train/expert_load/0", "train/load_imbalance", "eval/loss", "eval/perplexity"] {
            XCTAssertTrue(keys.contains(key), key)
        }
        XCTAssertNotNil(summary.validation)
        XCTAssertEqual(summary.state.globalStep, 6)
        let events = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("logs").path)
        XCTAssertTrue(events.contains { $0.hasPrefix("events.out.tfevents.") })
    }

    /// A NaN loss stops the run naming the step, and the last checkpoint stays usable.
    func testNonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let trainer = try makeTrainer("nan", maxSteps: 2, saveSteps: 2)
        _ = try trainer.train()
        let checkpoint = directory.appendingPathComponent("nan/checkpoint-2")
        let resumed = try makeTrainer("nan", maxSteps: 6, saveSteps: 2)
        try resumed.resume(from: checkpoint)
        let norm = resumed.model.namedParameters().first { $0.0 == "albert.embeddings.norm.weight" }!.1
        norm.pointer[0] = .nan                                     // every token's hidden state

        XCTAssertThrowsError(try resumed.train()) { error in
            XCTAssertTrue("\(error)".contains("step 3"), "\(error)")
            XCTAssertTrue("\(error)".contains("checkpoint-2"), "\(error)")
        }
        XCTAssertNoThrow(try makeTrainer("nan", maxSteps: 6).resume(from: checkpoint))
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nan/checkpoint-4").path))
    }

    func testResumeRefusesAnotherSetup() throws {
        _ = try makeTrainer("a", maxSteps: 2, saveSteps: 2).train()
        let checkpoint = directory.appendingPathComponent("a/checkpoint-2")
        XCTAssertThrowsError(try makeTrainer("b", masked: false, maxSteps: 4, accumulation: 2).resume(from: checkpoint))
        XCTAssertThrowsError(try makeTrainer("b", maxSteps: 4).resume(from: directory)) { error in
            XCTAssertTrue("\(error)".contains("not a checkpoint"))
        }
    }
}
