import AlbertMoE
import ArgumentParser
import Foundation
import Tokenizers

/// Every option of the training commands (`train-clm`, `train-mlm`, `albertmoe train`), under the Python
/// package's snake_case names and defaults, plus this package's additions. Reusable in a user's own command
/// as `@OptionGroup var training: TrainingArguments`.
public struct TrainingArguments: ParsableArguments {
    public init() {}

    // MARK: Mode
    @Option(name: .customLong("mode"), help: "pretrain, evaluate, serve or all (pretrain, then evaluate).")
    public var mode: String = "all"
    @Option(name: .customLong("model_path"),
            help: "Where the trained model and its checkpoints are written; for serve and evaluate, also a Hugging Face model name.")
    public var modelPath: String = "./albert_from_scratch_output"
    @Option(name: .customLong("task_type"),
            help: "clm (causal) or mlm (masked): required by `albertmoe train`; train-clm and train-mlm accept their own.")
    public var taskType: LanguageModelingTask?

    // MARK: Model
    @OptionGroup(title: "Model") public var model: ModelArguments

    // MARK: Data
    @Option(name: .customLong("dataset"),
            help: ArgumentHelp("A local text, JSON-lines, CSV, TSV, Parquet or Arrow file, a directory of them, a save_to_disk "
                               + "directory, or a Hugging Face dataset name."))
    public var dataset: String = "wikitext"
    @Option(name: .customLong("dataset_config"), help: "The configuration of a Hugging Face dataset.")
    public var datasetConfig: String = "wikitext-2-raw-v1"
    @Option(name: .customLong("dataset_split"),
            help: "The split of a Hugging Face dataset, or of a save_to_disk DatasetDict directory given as --dataset.")
    public var datasetSplit: String = "train"
    @Option(name: .customLong("tokenizer_name"),
            help: ArgumentHelp("A tokenizer.json, a SentencePiece .model, a model directory, or a Hugging Face model name "
                               + "(default: train one on the corpus)."))
    public var tokenizerName: String?
    @Option(name: .customLong("tokenizer_vocab_size"), help: ArgumentHelp("Vocabulary size of a tokenizer trained on the corpus: more than its special tokens, at "
                                     + "most \(TrainerOptions.maxVocabSize)."))
    public var tokenizerVocabSize: Int = 8000
    @Flag(name: .customLong("streaming"), help: "Read the corpus lazily (memory does not grow with its size).")
    public var streaming = false
    @Option(name: .customLong("max_samples")) public var maxSamples: Int?
    @Option(name: .customLong("text_column"), help: "The text field of JSON-lines, CSV, TSV, Parquet (a dotted path inside groups) and Arrow files.")
    public var textColumn: String = "text"
    @Flag(name: .customLong("packing"), help: "Concatenate the examples and cut them into max_length blocks.")
    public var packing = false
    @Option(name: .customLong("validation_file")) public var validationFile: String?
    @Option(name: .customLong("validation_split_percentage"),
            help: "Percent of the corpus held out for validation when there is no --validation_file.")
    public var validationSplitPercentage: Double = 5

    // MARK: Training
    @Option(name: .customLong("num_epochs")) public var numEpochs: Int = 3
    @Option(name: .customLong("max_steps"), help: "Stop after this many optimizer steps (overrides --num_epochs).")
    public var maxSteps: Int?
    @Option(name: .customLong("batch_size")) public var batchSize: Int = 8
    @Option(name: .customLong("max_length")) public var maxLength: Int = 512
    @Option(name: .customLong("save_every"),
            help: "Write the model to MODEL_PATH/epoch_N/ every this many epochs, and after the last epoch.")
    public var saveEvery: Int = 1000
    @Option(name: .customLong("save_steps"),
            help: "Write a resumable checkpoint-STEP/ every this many steps (and at each epoch's end).")
    public var saveSteps: Int = 1000
    @Option(name: .customLong("save_total_limit"), help: "Checkpoints kept (the oldest are deleted).")
    public var saveTotalLimit: Int?
    @Option(name: .customLong("resume_from_checkpoint"), help: "A checkpoint-STEP directory to continue from.")
    public var resumeFromCheckpoint: String?
    @Option(name: .customLong("seed")) public var seed: UInt64 = 42
    @Option(name: .customLong("gradient_accumulation_steps")) public var gradientAccumulationSteps: Int = 1
    @Option(name: .customLong("max_grad_norm"), help: "Clip the gradient norm to this value (default: no clipping).")
    public var maxGradNorm: Float?
    @Option(name: .customLong("eval_steps"), help: "Validate every N steps (always at each epoch's end).")
    public var evalSteps: Int?
    @Option(name: .customLong("logging_steps")) public var loggingSteps: Int = 10
    @Option(name: .customLong("logging_dir"), help: "TensorBoard and JSON-lines logs (default: MODEL_PATH/logs).")
    public var loggingDir: String?

    // MARK: Optimizer
    @Option(name: .customLong("optimizer"), help: "chilladam, adamw or sgd.") public var optimizer: String = "chilladam"
    @Option(name: .customLong("learning_rate"),
            help: "AdamW/SGD learning rate (defaults 1e-3 / 1e-2); for ChillAdam a factor on its own rate (default 1).")
    public var learningRate: Float?
    @Option(name: .customLong("lr_scheduler"), help: "constant, linear or cosine.") public var lrScheduler: String = "constant"
    @Option(name: .customLong("warmup_steps")) public var warmupSteps: Int = 0
    @Option(name: .customLong("min_lr"), help: "ChillAdam's lowest per-parameter rate.") public var minLR: Float = 1e-4
    @Option(name: .customLong("max_lr"), help: "ChillAdam's highest per-parameter rate.") public var maxLR: Float = 1.0
    @Option(name: .customLong("eps"), help: "Adam epsilon (default 1e-3 for ChillAdam, 1e-8 for AdamW).")
    public var eps: Float?
    @Option(name: .customLong("beta1")) public var beta1: Float = 0.9
    @Option(name: .customLong("beta2")) public var beta2: Float = 0.999
    @Option(name: .customLong("weight_decay")) public var weightDecay: Float = 0
    @Option(name: .customLong("momentum"), help: "SGD momentum.") public var momentum: Float = 0.9

    // MARK: Evaluation
    @Option(name: .customLong("eval_tasks"), help: "basic or comprehensive.") public var evalTasks: String = "basic"
    @Option(name: .customLong("sts_file"),
            help: "The STS Benchmark as a local file (TSV, CSV or JSON lines with sentence1, sentence2, score).")
    public var stsFile: String?
    @Option(name: .customLong("custom_tasks"), parsing: .upToNextOption, help: "Local sentence-pair files to evaluate on.")
    public var customTasks: [String] = []

    // MARK: Logging
    @Flag(name: .customLong("use_wandb"), help: "Metrics go to TensorBoard event files; `wandb sync --sync-tensorboard` uploads them.")
    public var useWandb = false
    @Option(name: .customLong("wandb_project")) public var wandbProject: String = "albert-moe"
    @Option(name: .customLong("wandb_name")) public var wandbName: String?

    // MARK: Hub
    @Option(name: .customLong("push_to_hub"), help: "Hub repository id (needs the network).") public var pushToHub: String?
    @Option(name: .customLong("hub_token"),
            help: "A Hugging Face token for private or gated repositories (default: HF_TOKEN, or the saved login).")
    public var hubToken: String?
    @Flag(name: .customLong("hub_private")) public var hubPrivate = false
    @Option(name: .customLong("hub_commit_message")) public var hubCommitMessage: String?

    // MARK: Serving
    @Flag(name: .customLong("interactive")) public var interactive = false
    @Option(name: .customLong("input_text")) public var inputText: String?
    @Option(name: .customLong("gen_max_length"), help: "Tokens in the prompt and its completion together.")
    public var genMaxLength: Int = 100
    @Flag(name: .customLong("truncate_prompt"),
          help: "Cut a prompt too long for the model from the left (with a warning) instead of stopping with an error.")
    public var truncatePrompt = false
    @Option(name: .customLong("temperature")) public var temperature: Float = 1.0
    @Option(name: .customLong("top_k")) public var topK: Int = 50
    @Option(name: .customLong("top_p")) public var topP: Float = 0.95

    public func validate() throws {
        let modes = ["pretrain", "evaluate", "serve", "all"]
        guard modes.contains(mode) else { throw ValidationError("--mode must be one of \(modes.joined(separator: ", ")), got \(mode)") }
        let evalTaskChoices = ["basic", "comprehensive"]
        guard evalTaskChoices.contains(evalTasks) else {
            throw ValidationError("--eval_tasks must be one of \(evalTaskChoices.joined(separator: ", ")), got \(evalTasks)")
        }
        let optimizers = ["chilladam", "adamw", "sgd"]
        guard optimizers.contains(optimizer) else {
            throw ValidationError("--optimizer must be one of \(optimizers.joined(separator: ", ")), got \(optimizer)")
        }
        func positive(_ value: Int, _ flag: String) throws {
            guard value >= 1 else { throw ValidationError("--\(flag) must be at least 1, got \(value)") }
        }
        try positive(numEpochs, "num_epochs")
        try positive(batchSize, "batch_size")
        guard maxLength >= 2 else {
            throw ValidationError("--max_length must be at least 2 (an input token and the token it predicts), got \(maxLength)")
        }
        try positive(saveEvery, "save_every")
        try positive(gradientAccumulationSteps, "gradient_accumulation_steps")
        try positive(loggingSteps, "logging_steps")
        if let maxSteps { try positive(maxSteps, "max_steps") }
        try positive(saveSteps, "save_steps")
        if let saveTotalLimit { try positive(saveTotalLimit, "save_total_limit") }
        if let evalSteps { try positive(evalSteps, "eval_steps") }
        if let maxSamples { try positive(maxSamples, "max_samples") }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup_steps must be >= 0, got \(warmupSteps)") }
        guard validationSplitPercentage >= 0 && validationSplitPercentage < 100 else {
            throw ValidationError("--validation_split_percentage must be in [0, 100), got \(validationSplitPercentage)")
        }
        guard !textColumn.isEmpty else { throw ValidationError("--text_column must name a column, got an empty name") }
        // Each optimizer checks its own settings' ranges; a flag it does not use must still be a number.
        let floats: [(String, Float?)] = [("learning_rate", learningRate), ("min_lr", minLR), ("max_lr", maxLR), ("eps", eps),
                                          ("beta1", beta1), ("beta2", beta2), ("weight_decay", weightDecay),
                                          ("momentum", momentum), ("temperature", temperature), ("top_p", topP)]
        for case let (flag, value?) in floats where !value.isFinite {
            throw ValidationError("--\(flag) must be a finite number, got \(value)")
        }
        if let maxGradNorm, !(maxGradNorm > 0 && maxGradNorm.isFinite) {
            throw ValidationError("--max_grad_norm must be a positive number, got \(maxGradNorm)")
        }
        if mode == "pretrain" && model.attention == .bidirectional {
            throw ValidationError("--attention bidirectional runs a loaded causal model without its causal mask; it does not "
                                  + "apply to --mode pretrain, which trains this package's causal model")
        }
        if mode == "pretrain" || mode == "all", maxLength > model.maxPositionEmbeddings {
            throw ValidationError("--max_length \(maxLength) is above --max_position_embeddings \(model.maxPositionEmbeddings): "
                                  + "the model has no position beyond it")
        }
        if mode == "pretrain" || mode == "all" {
            // The vocabulary is the tokenizer's, not known yet: the size it is trained to stands in until then (its
            // lower bound, room beyond the special tokens, is checked when the trainer is made).
            if model.vocabSize == nil, !(1...TrainerOptions.maxVocabSize).contains(tokenizerVocabSize) {
                throw ValidationError("--tokenizer_vocab_size must be between 1 and \(TrainerOptions.maxVocabSize), "
                                      + "got \(tokenizerVocabSize)")
            }
            try checkTrainingMemory(vocabSize: model.vocabSize ?? tokenizerVocabSize, padTokenID: 0)
        }
    }

    /// What training holds per weight besides the weight and its gradient: Adam's two moments, SGD's momentum.
    var trainingWorkload: ModelWorkload {
        .training(batchSize: batchSize, sequenceLength: maxLength, optimizerStates: optimizer == "sgd" ? 1 : 2)
    }

    /// The config of the model to train, checked against its bounds and against the memory training it needs.
    @discardableResult
    func checkTrainingMemory(vocabSize: Int, padTokenID: Int) throws -> AlbertMoEConfig {
        do {
            let config = try modelConfig(vocabSize: vocabSize, padTokenID: padTokenID)
            try config.checkMemory(for: trainingWorkload)
            return config
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The task of a command made for `task` (train-clm, train-mlm): --task_type may repeat it, not contradict it.
    public func checkTaskType(for task: LanguageModelingTask) throws {
        if let taskType, taskType != task {
            throw ValidationError("--task_type \(taskType.rawValue) contradicts this command, which trains a \(task.rawValue) "
                                  + "model: use train-\(taskType.rawValue) (or `albertmoe train --task_type \(taskType.rawValue)`)")
        }
    }

    /// The model configuration these options describe, checked (an invalid combination names its field).
    public func modelConfig(vocabSize: Int, padTokenID: Int) throws -> AlbertMoEConfig {
        try model.config(vocabSize: vocabSize, padTokenID: padTokenID)
    }
}

/// The model's sizes and how a model is run, under the Python package's flag names and defaults: the sizes of a
/// model to train, and of a model directory without config.json (as the Python package writes them) to load, whose
/// weights give most of them (a given size that contradicts them is an error). Shared by the training commands,
/// `albertmoe embed` and `albertmoe serve` as `@OptionGroup var model: ModelArguments`.
public struct ModelArguments: ParsableArguments {
    public init() {}

    /// Each size given must be within `AlbertMoEConfig.sizeLimits`, before anything is built or read.
    public func validate() throws {
        let given: [(Int?, String)] = [
            (vocabSize, "vocab_size"), (embeddingSizeFlag, "embedding_size"), (hiddenSizeFlag, "hidden_size"),
            (numHiddenLayersFlag, "num_hidden_layers"), (numAttentionHeadsFlag, "num_attention_heads"),
            (intermediateSizeFlag, "intermediate_size"), (maxPositionEmbeddingsFlag, "max_position_embeddings"),
            (numExpertsFlag, "num_experts"), (topKExpertsFlag, "top_k_experts"), (expertCapacity, "expert_capacity"),
        ]
        for case let (value?, field) in given {
            do { try AlbertMoEConfig.checkSize(value, field: field, name: "--" + field) } catch { throw ValidationError("\(error)") }
        }
    }

    @Option(name: .customLong("vocab_size"),
            help: "Vocabulary size of the model, at least the tokenizer's (default: the tokenizer's).")
    public var vocabSize: Int?
    @Option(name: .customLong("embedding_size"), help: "(default: 128)") public var embeddingSizeFlag: Int?
    @Option(name: .customLong("hidden_size"), help: "(default: 768)") public var hiddenSizeFlag: Int?
    @Option(name: .customLong("num_hidden_layers"), help: "Passes through the one shared layer (default: 12).")
    public var numHiddenLayersFlag: Int?
    @Option(name: .customLong("num_attention_heads"), help: "(default: 12)") public var numAttentionHeadsFlag: Int?
    @Option(name: .customLong("intermediate_size"), help: "(default: 3072)") public var intermediateSizeFlag: Int?
    @Option(name: .customLong("num_experts"), help: "(default: 8)") public var numExpertsFlag: Int?
    @Option(name: .customLong("top_k_experts"), help: "(default: 2)") public var topKExpertsFlag: Int?
    @Option(name: .customLong("max_position_embeddings"), help: "(default: 512)") public var maxPositionEmbeddingsFlag: Int?
    @Option(name: .customLong("aux_loss_coefficient"), help: "Weight of the MoE load-balancing loss (default: 0.01).")
    public var auxLossCoefficientFlag: Float?
    @Option(name: .customLong("position_embedding_type"), help: "rope, absolute or none (default: rope).")
    public var positionEmbeddingTypeFlag: String?
    @Option(name: .customLong("hidden_dropout_prob")) public var hiddenDropoutProb: Float = 0.1
    @Option(name: .customLong("attention_probs_dropout_prob")) public var attentionProbsDropoutProb: Float = 0.1
    @Option(name: .customLong("expert_capacity"),
            help: "Tokens each expert takes per batch; overflow skips the expert (default: dropless).")
    public var expertCapacity: Int?
    @Option(name: .customLong("router_z_loss_coefficient")) public var routerZLossCoefficient: Float = 0
    @Option(name: .customLong("attention"),
            help: ArgumentHelp("causal or bidirectional: bidirectional runs a loaded causal model without its causal mask, "
                + "as the Python package runs (and trained) its causal models."))
    public var attention: AttentionKind = .causal

    public var embeddingSize: Int { embeddingSizeFlag ?? 128 }
    public var hiddenSize: Int { hiddenSizeFlag ?? 768 }
    public var numHiddenLayers: Int { numHiddenLayersFlag ?? 12 }
    public var numAttentionHeads: Int { numAttentionHeadsFlag ?? 12 }
    public var intermediateSize: Int { intermediateSizeFlag ?? 3072 }
    public var numExperts: Int { numExpertsFlag ?? 8 }
    public var topKExperts: Int { topKExpertsFlag ?? 2 }
    public var maxPositionEmbeddings: Int { maxPositionEmbeddingsFlag ?? 512 }
    public var auxLossCoefficient: Float { auxLossCoefficientFlag ?? 0.01 }
    public var positionEmbeddingType: String { positionEmbeddingTypeFlag ?? "rope" }

    /// How a model directory is loaded with these options: the sizes given (for a directory without config.json)
    /// and the attention.
    public var loadOptions: ModelLoadOptions {
        ModelLoadOptions(sizes: ModelSizes(vocabSize: vocabSize, embeddingSize: embeddingSizeFlag, hiddenSize: hiddenSizeFlag,
                                           intermediateSize: intermediateSizeFlag, numExperts: numExpertsFlag,
                                           maxPositionEmbeddings: maxPositionEmbeddingsFlag,
                                           positionEmbeddingType: positionEmbeddingTypeFlag,
                                           numAttentionHeads: numAttentionHeadsFlag, numHiddenLayers: numHiddenLayersFlag,
                                           topKExperts: topKExpertsFlag, auxLossCoefficient: auxLossCoefficientFlag),
                         bidirectional: attention == .bidirectional)
    }

    /// `loadOptions` for a model loaded to do `workload` (checked against the memory it needs before the weights are read).
    public func loadOptions(for workload: ModelWorkload) -> ModelLoadOptions {
        var options = loadOptions
        options.workload = workload
        return options
    }

    /// The model configuration these options describe, checked (an invalid combination names its field).
    public func config(vocabSize: Int, padTokenID: Int) throws -> AlbertMoEConfig {
        var c = AlbertMoEConfig(vocabSize: vocabSize, embeddingSize: embeddingSize, hiddenSize: hiddenSize,
                                numHiddenLayers: numHiddenLayers, numAttentionHeads: numAttentionHeads,
                                intermediateSize: intermediateSize, maxPositionEmbeddings: maxPositionEmbeddings,
                                numExperts: numExperts, topKExperts: topKExperts)
        c.auxLossCoefficient = auxLossCoefficient
        c.positionEmbeddingType = positionEmbeddingType
        c.hiddenDropoutProb = hiddenDropoutProb
        c.attentionProbsDropoutProb = attentionProbsDropoutProb
        c.padTokenID = padTokenID
        c.routerZLossCoefficient = routerZLossCoefficient
        if let expertCapacity {
            c.expertCapacity = expertCapacity
            c.dropless = false
        }
        try c.validate()
        return c
    }
}

/// The attention a loaded causal model runs with.
public enum AttentionKind: String, ExpressibleByArgument, Sendable {
    /// Future tokens masked: this package's causal model.
    case causal
    /// No causal mask: the Python package's causal model, as it trained it.
    case bidirectional
}
