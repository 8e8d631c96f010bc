import Foundation
import Layers
import Optimizers
import Tokenizers
#if canImport(Glibc)
import Glibc
#endif

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
    /// A one-line progress bar (for a terminal) rather than periodic plain lines.
    public var progressBar = isatty(STDERR_FILENO) != 0

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
    /// The model's dropout generators, as hexadecimal words.
    public var randomState: [[String]] = []
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

/// A training run that cannot go on, saying why.
public struct TrainingError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
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
    /// True when Ctrl-C stopped the run early (a checkpoint was written).
    public let interrupted: Bool
    public let firstLoss: Double?
    public let lastLoss: Double?
    public let validation: EvaluationResult?
    public let tokensPerSecond: Double
    public let lastCheckpoint: URL?
}

/// Trains a language model on batches from a loader: the loop, validation, logs, checkpoints and resume.
public final class Trainer {
    public static let stateFile = "trainer_state.json"
    public static let optimizerFile = "optimizer.safetensors"
    public static let tokenizerFile = "tokenizer.json"

    public let model: AlbertLMModel
    public let tokenizer: Tokenizer
    public let optimizer: Optimizer
    public let schedule: (any LearningRateSchedule)?
    public let trainData: BatchLoader
    public let validationData: BatchLoader?
    public let options: TrainingOptions
    public private(set) var state = TrainerState()
    /// Called with each line of progress text (default: standard error).
    public var report: (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }

    private let seed: UInt64
    private var lastCheckpoint: URL?
    /// The epoch whose `epoch_N/` this run wrote last.
    private var lastEpochSaved: Int?
    /// The step this trainer started from (0, or the resumed checkpoint's), for the ETA.
    private var startStep = 0
    /// Seconds spent validating and writing checkpoints in this `train()` call (left out of tokens/s).
    private var overheadSeconds = 0.0

    public init(model: AlbertLMModel, tokenizer: Tokenizer, optimizer: Optimizer, schedule: (any LearningRateSchedule)? = nil,
                trainData: BatchLoader, validationData: BatchLoader? = nil, seed: UInt64, options: TrainingOptions) {
        self.model = model
        self.tokenizer = tokenizer
        self.optimizer = optimizer
        self.schedule = schedule
        self.trainData = trainData
        self.validationData = validationData
        self.seed = seed
        self.options = options
        state.seed = seed
        state.batchSize = trainData.configuration.batchSize
        state.gradientAccumulationSteps = options.gradientAccumulationSteps
    }

    /// Steps per epoch, when the loader knows how many batches an epoch has.
    public var stepsPerEpoch: Int? { options.stepsPerEpoch(batchesPerEpoch: trainData.batchesPerEpoch) }

    /// The number of steps the run will take, when known.
    public var totalSteps: Int? { options.totalSteps(batchesPerEpoch: trainData.batchesPerEpoch) }

    // MARK: - The loop

    /// Trains until the epochs or `maxSteps` are done, or Ctrl-C. Writes checkpoints as the options say, and
    /// the final model (with its tokenizer) into the output directory when the run completes.
    public func train() throws -> TrainingSummary {
        let log = try MetricsLog(directory: options.loggingDirectory)
        defer { try? log.close() }
        let interrupt = InterruptWatcher()
        defer { interrupt.stop() }
        let isCausal = model is AlbertForCausalLM
        let lossName = isCausal ? "train/clm_loss" : "train/mlm_loss"
        let accumulation = options.gradientAccumulationSteps
        let total = totalSteps
        let runStart = Date()
        overheadSeconds = 0
        let tokensAtStart = state.tokensSeen
        var window = MetricsWindow(), firstLoss: Double? = nil, lastLoss: Double? = nil
        var validation: EvaluationResult? = nil
        model.train()

        /// Runs validation or checkpointing, leaving its time out of the tokens/s figures.
        func overhead<T>(_ body: () throws -> T) rethrows -> T {
            let t0 = Date()
            defer {
                let seconds = Date().timeIntervalSince(t0)
                overheadSeconds += seconds
                window.exclude(seconds)
            }
            return try body()
        }

        func finished() -> Bool {
            if let m = options.maxSteps, state.globalStep >= m { return true }
            return state.epoch >= options.numEpochs
        }

        while !finished() {
            let stream = trainData.batches(epoch: state.epoch, startingAt: state.batchInEpoch)
            defer { stream.cancel() }
            var epochEnded = false
            while !finished() {
                var batches: [Batch] = []
                while batches.count < accumulation, let batch = try stream.next() { batches.append(batch) }
                if batches.isEmpty {
                    epochEnded = true
                    break
                }
                schedule?.apply(to: optimizer, step: state.globalStep)
                let scale = 1 / Float(batches.count)
                for batch in batches {
                    let out = model(batch.inputIDs, attentionMask: batch.attentionMask, labels: batch.labels)
                    let loss = Double(out.loss.item)
                    guard loss.isFinite else {
                        let kept = lastCheckpoint.map { "; the last good checkpoint is \($0.path)" } ?? ""
                        throw TrainingError("the loss is \(loss) at step \(state.globalStep + 1) (epoch \(state.epoch + 1)): "
                                            + "training stopped\(kept). Try a lower learning rate or --max_grad_norm.")
                    }
                    (out.loss * scale).backward()
                    window.add(loss: loss, ce: Double(out.ceLoss.item), aux: Double(out.auxLoss.item),
                               load: out.expertLoad, tokens: batch.tokenCount)
                    if firstLoss == nil { firstLoss = loss }
                    lastLoss = loss
                }
                if let maxNorm = options.maxGradNorm { clipGradNorm(optimizer.parameters, maxNorm: maxNorm) }
                optimizer.step()
                optimizer.zeroGrad()
                state.globalStep += 1
                state.batchInEpoch += batches.count
                state.tokensSeen += batches.reduce(0) { $0 + $1.tokenCount }

                if state.globalStep % options.loggingSteps == 0 {
                    let figures = window.drain()
                    var scalars: [(String, Double)] = [("train/loss", figures.loss), (lossName, figures.ce),
                                                       ("train/aux_loss", figures.aux),
                                                       ("train/tokens_per_s", figures.tokensPerSecond),
                                                       ("train/learning_rate", Double(optimizer.learningRate)),
                                                       ("train/epoch", Double(state.epoch) + epochFraction())]
                    scalars += MetricsLog.expertLoadScalars(figures.load)
                    log.log(step: state.globalStep, scalars)
                    showProgress(figures, total: total, runStart: runStart)
                }
                if let every = options.evalSteps, state.globalStep % every == 0, let result = try overhead({ try evaluate() }) {
                    validation = result
                    record(result, in: log)
                }
                if state.globalStep % options.saveSteps == 0 { try overhead { try saveCheckpoint() } }
                if interrupt.requested {
                    if options.progressBar { report("\n") }
                    let checkpoint = try saveCheckpoint()
                    report("Interrupted: saved \(checkpoint.path). Resume with --resume_from_checkpoint \(checkpoint.path)\n")
                    return summary(interrupted: true, firstLoss, lastLoss, validation, runStart, tokensAtStart)
                }
                if let n = trainData.batchesPerEpoch, state.batchInEpoch >= n {
                    epochEnded = true
                    break
                }
            }
            guard epochEnded else { break }
            guard state.batchInEpoch > 0 else {
                throw TrainingError("the training data produced no batch in epoch \(state.epoch + 1)")
            }
            // The epoch is complete: validate and checkpoint at its end, then start the next one.
            state.epoch += 1
            state.batchInEpoch = 0
            if let result = try overhead({ try evaluate() }) {
                validation = result
                record(result, in: log)
            }
            try overhead { try saveCheckpoint() }
            if let every = options.saveEveryEpochs, state.epoch % every == 0 || state.epoch == options.numEpochs {
                try overhead { try saveEpochModel(state.epoch) }
            }
        }
        if state.batchInEpoch > 0, let result = try overhead({ try evaluate() }) {   // stopped inside an epoch: validate once more
            validation = result
            record(result, in: log)
        }
        let lastEpoch = state.batchInEpoch > 0 ? state.epoch + 1 : state.epoch
        if options.saveEveryEpochs != nil, lastEpoch > 0, lastEpochSaved != lastEpoch {
            try overhead { try saveEpochModel(lastEpoch) }
        }
        if options.progressBar { report("\n") }
        try saveFinalModel()
        return summary(interrupted: false, firstLoss, lastLoss, validation, runStart, tokensAtStart)
    }

    private func epochFraction() -> Double {
        guard let n = trainData.batchesPerEpoch, n > 0 else { return 0 }
        return Double(state.batchInEpoch) / Double(n)
    }

    private func summary(interrupted: Bool, _ first: Double?, _ last: Double?, _ validation: EvaluationResult?,
                         _ start: Date, _ tokensAtStart: Int) -> TrainingSummary {
        let seconds = max(Date().timeIntervalSince(start) - overheadSeconds, 1e-9)
        return TrainingSummary(state: state, interrupted: interrupted, firstLoss: first, lastLoss: last,
                               validation: validation, tokensPerSecond: Double(state.tokensSeen - tokensAtStart) / seconds,
                               lastCheckpoint: lastCheckpoint)
    }

    private func record(_ result: EvaluationResult, in log: MetricsLog) {
        log.log(step: state.globalStep, [("eval/loss", result.loss), ("eval/perplexity", result.perplexity)])
        if options.progressBar { report("\n") }
        report(String(format: "step %d: validation loss %.4f, perplexity %.2f (%d tokens)\n",
                      state.globalStep, result.loss, result.perplexity, result.tokens))
    }

    private func showProgress(_ f: MetricsWindow.Figures, total: Int?, runStart: Date) {
        var eta = ""
        if let total, total > 0 {
            let perStep = Date().timeIntervalSince(runStart) / Double(max(state.globalStep - startStep, 1))
            eta = " ETA " + Self.duration(perStep * Double(max(total - state.globalStep, 0)))
        }
        let stepText = total.map { "\(state.globalStep)/\($0)" } ?? "\(state.globalStep)"
        let line = String(format: "step %@ epoch %d loss %.4f aux %.3f %.0f tok/s%@", stepText, state.epoch + 1,
                          f.loss, f.aux, f.tokensPerSecond, eta)
        if options.progressBar {
            var bar = ""
            if let total, total > 0 {
                let filled = min(30, 30 * state.globalStep / total)
                bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
            }
            report("\r\u{1B}[2K" + bar + line)
        } else {
            report(line + "\n")
        }
    }


    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }

    // MARK: - Validation

    /// Token-weighted mean cross-entropy over the validation data (dropout off, no graph), or nil without
    /// validation data.
    public func evaluate() throws -> EvaluationResult? {
        guard let validationData else { return nil }
        let wasTraining = model.isTraining
        model.eval()
        defer { model.train(wasTraining) }
        let causal = model is AlbertForCausalLM
        var sum = 0.0, count = 0
        try withNoGrad {
            let stream = validationData.batches(epoch: 0)
            defer { stream.cancel() }
            while let batch = try stream.next() {
                let n = Self.predictedTokens(batch.labels, causal: causal)
                guard n > 0 else { continue }
                let out = model(batch.inputIDs, attentionMask: batch.attentionMask, labels: batch.labels)
                sum += Double(out.ceLoss.item) * Double(n)
                count += n
            }
        }
        guard count > 0 else { return nil }
        return EvaluationResult(loss: sum / Double(count), tokens: count)
    }

    /// The number of positions a loss is taken over: labels that are not -100 (for a causal model, the labels
    /// of positions 1..<T, which positions 0..<T-1 predict).
    static func predictedTokens(_ labels: IntTensor, causal: Bool) -> Int {
        guard causal else { return labels.scalars.reduce(0) { $0 + ($1 != -100 ? 1 : 0) } }
        let t = labels.shape[1]
        var n = 0
        for row in 0..<labels.shape[0] {
            for j in 1..<max(t, 1) where labels.scalars[row * t + j] != -100 { n += 1 }
        }
        return n
    }

    // MARK: - Checkpoints

    /// Writes `checkpoint-STEP/` (config, weights, tokenizer, optimizer state, trainer state) atomically. Older
    /// checkpoints beyond the limit are removed.
    @discardableResult
    public func saveCheckpoint() throws -> URL {
        let final = try writeDirectory("checkpoint-\(state.globalStep)", what: "checkpoint") { partial in
            try model.save(to: partial)
            try writeTokenizer(to: partial)
            try optimizer.saveState(to: partial.appendingPathComponent(Self.optimizerFile))
            state.randomState = model.randomState.map { $0.map { String($0, radix: 16) } }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: partial.appendingPathComponent(Self.stateFile), options: .atomic)
        }
        lastCheckpoint = final
        try removeOldCheckpoints()
        return final
    }

    /// Writes `epoch_N/`, a model directory (config, weights, tokenizer) that every command taking a model loads.
    @discardableResult
    public func saveEpochModel(_ epoch: Int) throws -> URL {
        let url = try writeDirectory("epoch_\(epoch)", what: "the model of epoch \(epoch)") { partial in
            try model.save(to: partial)
            try writeTokenizer(to: partial)
        }
        lastEpochSaved = epoch
        return url
    }

    /// Writes `name/` in the output directory atomically: `fill` assembles it in a hidden directory, which is then
    /// renamed into place (replacing an older one of that name).
    private func writeDirectory(_ name: String, what: String, _ fill: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        let final = options.outputDirectory.appendingPathComponent(name)
        let partial = options.outputDirectory.appendingPathComponent(".\(name).partial-\(UUID().uuidString)")
        do {
            try fm.createDirectory(at: partial, withIntermediateDirectories: true)
            try fill(partial)
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(at: partial, to: final)
        } catch {
            try? fm.removeItem(at: partial)
            throw TrainingError("cannot write \(what) \(final.path): \(error)")
        }
        return final
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

    private func writeTokenizer(to directory: URL) throws {
        try tokenizer.saveFiles(to: directory)
    }

    /// The trained model and its tokenizer in the output directory, loadable by the inference commands.
    public func saveFinalModel() throws {
        try model.save(to: options.outputDirectory)
        try writeTokenizer(to: options.outputDirectory)
    }

    /// Continues from a checkpoint written by `saveCheckpoint()`: weights, optimizer state, data position and
    /// dropout generators, so the run goes on exactly as if it had never stopped.
    public func resume(from checkpoint: URL) throws {
        let stateURL = checkpoint.appendingPathComponent(Self.stateFile)
        guard FileManager.default.fileExists(atPath: stateURL.path) else {
            throw TrainingError("\(checkpoint.path) is not a checkpoint: it holds no \(Self.stateFile)")
        }
        let saved: TrainerState
        do { saved = try JSONDecoder().decode(TrainerState.self, from: Data(contentsOf: stateURL)) } catch {
            throw TrainingError("\(stateURL.path) is damaged: \(error)")
        }
        let (config, _) = try ModelDirectory.readConfig(checkpoint)
        guard config == model.config else {
            throw TrainingError("\(checkpoint.path) holds a model with another configuration than this run's; "
                                + "resume with the same model options")
        }
        for (name, was, now) in [("--seed", String(saved.seed), String(seed)),
                                 ("--batch_size", String(saved.batchSize), String(trainData.configuration.batchSize)),
                                 ("--gradient_accumulation_steps", String(saved.gradientAccumulationSteps),
                                  String(options.gradientAccumulationSteps))] where was != now {
            throw TrainingError("\(checkpoint.path) was trained with \(name) \(was), this run has \(now): "
                                + "resume with the same data options")
        }
        try ModelDirectory.load(try ModelDirectory.readWeights(checkpoint), into: model, encoderPrefixed: true)
        try optimizer.loadState(from: checkpoint.appendingPathComponent(Self.optimizerFile))
        let words = saved.randomState.map { $0.compactMap { UInt64($0, radix: 16) } }
        guard words.count == model.randomState.count, words.allSatisfy({ $0.count == 5 }) else {
            throw TrainingError("\(stateURL.path): random_state does not fit this model")
        }
        model.randomState = words
        state = saved
        startStep = saved.globalStep
        lastCheckpoint = checkpoint
    }
}

/// Running sums of the training figures between two log lines.
struct MetricsWindow {
    struct Figures { var loss = 0.0, ce = 0.0, aux = 0.0, tokensPerSecond = 0.0, load: [Float] = [] }
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
    mutating func drain() -> Figures {
        let n = Double(max(batches, 1)), seconds = max(Date().timeIntervalSince(start) - excluded, 1e-9)
        let f = Figures(loss: loss / n, ce: ce / n, aux: aux / n, tokensPerSecond: Double(tokens) / seconds,
                        load: load.map { Float($0 / n) })
        self = MetricsWindow()
        return f
    }
}

/// Turns Ctrl-C (SIGINT, and SIGTERM) into a request the training loop honours after its current step; a
/// second Ctrl-C ends the process at once.
final class InterruptWatcher {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []

    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                let again = self.flag
                self.flag = true
                self.lock.unlock()
                if again { exit(130) }
                FileHandle.standardError.write(Data("\nStopping after this step (Ctrl-C again to quit at once)...\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }

    var requested: Bool {
        lock.lock(); defer { lock.unlock() }
        return flag
    }

    func stop() {
        for s in sources { s.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
