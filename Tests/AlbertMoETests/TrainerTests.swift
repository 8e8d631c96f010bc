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
                     accumulation: Int = 1, seed: UInt64 = 7, batchSize: Int = 4, dropout: Float = 0.1,
                     optimizer: ([Tensor]) -> Optimizer = { ChillAdam($0, maxLR: 0.01) },
                     configure: (inout TrainingOptions) -> Void = { _ in }) throws -> Trainer {
        var config = tinyConfig(dropout: dropout)
        config.vocabSize = tokenizer.vocabSize
        let model: AlbertLMModel = masked ? AlbertForMaskedLM(config, seed: 3) : AlbertForCausalLM(config, seed: 3)
        let collator: Collator = masked ? try MaskedLMCollator(tokenizer: tokenizer)
                                        : CausalLMCollator(padID: try paddingID(of: tokenizer))
        let split = SplitRule(percentage: 20, seed: 5)
        func loader(_ side: SplitSide) throws -> BatchLoader {
            try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: collator,
                            configuration: .init(batchSize: batchSize, maxLength: 12, shuffle: side == .train, seed: seed,
                                                 split: split, side: side))
        }
        var options = TrainingOptions(outputDirectory: directory.appendingPathComponent(output))
        options.maxSteps = maxSteps
        options.numEpochs = 100
        options.saveSteps = saveSteps
        options.loggingSteps = 2
        options.gradientAccumulationSteps = accumulation
        options.maxGradNorm = 1
        configure(&options)
        return Trainer(model: model, tokenizer: tokenizer, optimizer: optimizer(model.parameters()), trainData: try loader(.train),
                       validationData: try loader(.validation), seed: seed, options: options)
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
        let trainer = try makeTrainer("run", masked: false, maxSteps: 6, saveSteps: 2,
                                      configure: { $0.saveTotalLimit = 2; $0.evalSteps = 3 })
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
        XCTAssertEqual(try withNoGrad { try loaded(x).logits }.scalars, try withNoGrad { try trainer.model(x, attentionMask: nil, tokenTypeIDs: nil, labels: nil).logits }.scalars)

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

    /// A checkpoint resumes only into the setup it was trained with; each setting that differs is named.
    func testResumeRefusesAnotherSetup() throws {
        _ = try makeTrainer("a", maxSteps: 2, saveSteps: 2).train()
        let checkpoint = directory.appendingPathComponent("a/checkpoint-2")
        let others: [(String, Trainer)] = [
            ("--seed 7, this run has 8", try makeTrainer("b", maxSteps: 4, seed: 8)),
            ("--batch_size 4, this run has 3", try makeTrainer("b", maxSteps: 4, batchSize: 3)),
            ("--gradient_accumulation_steps 1, this run has 2", try makeTrainer("b", maxSteps: 4, accumulation: 2)),
            ("another configuration", try makeTrainer("b", maxSteps: 4, dropout: 0.2)),
            ("AlbertForMaskedLM, this run trains an AlbertForCausalLM", try makeTrainer("b", masked: false, maxSteps: 4)),
        ]
        for (expected, trainer) in others {
            let before = trainer.model.namedParameters().map { $0.1.scalars }
            XCTAssertThrowsError(try trainer.resume(from: checkpoint)) { error in
                XCTAssertTrue("\(error)".contains(expected), "expected \(expected) in: \(error)")
            }
            XCTAssertEqual(trainer.model.namedParameters().map { $0.1.scalars }, before, "a refused checkpoint changes nothing")
            XCTAssertEqual(trainer.state.globalStep, 0)
        }
        // Weights that do not fit the model: the error names the weights file.
        let damaged = directory.appendingPathComponent("a/checkpoint-damaged")
        try FileManager.default.copyItem(at: checkpoint, to: damaged)
        let weightsFile = damaged.appendingPathComponent(ModelDirectory.weightsFile)
        try Safetensors.write(try ModelDirectory.readWeights(damaged).filter { $0.key != "norm.weight" }, to: weightsFile)
        XCTAssertThrowsError(try makeTrainer("b", maxSteps: 4).resume(from: damaged)) { error in
            guard case let .badFile(path, _, reason)? = error as? AlbertMoEError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, weightsFile.path)
            XCTAssertTrue(reason.contains("norm.weight"), reason)
        }
        XCTAssertNoThrow(try makeTrainer("b", maxSteps: 4).resume(from: checkpoint))
        XCTAssertThrowsError(try makeTrainer("b", maxSteps: 4).resume(from: directory)) { error in
            XCTAssertTrue("\(error)".contains("not a checkpoint"))
        }
    }

    /// The run's position, its live generators and its parameters are those of `expected`.
    func assertSameRun(_ trainer: Trainer, as expected: Trainer, _ message: String, line: UInt = #line) {
        var (a, b) = (trainer.state, expected.state)
        (a.randomState, b.randomState) = (.named([:]), .named([:]))   // as of each run's last checkpoint
        XCTAssertEqual(a, b, message, line: line)
        XCTAssertEqual(trainer.model.randomState, expected.model.randomState, message, line: line)
        for ((name, p), (_, q)) in zip(trainer.model.namedParameters(), expected.model.namedParameters()) {
            XCTAssertEqual(p.scalars, q.scalars, "\(name): \(message)", line: line)
        }
    }

    /// Cancelling stops the run after the step under way with a checkpoint of that step (no final model), and a
    /// run resumed from it goes on exactly as the uninterrupted one: at an epoch's last step and at seeded random ones.
    func testCancellationCheckpointsAndResumesExactly() throws {
        let straight = try makeTrainer("straight", maxSteps: 10)
        _ = try straight.train()
        var g = SeededGenerator(seed: 11)
        let stops = [try XCTUnwrap(straight.stepsPerEpoch)] + (0..<3).map { _ in 1 + g.nextInt(below: 9) }
        for (index, stop) in stops.enumerated() {
            let output = "cancel-\(index)"
            let first = try makeTrainer(output, maxSteps: 10)
            first.hooks.willStep = { [unowned first] step in if step == stop { first.cancellation.cancel() } }
            let summary = try first.train()
            XCTAssertTrue(summary.interrupted)
            XCTAssertEqual(summary.state.globalStep, stop)
            let checkpoint = try XCTUnwrap(summary.lastCheckpoint)
            XCTAssertEqual(checkpoint.lastPathComponent, "checkpoint-\(stop)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("\(output)/model.safetensors").path))

            let second = try makeTrainer(output, maxSteps: 10)
            try second.resume(from: checkpoint)
            XCTAssertFalse(try second.train().interrupted)
            assertSameRun(second, as: straight, "cancelled at step \(stop)")
        }
    }

    /// The gradient hook sees each step's complete gradients, once per parameter group (each parameter in exactly
    /// one, in the model's order), before the step: halving them there is halving the learning rate.
    func testGradientHookComesBeforeTheUpdate() throws {
        let halved = try makeTrainer("halved", maxSteps: 6, optimizer: { SGD($0, learningRate: 0.25) }) { $0.maxGradNorm = nil }
        XCTAssertEqual(halved.parameterGroups.flatMap(\.parameters).map(ObjectIdentifier.init),
                       halved.model.parameters().map(ObjectIdentifier.init))
        XCTAssertEqual(halved.parameterGroups.first?.name, "albert.embeddings.word_embeddings")
        var events: [String] = []
        halved.hooks.gradientsReady = { group in
            events.append(group.name)
            for p in group.parameters {
                guard let grad = p.grad else { continue }
                for i in 0..<grad.count { grad.pointer[i] *= 0.5 }
            }
        }
        halved.hooks.willStep = { events.append("step \($0)") }
        _ = try halved.train()
        let names = halved.parameterGroups.map(\.name)
        XCTAssertEqual(events, (1...6).flatMap { names + ["step \($0)"] })

        let slower = try makeTrainer("slower", maxSteps: 6, optimizer: { SGD($0, learningRate: 0.125) }) { $0.maxGradNorm = nil }
        _ = try slower.train()
        assertSameRun(halved, as: slower, "halved gradients")
    }

    /// A checkpoint written while each expert still held a dropout (which never ran), whose unnamed random_state
    /// lists those generators too, resumes exactly: every module gets its own generator back, and the run goes on
    /// as from the same checkpoint with its states named. The fixture is checkpoint-5 of `makeTrainer(_:maxSteps: 5, saveSteps: 5)` as that
    /// code wrote it, with random_state_by_module.json: the same states read from that code's modules by name.
    func testResumesACheckpointWithExpertDropouts() throws {
        let fixture = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("checkpoint_with_expert_dropouts")
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: fixture.appendingPathComponent(Trainer.stateFile)))
        let byModule = try JSONDecoder().decode([String: [String]].self,
                                                from: Data(contentsOf: fixture.appendingPathComponent("random_state_by_module.json")))
        let resumed = try makeTrainer("resumed", maxSteps: 10)
        XCTAssertEqual(((saved as? [String: Any])?["random_state"] as? [Any])?.count,
                       resumed.model.randomState.count + resumed.model.config.numExperts)
        try resumed.resume(from: fixture)
        XCTAssertEqual(resumed.state.globalStep, 5)
        for (name, words) in resumed.model.randomState {
            XCTAssertEqual(words.map { String($0, radix: 16) }, byModule[name], name)
        }
        _ = try resumed.train()
        // The same checkpoint with its states named by module resumes into the same run. (Both runs start from the
        // fixture's weights, so this holds whatever the CPU: the steps before it were computed on another machine.)
        let named = directory.appendingPathComponent("named-checkpoint")
        try FileManager.default.copyItem(at: fixture, to: named)
        var namedState = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: named.appendingPathComponent(Trainer.stateFile)))
        namedState.randomState = .named(byModule.filter { resumed.model.randomState.keys.contains($0.key) })
        try JSONEncoder().encode(namedState).write(to: named.appendingPathComponent(Trainer.stateFile))
        let straight = try makeTrainer("straight", maxSteps: 10)
        try straight.resume(from: named)
        _ = try straight.train()
        assertSameRun(resumed, as: straight, "resumed from the checkpoint with expert dropouts")
        // Its next checkpoint names each generator's state by module.
        let state = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: directory.appendingPathComponent(
            "resumed/checkpoint-\(try XCTUnwrap(straight.stepsPerEpoch))/\(Trainer.stateFile)")))
        guard case .named(let named) = state.randomState else { return XCTFail("\(state.randomState)") }
        XCTAssertEqual(Set(named.keys), Set(resumed.model.randomState.keys))
    }

    /// The partial directories that a killed run left (its unfinished writes of checkpoints and epoch models) are
    /// removed by the next run in that output directory, and nothing else is: not other hidden entries, not the
    /// partial directories of another output directory.
    func testTheNextRunRemovesAKilledRunsPartialDirectories() throws {
        let fm = FileManager.default
        let (out, other) = (directory.appendingPathComponent("killed"), directory.appendingPathComponent("other"))
        let partials = [".checkpoint-4.partial-\(UUID().uuidString)", ".epoch_1.partial-\(UUID().uuidString)"]
        let unrelated = [".checkpoint-4.partial-mine", ".notes", "notes.partial-\(UUID().uuidString)"]
        for (parent, names) in [(out, partials + unrelated), (other, partials)] {
            for name in names {
                try fm.createDirectory(at: parent.appendingPathComponent(name), withIntermediateDirectories: true)
                try Data("x".utf8).write(to: parent.appendingPathComponent("\(name)/model.safetensors"))
            }
        }
        _ = try makeTrainer("killed", maxSteps: 2).train()
        let left = Set(try fm.contentsOfDirectory(atPath: out.path))
        XCTAssertTrue(left.isDisjoint(with: partials), "\(left)")
        XCTAssertTrue(left.isSuperset(of: unrelated), "\(left)")
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: other.path)), Set(partials))
    }

    /// The figures of a run's logs that do not depend on the clock, one entry per logged step and kind, sorted:
    /// metrics.jsonl's lines and the TensorBoard events of every event file.
    func loggedFigures(_ output: String) throws -> (json: [String], tensorBoard: [String]) {
        let logs = directory.appendingPathComponent("\(output)/logs")
        let json = try String(contentsOf: logs.appendingPathComponent(MetricsLog.fileName), encoding: .utf8)
            .split(separator: "\n").map { line -> String in
                let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return object.filter { !["time", "train/tokens_per_s"].contains($0.key) }
                    .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            }
        let files = try FileManager.default.contentsOfDirectory(at: logs, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasPrefix("events.out.tfevents.") }
        let events = try files.flatMap { try EventFileReader.read($0) }.filter { !$0.values.isEmpty }.map { event in
            "step=\(event.step) " + event.values.filter { $0.tag != "train/tokens_per_s" }.map { "\($0.tag)=\($0.value)" }
                .joined(separator: " ")
        }
        return (json.sorted(), events.sorted())
    }

    /// A run killed after its last checkpoint had logged steps that the resumed run trains and logs again: resuming
    /// drops them, so that metrics.jsonl and the TensorBoard events hold each step once, as an uninterrupted run's do.
    func testResumeDropsTheLogsOfTheStepsAfterTheCheckpoint() throws {
        _ = try makeTrainer("straight", maxSteps: 10).train()
        let killed = try makeTrainer("killed", maxSteps: 7, saveSteps: 4)   // logs up to step 7, its checkpoint is of step 4
        XCTAssertEqual(killed.stepsPerEpoch.map { $0 > 7 }, true, "no epoch may end (with a checkpoint) before step 7")
        _ = try killed.train()
        let resumed = try makeTrainer("killed", maxSteps: 10)
        try resumed.resume(from: directory.appendingPathComponent("killed/checkpoint-4"))
        _ = try resumed.train()
        let (expected, got) = (try loggedFigures("straight"), try loggedFigures("killed"))
        XCTAssertEqual(got.json, expected.json)
        XCTAssertEqual(got.tensorBoard, expected.tensorBoard)
        XCTAssertFalse(expected.json.isEmpty || expected.tensorBoard.isEmpty)
    }

    /// When the final model cannot be written, the steps since the last checkpoint are not lost: they are kept in a
    /// checkpoint of the last step (in the output directory, else under the fallback directory) that the error
    /// names, and a run resumed from it ends as the uninterrupted run does.
    func testAFailedFinalSaveKeepsTheTrainedState() throws {
        let fm = FileManager.default
        let straight = try makeTrainer("straight", maxSteps: 6)
        _ = try straight.train()
        // A directory in the way of model.safetensors: the final model cannot be written, a checkpoint can.
        let blocker = directory.appendingPathComponent("blocked/\(ModelDirectory.weightsFile)")
        try fm.createDirectory(at: blocker.appendingPathComponent("in-the-way"), withIntermediateDirectories: true)
        // The output directory replaced by a file before the last step: nothing can be written there.
        let rescue = directory.appendingPathComponent("rescue")
        let gone = try makeTrainer("gone", maxSteps: 6, saveSteps: 4, configure: { $0.fallbackDirectory = rescue })
        gone.hooks.willStep = { [options = gone.options] step in
            guard step == 6 else { return }
            try fm.removeItem(at: options.outputDirectory)
            try Data("not a directory".utf8).write(to: options.outputDirectory)
        }
        let kept = [(try makeTrainer("blocked", maxSteps: 6, saveSteps: 4), directory.appendingPathComponent("blocked")),
                    (gone, rescue)]
        for (index, (trainer, parent)) in kept.enumerated() {
            var message = ""
            XCTAssertThrowsError(try trainer.train()) { message = "\($0)" }
            let checkpoint = try XCTUnwrap(parent.path == rescue.path
                ? fm.contentsOfDirectory(at: rescue, includingPropertiesForKeys: nil).first?.appendingPathComponent("checkpoint-6")
                : parent.appendingPathComponent("checkpoint-6"))
            XCTAssertTrue(message.contains("kept in \(checkpoint.path)"), message)
            let resumed = try makeTrainer("resumed-\(index)", maxSteps: 6)
            try resumed.resume(from: checkpoint)
            _ = try resumed.train()
            assertSameRun(resumed, as: straight, message)
            XCTAssertTrue(fm.fileExists(atPath: directory.appendingPathComponent("resumed-\(index)/\(ModelDirectory.weightsFile)").path))
        }
    }
}
