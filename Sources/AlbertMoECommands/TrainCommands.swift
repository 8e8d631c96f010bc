import AlbertMoE
import ArgumentParser
import Foundation
import Tokenizers

/// `train-clm`: the successor of the Python package's train_clm script.
public struct TrainCLM: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "train-clm",
        abstract: "Pretrain a causal AlbertMoE language model on a local text corpus.")
    @OptionGroup public var options: TrainingArguments
    public func validate() throws { try options.checkTaskType(for: .clm) }
    public func run() throws { try TrainingJob(options: options, task: .clm).run() }
}

/// `train-mlm`: the successor of the Python package's train_mlm script.
public struct TrainMLM: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "train-mlm",
        abstract: "Pretrain a masked AlbertMoE language model on a local text corpus.")
    @OptionGroup public var options: TrainingArguments
    public func validate() throws { try options.checkTaskType(for: .mlm) }
    public func run() throws { try TrainingJob(options: options, task: .mlm).run() }
}

/// `albertmoe train --task_type clm|mlm`.
public struct Train: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Pretrain a causal (clm) or masked (mlm) AlbertMoE language model on a local text corpus.")
    @OptionGroup public var options: TrainingArguments
    public func validate() throws {
        guard options.taskType != nil else { throw ValidationError("--task_type clm|mlm is required") }
    }
    public func run() throws { try TrainingJob(options: options, task: options.taskType!).run() }
}

/// The two pretraining objectives.
public enum LanguageModelingTask: String, ExpressibleByArgument, CaseIterable {
    case clm, mlm
}

/// A training command's work: check the options, build tokenizer, data, model and optimizer, train, and show
/// what the model learned.
struct TrainingJob {
    let options: TrainingArguments
    let task: LanguageModelingTask

    func run() throws {
        switch options.mode {
        case "pretrain": try pretrain()
        case "serve": try serve()
        case "evaluate": try evaluate()
        default:
            try pretrain()
            try evaluate()
        }
    }


    func pretrain() throws {
        let o = options
        if let hub = o.pushToHub {
            say("Warning: --push_to_hub \(hub): this version does not upload to the Hugging Face Hub; the model is saved "
                + "in --model_path \(o.modelPath) only (`huggingface-cli upload \(hub) DIR` uploads a directory).")
        }
        if o.useWandb {
            say("--use_wandb: metrics are written as TensorBoard event files in the logging directory; "
                + "`wandb sync --sync-tensorboard DIR` uploads them to project \(o.wandbProject).")
        }
        let outputURL = URL(fileURLWithPath: o.modelPath)
        let resumeURL = o.resumeFromCheckpoint.map { URL(fileURLWithPath: $0) }
        if let resumeURL, !FileManager.default.fileExists(atPath: resumeURL.appendingPathComponent(Trainer.stateFile).path) {
            throw ValidationError("--resume_from_checkpoint \(resumeURL.path) is not a checkpoint directory (no \(Trainer.stateFile))")
        }

        let corpus = try datasetCorpus()
        let validationCorpus = try o.validationFile.map {
            try TextCorpus(path: URL(fileURLWithPath: $0), textColumn: o.textColumn, split: "validation")
        }
        let split = validationCorpus == nil && o.validationSplitPercentage > 0
            ? SplitRule(percentage: o.validationSplitPercentage, seed: o.seed) : nil

        let tokenizer = try makeTokenizer(corpus: corpus, split: split, resumeFrom: resumeURL, output: outputURL)
        let padID: Int32
        do { padID = try paddingID(of: tokenizer) } catch { throw ValidationError("\(error)") }
        let vocabSize = o.model.vocabSize ?? tokenizer.vocabSize
        guard vocabSize >= tokenizer.vocabSize else {
            throw ValidationError("--vocab_size \(vocabSize) is smaller than the tokenizer's vocabulary (\(tokenizer.vocabSize) tokens)")
        }
        let config = try o.checkTrainingMemory(vocabSize: vocabSize, padTokenID: Int(padID))
        let model: AlbertLMModel = task == .clm ? AlbertForCausalLM(config, seed: o.seed) : AlbertForMaskedLM(config, seed: o.seed)

        let collator: Collator
        if task == .clm {
            collator = CausalLMCollator(padID: padID)
        } else {
            do { collator = try MaskedLMCollator(tokenizer: tokenizer) } catch {
                throw ValidationError("\(error)")
            }
        }
        func loader(_ corpus: TextCorpus, split: SplitRule?, validation: Bool) throws -> BatchLoader {
            let configuration = BatchLoader.Configuration(
                batchSize: o.batchSize, maxLength: o.maxLength, packing: o.packing, shuffle: !validation, seed: o.seed,
                streaming: o.streaming, maxSamples: validation ? nil : o.maxSamples, split: split,
                side: validation ? .validation : .train)
            return try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: collator, configuration: configuration)
        }
        let trainData = try loader(corpus, split: split, validation: false)
        let validationData = try validationCorpus.map { try loader($0, split: nil, validation: true) }
            ?? split.map { try loader(corpus, split: $0, validation: true) }
        if validationCorpus != nil { try validationData?.check() }   // streaming, it would be read at the first validation

        var trainingOptions = TrainingOptions(outputDirectory: outputURL,
                                              loggingDirectory: o.loggingDir.map { URL(fileURLWithPath: $0) })
        trainingOptions.numEpochs = o.numEpochs
        trainingOptions.maxSteps = o.maxSteps
        trainingOptions.gradientAccumulationSteps = o.gradientAccumulationSteps
        trainingOptions.maxGradNorm = o.maxGradNorm
        trainingOptions.loggingSteps = o.loggingSteps
        trainingOptions.evalSteps = o.evalSteps
        trainingOptions.saveSteps = o.saveSteps
        trainingOptions.saveEveryEpochs = o.saveEvery
        trainingOptions.saveTotalLimit = o.saveTotalLimit

        let optimizer = try makeOptimizer(model.parameters())
        // The schedule's length needs the number of steps, which streaming data does not know.
        let schedule = try makeSchedule(totalSteps: trainingOptions.totalSteps(batchesPerEpoch: trainData.batchesPerEpoch))
        let cancellation = CancellationToken()
        let trainer = Trainer(model: model, tokenizer: tokenizer, optimizer: optimizer, schedule: schedule,
                              trainData: trainData, validationData: validationData, seed: o.seed, options: trainingOptions,
                              cancellation: cancellation)
        if let resumeURL {
            try trainer.resume(from: resumeURL)
            say("Resuming from \(resumeURL.path) at step \(trainer.state.globalStep) (epoch \(trainer.state.epoch + 1)).")
        }
        say("Training a \(task == .clm ? "causal" : "masked") model of \(model.parameterCount) parameters on \(corpus.files.count) "
            + "file(s) from \(o.dataset); \(trainer.totalSteps.map { "\($0) steps" } ?? "steps: until the data ends"); "
            + "logs in \(trainingOptions.loggingDirectory.path).")
        let progress = TrainingProgress(totalSteps: trainer.totalSteps, startStep: trainer.state.globalStep)
        progress.observe(trainer)
        let summary = try Interrupts.cancelling(cancellation) { try trainer.train() }
        progress.finish()
        guard !summary.interrupted else {
            let checkpoint = summary.lastCheckpoint!.path   // a cancelled run ends with a checkpoint
            say("Interrupted: saved \(checkpoint). Resume with --resume_from_checkpoint \(checkpoint)")
            return
        }

        var lines = ["Trained \(summary.state.globalStep) steps, \(summary.state.tokensSeen) tokens, "
                     + String(format: "%.0f tokens/s", summary.tokensPerSecond) + "."]
        if let first = summary.firstLoss, let last = summary.lastLoss {
            lines.append(String(format: "Training loss: %.4f at the first step, %.4f at the last.", first, last))
        }
        if let v = summary.validation {
            lines.append(String(format: "Validation loss %.4f, perplexity %.2f over %d tokens.", v.loss, v.perplexity, v.tokens))
        }
        lines.append("The model is in \(outputURL.path).")
        say(lines.joined(separator: "\n"))
        if let causal = model as? AlbertForCausalLM {
            try showCompletions(causal, tokenizer: tokenizer, corpus: validationCorpus ?? corpus)
        }
    }

    /// Greedy completions of the beginnings of a few corpus examples: what the model learned.
    private func showCompletions(_ model: AlbertForCausalLM, tokenizer: Tokenizer, corpus: TextCorpus) throws {
        var prompts: [String] = []
        try corpus.forEachExample { example in
            let words = example.text.split(separator: " ")
            if words.count >= 6 { prompts.append(words.prefix(words.count / 2).joined(separator: " ")) }
            return prompts.count < 3
        }
        guard !prompts.isEmpty else { return }
        let stop = tokenizer.specialTokens.eos.map { Set([Int32($0.id)]) } ?? []
        let greedy = SamplingOptions.greedy(maxNewTokens: min(24, options.genMaxLength), stopTokens: stop)
        say("Sample completions (greedy):")
        for prompt in prompts {
            let ids = try tokenizer.encodeUnpadded(prompt, addSpecialTokens: false).ids.map(Int32.init)
            guard !ids.isEmpty else { continue }
            let new = try model.generate(ids, options: greedy, truncateFromLeft: true)
            let text = try tokenizer.decode(new.filter { !stop.contains($0) }.map(Int.init))
            say("  \(prompt) ⟶ \(text)")
        }
    }

    /// The tokenizer named by --tokenizer_name, the one saved with the checkpoint being resumed, or one trained on
    /// the corpus (byte-level BPE for causal models, WordPiece for masked ones), saved with its roles into the
    /// output directory.
    private func makeTokenizer(corpus: TextCorpus, split: SplitRule?, resumeFrom: URL?, output: URL) throws -> Tokenizer {
        if let name = options.tokenizerName {
            let local = !HubNames.isHubName(name)
            let location = local ? URL(fileURLWithPath: name)
                : try HubNames(token: options.hubToken).tokenizerDirectory(name, flag: "tokenizer_name")
            do { return try Tokenizer.load(from: location) } catch {
                throw ValidationError("--tokenizer_name \(name): \(error)" + (local ? " (a tokenizer.json, a SentencePiece "
                                      + ".model, a model directory holding one, or a Hugging Face model name)" : ""))
            }
        }
        if let resumeFrom {
            return try Tokenizer.load(from: resumeFrom.appendingPathComponent(Trainer.tokenizerFile))
        }
        let roles: [(SpecialTokens.Role, String)] = task == .clm ? [(.pad, "<pad>"), (.eos, "<|endoftext|>")]
            : [(.pad, "[PAD]"), (.unk, "[UNK]"), (.cls, "[CLS]"), (.sep, "[SEP]"), (.mask, "[MASK]")]
        let trainerOptions = TrainerOptions(vocabSize: options.tokenizerVocabSize, minFrequency: 2, specialTokens: roles.map(\.1))
        do { try trainerOptions.validate() } catch { throw ValidationError("--tokenizer_vocab_size: \(error)") }
        say("Training a \(task == .clm ? "byte-level BPE" : "WordPiece") tokenizer of \(options.tokenizerVocabSize) tokens on the corpus...")
        var texts: [String] = [], bytes = 0
        try corpus.forEachExample { example in
            if split?.isValidation(index: example.index) == true { return true }
            texts.append(example.text)
            bytes += example.text.utf8.count
            // A sample of 64 MB is plenty to learn a vocabulary.
            return bytes < 64 << 20 && (options.maxSamples.map { texts.count < $0 } ?? true)
        }
        let tokenizer = task == .clm ? try ByteLevelBPETrainer(options: trainerOptions).train(texts: texts)
            : try WordPieceTrainer(options: trainerOptions).train(texts: texts)
        try tokenizer.declareSpecialTokens(Dictionary(uniqueKeysWithValues: roles))
        try tokenizer.saveFiles(to: output)
        return tokenizer
    }

    /// --dataset: a local file or directory, else the parquet shards of a Hugging Face dataset's --dataset_config and
    /// --dataset_split (from the cache, or downloaded into it).
    func datasetCorpus() throws -> TextCorpus {
        let o = options
        if FileManager.default.fileExists(atPath: o.dataset) {
            return try TextCorpus(path: URL(fileURLWithPath: o.dataset), textColumn: o.textColumn, split: o.datasetSplit)
        }
        guard HubNames.isHubName(o.dataset) else {
            throw ValidationError("--dataset \(o.dataset): no such file or directory (and not a Hugging Face dataset name): "
                                  + "pass a text, JSON-lines, CSV, TSV, Parquet or Arrow file, a directory of them, a save_to_disk "
                                  + "directory, or a name such as wikitext")
        }
        let files = try HubNames(token: o.hubToken).datasetFiles(o.dataset, config: o.datasetConfig, split: o.datasetSplit)
        return try TextCorpus(files: files, path: files[0].deletingLastPathComponent(), textColumn: o.textColumn)
    }

    private func makeOptimizer(_ parameters: [Tensor]) throws -> Optimizer {
        let o = options
        let betas = (o.beta1, o.beta2)
        do {
            switch o.optimizer {
            case "adamw":
                let (lr, eps) = (o.learningRate ?? 1e-3, o.eps ?? 1e-8)
                try AdamW.validate(learningRate: lr, betas: betas, eps: eps, weightDecay: o.weightDecay)
                return AdamW(parameters, learningRate: lr, betas: betas, eps: eps, weightDecay: o.weightDecay)
            case "sgd":
                let lr = o.learningRate ?? 1e-2
                try SGD.validate(learningRate: lr, momentum: o.momentum, weightDecay: o.weightDecay)
                return SGD(parameters, learningRate: lr, momentum: o.momentum, weightDecay: o.weightDecay)
            default:
                let (lr, eps) = (o.learningRate ?? 1, o.eps ?? 1e-3)
                try ChillAdam.validate(minLR: o.minLR, maxLR: o.maxLR, eps: eps, betas: betas, weightDecay: o.weightDecay,
                                       learningRate: lr)
                return ChillAdam(parameters, minLR: o.minLR, maxLR: o.maxLR, eps: eps, betas: betas,
                                 weightDecay: o.weightDecay, learningRate: lr)
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The learning-rate schedule; its peak is --learning_rate (for ChillAdam a factor, 1 by default).
    private func makeSchedule(totalSteps: Int?) throws -> (any LearningRateSchedule)? {
        let o = options
        do {
            let kind = try LearningRateScheduleKind(parsing: o.lrScheduler)
            if kind == .constant && o.warmupSteps == 0 { return nil }
            let peak = o.learningRate ?? (o.optimizer == "adamw" ? 1e-3 : o.optimizer == "sgd" ? 1e-2 : 1)
            guard let total = totalSteps ?? (kind == .constant ? 1 : nil) else {
                throw ValidationError("--lr_scheduler \(o.lrScheduler) needs the number of steps: with --streaming, give --max_steps")
            }
            return try kind.make(learningRate: peak, warmupSteps: o.warmupSteps, totalSteps: max(total, o.warmupSteps))
        } catch let e as ValidationError {
            throw e
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
