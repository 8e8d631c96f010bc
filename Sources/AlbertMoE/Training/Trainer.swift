import Foundation
import Layers
import Optimizers
import Synchronization
import Tokenizers

/// How a training run is driven: its length, its clipping and accumulation, and when it logs, validates and
/// saves. Steps are optimizer steps (one step may take several batches when accumulating).
public struct TrainingOptions {
    /// Where checkpoints (`checkpoint-STEP/`) and the final model go.
    public var outputDirectory: URL
    /// TensorBoard event files and metrics.jsonl.
    public var loggingDirectory: URL
    public var numEpochs = 3
    /// Stops after this many steps, whatever the epochs.
    public var maxSteps: Int? = nil
    public var gradientAccumulationSteps = 1
    /// Clips the total gradient norm before each step.
    public var maxGradNorm: Float? = nil
    public var loggingSteps = 10
    /// Validates every this many steps (and at the end of each epoch).
    public var evalSteps: Int? = nil
    /// Writes a checkpoint every this many steps (and at the end of each epoch).
    public var saveSteps = 1000
    /// Keeps only the newest checkpoints.
    public var saveTotalLimit: Int? = nil
    /// Writes the model (config, weights, tokenizer) to `epoch_N/` every this many epochs and when training ends
    /// (N is then the epoch it ended in), as the Python package's `--save_every` does; nil: never.
    public var saveEveryEpochs: Int? = nil
    /// Where the trained state goes when the end of a run can write neither the final model nor a checkpoint
    /// in `outputDirectory` (a full or failing disk): a `checkpoint-STEP/` in a new directory under this one.
    public var fallbackDirectory = FileManager.default.temporaryDirectory

    public init(outputDirectory: URL, loggingDirectory: URL? = nil) {
        self.outputDirectory = outputDirectory
        self.loggingDirectory = loggingDirectory ?? outputDirectory.appendingPathComponent("logs")
    }

    /// Steps per epoch of data with this many batches per epoch (nil: unknown, as when streaming).
    public func stepsPerEpoch(batchesPerEpoch: Int?) -> Int? {
        batchesPerEpoch.map { ($0 + gradientAccumulationSteps - 1) / gradientAccumulationSteps }
    }

    /// The steps a run takes: the epochs' or `maxSteps`, whichever ends first (nil when neither is known).
    public func totalSteps(batchesPerEpoch: Int?) -> Int? {
        let byEpochs = stepsPerEpoch(batchesPerEpoch: batchesPerEpoch).map { $0 * numEpochs }
        switch (maxSteps, byEpochs) {
        case let (m?, e?): return min(m, e)
        case let (m?, nil): return m
        case let (nil, e): return e
        }
    }
}

/// Where a training run stands: what a checkpoint needs besides the weights and the optimizer to continue
/// exactly (saved as trainer_state.json).
public struct TrainerState: Codable, Equatable {
    /// Optimizer steps taken.
    public var globalStep = 0
    /// The epoch under way (0-based) and the index of its next batch.
    public var epoch = 0
    public var batchInEpoch = 0
    /// Tokens (attention-mask ones) trained on so far.
    public var tokensSeen = 0
    /// The model's dropout generators.
    public var randomState = GeneratorStates.named([:])
    /// The data settings the position above refers to; a resumed run must use the same.
    public var seed: UInt64 = 0
    public var batchSize = 0
    public var gradientAccumulationSteps = 1

    enum CodingKeys: String, CodingKey {
        case globalStep = "global_step", epoch, batchInEpoch = "batch_in_epoch", tokensSeen = "tokens_seen"
        case randomState = "random_state", seed, batchSize = "batch_size"
        case gradientAccumulationSteps = "gradient_accumulation_steps"
    }
}

/// Validation figures: token-weighted mean cross-entropy and its exponential.
public struct EvaluationResult {
    public let loss: Double
    public var perplexity: Double { Foundation.exp(loss) }
    public let tokens: Int
}

/// How a call to `train()` ended.
public struct TrainingSummary {
    public let state: TrainerState
    /// True when the run was cancelled before its end (a checkpoint was written).
    public let interrupted: Bool
    public let firstLoss: Double?
    public let lastLoss: Double?
    public let validation: EvaluationResult?
    public let tokensPerSecond: Double
    public let lastCheckpoint: URL?
}

/// The generator states of a model, as hexadecimal words.
public enum GeneratorStates: Codable, Equatable {
    /// By module name.
    case named([String: [String]])
    /// A list in the order of `Expert.formerRandomStateOrder`, as checkpoints held them before states were named.
    case unnamed([[String]])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let list = try? c.decode([[String]].self) {
            self = .unnamed(list)
        } else {
            self = .named(try c.decode([String: [String]].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .named(let states): try c.encode(states)
        case .unnamed(let list): try c.encode(list)
        }
    }
}

/// Asks a training run to stop, from any thread: the trainer finishes the step under way, writes a checkpoint and
/// returns.
public final class CancellationToken: Sendable {
    private let cancelled = Mutex(false)

    public init() {}

    public func cancel() { cancelled.withLock { $0 = true } }

    public var isCancelled: Bool { cancelled.withLock { $0 } }
}

/// The parameters that one module owns (a linear layer's weight and bias, a norm's weight), under the module's
/// name: the unit in which a step hands over its gradients.
public struct ParameterGroup {
    public let name: String
    public let parameters: [Tensor]
}

/// The training figures of a logging step: means over the batches since the previous one.
public struct TrainingMetrics {
    public let step: Int
    /// The epoch under way (0-based).
    public let epoch: Int
    public let loss, crossEntropy, auxLoss: Double
    public let expertLoad: [Float]
    /// Tokens per second of training (validation and checkpoints left out).
    public let tokensPerSecond: Double
    public let learningRate: Float
}

/// Where a training run calls out; each hook does nothing unless set.
public struct TrainingHooks {
    /// Once per parameter group, in the order of the model's parameters, after the step's last backward, when the
    /// group's gradients are complete (before clipping): where data-parallel training averages them.
    public var gradientsReady: (ParameterGroup) throws -> Void = { _ in }
    /// Before the optimizer updates the parameters, with the number of the step about to be taken.
    public var willStep: (Int) throws -> Void = { _ in }
    /// After a logging step's figures are written.
    public var didLog: (TrainingMetrics) -> Void = { _ in }
    /// After a validation, with the step it followed.
    public var didEvaluate: (_ step: Int, EvaluationResult) -> Void = { _, _ in }
    /// After a checkpoint is written.
    public var didSaveCheckpoint: (URL) -> Void = { _ in }

    public init() {}
}

/// What one call to `Trainer.step()` did.
public struct StepResult {
    /// Each batch's loss; empty when the epoch's data had ended before this step (no step was taken).
    public let losses: [Double]
    /// The tokens trained on.
    public let tokens: Int
    /// The epoch's data is used up: the run goes on with `endEpoch()`.
    public let epochEnded: Bool
}

/// Trains a language model on batches from a loader: the loop, validation, logs, checkpoints and resume. It prints
/// nothing: progress goes through `hooks`, and `cancellation` stops it.
public final class Trainer {
    public static let stateFile = "trainer_state.json"
    public static let optimizerFile = "optimizer.safetensors"
    public static let tokenizerFile = "tokenizer.json"

    public let model: any LanguageModel
    public let tokenizer: Tokenizer
    public let optimizer: Optimizer
    public let schedule: (any LearningRateSchedule)?
    public let trainData: BatchLoader
    public let validationData: BatchLoader?
    public let options: TrainingOptions
    public let cancellation: CancellationToken
    public var hooks = TrainingHooks()
    public private(set) var state = TrainerState()
    /// The model's parameters grouped by the module that owns them, for `hooks.gradientsReady`.
    public let parameterGroups: [ParameterGroup]

    private let seed: UInt64
    private var lastCheckpoint: URL?
    /// The epoch whose `epoch_N/` this run wrote last.
    private var lastEpochSaved: Int?
    /// The batches of the epoch under way, from the position in `state`; opened by the first step that needs it.
    private var stream: BatchStream?
    /// The figures since the last log line, and what `train()` gathers for its logs and summary.
    private var window = MetricsWindow()
    private var log: MetricsLog?
    private var firstLoss: Double?, lastLoss: Double?
    private var validation: EvaluationResult?
    /// Seconds spent validating and writing checkpoints in this `train()` call (left out of tokens/s).
    private var overheadSeconds = 0.0

    public init(model: any LanguageModel, tokenizer: Tokenizer, optimizer: Optimizer, schedule: (any LearningRateSchedule)? = nil,
                trainData: BatchLoader, validationData: BatchLoader? = nil, seed: UInt64, options: TrainingOptions,
                cancellation: CancellationToken = CancellationToken()) {
        self.model = model
        self.tokenizer = tokenizer
        self.optimizer = optimizer
        self.schedule = schedule
        self.trainData = trainData
        self.validationData = validationData
        self.seed = seed
        self.options = options
        self.cancellation = cancellation
        parameterGroups = model.namedModules().compactMap { name, module in
            module.ownParameters.isEmpty ? nil : ParameterGroup(name: name, parameters: module.ownParameters.map(\.1))
        }
        state.seed = seed
        state.batchSize = trainData.configuration.batchSize
        state.gradientAccumulationSteps = options.gradientAccumulationSteps
    }

    deinit { stream?.cancel() }

    /// Steps per epoch, when the loader knows how many batches an epoch has.
    public var stepsPerEpoch: Int? { options.stepsPerEpoch(batchesPerEpoch: trainData.batchesPerEpoch) }

    /// The number of steps the run will take, when known.
    public var totalSteps: Int? { options.totalSteps(batchesPerEpoch: trainData.batchesPerEpoch) }

    /// True once the epochs or `maxSteps` are done.
    public var isFinished: Bool {
        if let m = options.maxSteps, state.globalStep >= m { return true }
        return state.epoch >= options.numEpochs
    }

    // MARK: - The loop

    /// Trains until the run is finished or cancelled. Writes checkpoints as the options say (and one when
    /// cancelled), and the final model (with its tokenizer) into the output directory when the run completes.
    /// First removes the partial directories that a killed run left in the output directory. When the final model
    /// cannot be written, the trained state is kept in a checkpoint, which the error names.
    public func train() throws -> TrainingSummary {
        try removePartialDirectories()
        log = try MetricsLog(directory: options.loggingDirectory)
        defer {
            try? log?.close()
            log = nil
            stream?.cancel()
            stream = nil
        }
        let start = Date(), tokensAtStart = state.tokensSeen
        (window, firstLoss, lastLoss, validation, overheadSeconds) = (MetricsWindow(), nil, nil, nil, 0)
        model.train()
        while !isFinished {
            let result = try step()
            if !result.losses.isEmpty {
                try record(result)
                if cancellation.isCancelled {
                    try saveCheckpoint()
                    return summary(interrupted: true, start, tokensAtStart)
                }
            }
            if result.epochEnded { try endEpoch() }
        }
        if state.batchInEpoch > 0 { try validate() }   // stopped inside an epoch: validate once more
        let lastEpoch = state.batchInEpoch > 0 ? state.epoch + 1 : state.epoch
        do {
            if options.saveEveryEpochs != nil, lastEpoch > 0, lastEpochSaved != lastEpoch {
                try overhead { try saveEpochModel(lastEpoch) }
            }
            try saveFinalModel()
        } catch {
            throw keepTrainedState(after: error)
        }
        return summary(interrupted: false, start, tokensAtStart)
    }

    /// One optimizer step on the next `gradientAccumulationSteps` batches of the epoch under way: each batch's
    /// forward and backward (its loss scaled by 1 / batches), the non-finite-loss guard, the schedule, clipping and
    /// the update, with `gradientsReady` and `willStep` around them. The model should be in training mode.
    public func step() throws -> StepResult {
        if stream == nil { stream = trainData.batches(epoch: state.epoch, startingAt: state.batchInEpoch) }
        var batches: [Batch] = []
        while batches.count < options.gradientAccumulationSteps, let batch = try stream!.next() { batches.append(batch) }
        guard !batches.isEmpty else { return StepResult(losses: [], tokens: 0, epochEnded: true) }
        schedule?.apply(to: optimizer, step: state.globalStep)
        let scale = 1 / Float(batches.count)
        var losses: [Double] = []
        for batch in batches {
            let out = try model(batch.inputIDs, attentionMask: batch.attentionMask, tokenTypeIDs: nil, labels: batch.labels)
            let loss = Double(out.loss.item)
            guard loss.isFinite else {
                let kept = lastCheckpoint.map { "; the last good checkpoint is \($0.path)" } ?? ""
                throw AlbertMoEError.cannotContinue("the loss is \(loss) at step \(state.globalStep + 1) (epoch \(state.epoch + 1)): "
                                    + "training stopped\(kept). Try a lower learning rate or --max_grad_norm.")
            }
            (out.loss * scale).backward()
            window.add(loss: loss, ce: Double(out.ceLoss.item), aux: Double(out.auxLoss.item), load: out.expertLoad,
                       tokens: batch.tokenCount)
            losses.append(loss)
        }
        for group in parameterGroups { try hooks.gradientsReady(group) }
        if let maxNorm = options.maxGradNorm { clipGradNorm(optimizer.parameters, maxNorm: maxNorm) }
        try hooks.willStep(state.globalStep + 1)
        optimizer.step()
        optimizer.zeroGrad()
        state.globalStep += 1
        state.batchInEpoch += batches.count
        let tokens = batches.reduce(0) { $0 + $1.tokenCount }
        state.tokensSeen += tokens
        return StepResult(losses: losses, tokens: tokens,
                          epochEnded: trainData.batchesPerEpoch.map { state.batchInEpoch >= $0 } ?? false)
    }

    /// Completes the epoch under way after a step said it ended: the position moves to the next epoch, then
    /// validation, a checkpoint and, when due, the epoch's model directory.
    public func endEpoch() throws {
        stream?.cancel()
        stream = nil
        guard state.batchInEpoch > 0 else {
            throw AlbertMoEError.cannotContinue("the training data produced no batch in epoch \(state.epoch + 1)")
        }
        state.epoch += 1
        state.batchInEpoch = 0
        try validate()
        try overhead { try saveCheckpoint() }
        if let every = options.saveEveryEpochs, state.epoch % every == 0 || state.epoch == options.numEpochs {
            try overhead { try saveEpochModel(state.epoch) }
        }
    }

    /// What falls due after a step: the log line, validation and a checkpoint.
    private func record(_ result: StepResult) throws {
        firstLoss = firstLoss ?? result.losses.first
        lastLoss = result.losses.last
        if state.globalStep % options.loggingSteps == 0 {
            let metrics = window.drain(step: state.globalStep, epoch: state.epoch, learningRate: optimizer.learningRate)
            let fraction = trainData.batchesPerEpoch.map { $0 > 0 ? Double(state.batchInEpoch) / Double($0) : 0 } ?? 0
            var scalars: [(String, Double)] = [("train/loss", metrics.loss),
                                               ("train/\(model.objective.rawValue)_loss", metrics.crossEntropy),
                                               ("train/aux_loss", metrics.auxLoss),
                                               ("train/tokens_per_s", metrics.tokensPerSecond),
                                               ("train/learning_rate", Double(metrics.learningRate)),
                                               ("train/epoch", Double(state.epoch) + fraction)]
            scalars += MetricsLog.expertLoadScalars(metrics.expertLoad)
            log?.log(step: state.globalStep, scalars)
            hooks.didLog(metrics)
        }
        if let every = options.evalSteps, state.globalStep % every == 0 { try validate() }
        if state.globalStep % options.saveSteps == 0 { try overhead { try saveCheckpoint() } }
    }

    /// Runs validation or checkpointing, leaving its time out of the tokens/s figures.
    @discardableResult
    private func overhead<T>(_ body: () throws -> T) rethrows -> T {
        let t0 = Date()
        defer {
            let seconds = Date().timeIntervalSince(t0)
            overheadSeconds += seconds
            window.exclude(seconds)
        }
        return try body()
    }

    /// Validates (when there is validation data), logs the result and tells `hooks.didEvaluate`.
    private func validate() throws {
        guard let result = try overhead({ try evaluate() }) else { return }
        validation = result
        log?.log(step: state.globalStep, [("eval/loss", result.loss), ("eval/perplexity", result.perplexity)])
        hooks.didEvaluate(state.globalStep, result)
    }

    private func summary(interrupted: Bool, _ start: Date, _ tokensAtStart: Int) -> TrainingSummary {
        let seconds = max(Date().timeIntervalSince(start) - overheadSeconds, 1e-9)
        return TrainingSummary(state: state, interrupted: interrupted, firstLoss: firstLoss, lastLoss: lastLoss,
                               validation: validation, tokensPerSecond: Double(state.tokensSeen - tokensAtStart) / seconds,
                               lastCheckpoint: lastCheckpoint)
    }

    // MARK: - Validation

    /// Token-weighted mean cross-entropy over the validation data (dropout off, no graph), or nil without
    /// validation data.
    public func evaluate() throws -> EvaluationResult? {
        guard let validationData else { return nil }
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        var sum = 0.0, count = 0
        try withNoGrad {
            let stream = validationData.batches(epoch: 0)
            defer { stream.cancel() }
            while let batch = try stream.next() {
                let n = model.predictedTokenCount(batch.labels)
                guard n > 0 else { continue }
                let out = try model(batch.inputIDs, attentionMask: batch.attentionMask, tokenTypeIDs: nil, labels: batch.labels)
                sum += Double(out.ceLoss.item) * Double(n)
                count += n
            }
        }
        guard count > 0 else { return nil }
        return EvaluationResult(loss: sum / Double(count), tokens: count)
    }

    // MARK: - Checkpoints

    /// Writes `checkpoint-STEP/` (config, weights, tokenizer, optimizer state, trainer state) atomically. Older
    /// checkpoints beyond the limit are removed.
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        let final = try writeCheckpoint(in: options.outputDirectory)
        lastCheckpoint = final
        try removeOldCheckpoints()
        hooks.didSaveCheckpoint(final)
        return final
    }

    /// Writes `checkpoint-STEP/` into `parent`.
    private func writeCheckpoint(in parent: URL) throws -> URL {
        try writeDirectory("checkpoint-\(state.globalStep)", in: parent, what: "checkpoint") { partial in
            try model.save(to: partial)
            try tokenizer.saveFiles(to: partial)
            try optimizer.saveState(to: partial.appendingPathComponent(Self.optimizerFile))
            state.randomState = .named(model.randomState.mapValues { $0.map { String($0, radix: 16) } })
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: partial.appendingPathComponent(Self.stateFile), options: .atomic)
        }
    }

    /// The error to throw when the final saves failed with `error`, after making sure that the steps trained since
    /// the last checkpoint are not lost: a checkpoint of this step already written, else a new one in the output
    /// directory, else one under `options.fallbackDirectory`. The error names where the trained state is.
    private func keepTrainedState(after error: Error) -> AlbertMoEError {
        var failures = ["\(error)"]
        var kept = lastCheckpoint.flatMap { $0.lastPathComponent == "checkpoint-\(state.globalStep)" ? $0 : nil }
        if kept == nil {
            do { kept = try saveCheckpoint() } catch { failures.append("\(error)") }
        }
        if kept == nil {
            let rescue = options.fallbackDirectory.appendingPathComponent("albertmoe-\(options.outputDirectory.lastPathComponent)-"
                                                                         + UUID().uuidString)
            do {
                kept = try writeCheckpoint(in: rescue)
                lastCheckpoint = kept
            } catch { failures.append("\(error)") }
        }
        let what = "the final model could not be written (\(failures.joined(separator: "; ")))"
        guard let kept else {
            let older = lastCheckpoint.map { "; the last checkpoint is \($0.path)" } ?? ""
            return .cannotContinue("\(what): the steps since the last checkpoint are lost\(older)")
        }
        return .cannotContinue("\(what). The trained state of step \(state.globalStep) is kept in \(kept.path): resume from it "
                               + "(--resume_from_checkpoint \(kept.path)) to write the model")
    }

    /// Writes `epoch_N/`, a model directory (config, weights, tokenizer) that every command taking a model loads,
    /// with the weights as pytorch_model.bin too, for the Python package.
    @discardableResult
    public func saveEpochModel(_ epoch: Int) throws -> URL {
        let url = try writeDirectory("epoch_\(epoch)", in: options.outputDirectory, what: "the model of epoch \(epoch)") { partial in
            try model.save(to: partial)
            try ModelDirectory.writePyTorch(model, config: model.config, to: partial)
            try tokenizer.saveFiles(to: partial)
        }
        lastEpochSaved = epoch
        return url
    }

    /// Writes `name/` in `parent` atomically: `fill` assembles it in a hidden directory (see `isPartialDirectory`),
    /// which is then renamed into place (replacing an older one of that name).
    private func writeDirectory(_ name: String, in parent: URL, what: String, _ fill: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        let final = parent.appendingPathComponent(name)
        let partial = parent.appendingPathComponent(".\(name)\(Self.partialMarker)\(UUID().uuidString)")
        do {
            try fm.createDirectory(at: partial, withIntermediateDirectories: true)
            try fill(partial)
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(at: partial, to: final)
        } catch {
            try? fm.removeItem(at: partial)
            throw AlbertMoEError.badFile(path: final.path, reason: "cannot write \(what): \(error)")
        }
        return final
    }

    private static let partialMarker = ".partial-"

    /// Whether `name` is that of a directory being assembled by `writeDirectory`: `.NAME.partial-UUID`.
    static func isPartialDirectory(_ name: String) -> Bool {
        guard name.hasPrefix("."), let marker = name.range(of: partialMarker, options: .backwards) else { return false }
        return UUID(uuidString: String(name[marker.upperBound...])) != nil
    }

    /// Removes the partial directories in the output directory: those of a run killed while writing (a run that
    /// is not killed removes its own).
    private func removePartialDirectories() throws {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: options.outputDirectory.path)) ?? []
        for name in names where Self.isPartialDirectory(name) {
            let url = options.outputDirectory.appendingPathComponent(name)
            do { try fm.removeItem(at: url) } catch {
                throw AlbertMoEError.badFile(path: url.path, reason: "cannot remove this unfinished write of a killed run: \(error)")
            }
        }
    }

    /// The checkpoints in the output directory, oldest first.
    public static func checkpoints(in directory: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("checkpoint-"), let step = Int(name.dropFirst("checkpoint-".count)) else { return nil }
            return (step, directory.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }

    private func removeOldCheckpoints() throws {
        guard let limit = options.saveTotalLimit else { return }
        let all = Self.checkpoints(in: options.outputDirectory)
        for old in all.dropLast(limit) { try FileManager.default.removeItem(at: old.url) }
    }

    /// The trained model and its tokenizer in the output directory, loadable by the inference commands.
    public func saveFinalModel() throws {
        try model.save(to: options.outputDirectory)
        try tokenizer.saveFiles(to: options.outputDirectory)
    }

    /// Continues from a checkpoint written by `saveCheckpoint()`: weights, optimizer state, data position and
    /// dropout generators, so the run goes on exactly as if it had never stopped. The logs of the steps after the
    /// checkpoint's (a run killed after it logged them) are dropped, as this run logs them again.
    public func resume(from checkpoint: URL) throws {
        let stateURL = checkpoint.appendingPathComponent(Self.stateFile)
        guard FileManager.default.fileExists(atPath: stateURL.path) else {
            throw AlbertMoEError.badFile(path: checkpoint.path, reason: "not a checkpoint: it holds no \(Self.stateFile)")
        }
        let saved: TrainerState
        do { saved = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: stateURL)) } catch {
            throw AlbertMoEError.badFile(path: stateURL.path, reason: "damaged: \(error)")
        }
        let (config, architecture) = try ModelDirectory.readConfig(checkpoint)
        guard config == model.config else {
            throw AlbertMoEError.badFile(path: checkpoint.path, reason: "holds a model with another configuration than this "
                                         + "run's; resume with the same model options")
        }
        if let architecture, architecture != model.architecture {
            throw AlbertMoEError.badFile(path: checkpoint.path, reason: "it holds an \(architecture), this run trains an "
                                         + "\(model.architecture): resume with the same task")
        }
        for (name, was, now) in [("--seed", String(saved.seed), String(seed)),
                                 ("--batch_size", String(saved.batchSize), String(trainData.configuration.batchSize)),
                                 ("--gradient_accumulation_steps", String(saved.gradientAccumulationSteps),
                                  String(options.gradientAccumulationSteps))] where was != now {
            throw AlbertMoEError.badFile(path: checkpoint.path, reason: "trained with \(name) \(was), this run has \(now): "
                                         + "resume with the same data options")
        }
        let holders = Set(model.randomState.keys)
        let named: [String: [String]]?
        switch saved.randomState {
        case .named(let states): named = states
        case .unnamed(let list):
            let order = Expert.formerRandomStateOrder(of: model)
            named = list.count != order.count ? nil
                : Dictionary(uniqueKeysWithValues: zip(order, list)).filter { holders.contains($0.key) }
        }
        let words = named?.mapValues { $0.compactMap { UInt64($0, radix: 16) } }
        guard let named, let words, Set(words.keys) == holders,
              words.values.allSatisfy({ $0.count == SeededGenerator.stateWordCount }) else {
            throw AlbertMoEError.badFile(path: stateURL.path, reason: "random_state does not fit this model")
        }
        let weights = try ModelDirectory.weightsURL(in: checkpoint)
        try ModelDirectory.load(try ModelDirectory.readWeightsFile(weights), into: model, encoderPrefixed: true, file: weights)
        try optimizer.loadState(from: checkpoint.appendingPathComponent(Self.optimizerFile))
        model.randomState = words
        state = saved
        state.randomState = .named(named)
        stream?.cancel()
        stream = nil
        lastCheckpoint = checkpoint
        do { try MetricsLog.discardRecords(after: saved.globalStep, in: options.loggingDirectory) } catch {
            throw AlbertMoEError.badFile(path: options.loggingDirectory.path, reason: "cannot drop the logs of the steps after "
                                         + "step \(saved.globalStep), which this run trains again: \(error)")
        }
    }
}

/// Running sums of the training figures between two log lines.
struct MetricsWindow {
    private var loss = 0.0, ce = 0.0, aux = 0.0, batches = 0, tokens = 0
    private var load: [Double] = []
    private var start = Date()
    /// Time spent on something else than training (validation, checkpoints) since `start`.
    private var excluded = 0.0

    mutating func exclude(_ seconds: Double) { excluded += seconds }

    mutating func add(loss: Double, ce: Double, aux: Double, load: [Float], tokens: Int) {
        self.loss += loss; self.ce += ce; self.aux += aux; batches += 1; self.tokens += tokens
        if self.load.count != load.count { self.load = [Double](repeating: 0, count: load.count) }
        for i in load.indices { self.load[i] += Double(load[i]) }
    }

    /// The means since the last call, then starts a new window.
    mutating func drain(step: Int, epoch: Int, learningRate: Float) -> TrainingMetrics {
        let n = Double(max(batches, 1)), seconds = max(Date().timeIntervalSince(start) - excluded, 1e-9)
        let m = TrainingMetrics(step: step, epoch: epoch, loss: loss / n, crossEntropy: ce / n, auxLoss: aux / n,
                                expertLoad: load.map { Float($0 / n) }, tokensPerSecond: Double(tokens) / seconds,
                                learningRate: learningRate)
        self = MetricsWindow()
        return m
    }
}
