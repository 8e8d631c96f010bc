import AlbertMoE
import ArgumentParser
import Foundation
import Tokenizers

/// One evaluation's figures.
struct EvaluationRecord {
    let task: String
    let mainScore: Double
    let scores: [(String, Double)]
}

/// `--mode evaluate` (and the second half of `--mode all`): the model in --model_path on held-out text
/// (perplexity for a causal model, masked-token accuracy for a masked one) and on sentence-pair similarity tasks
/// (--sts_file, --custom_tasks). Results go to MODEL_PATH/eval_results.json and are printed as a table.
extension TrainingJob {
    func evaluate() throws {
        let o = options
        let directory = try HubNames(token: o.hubToken).modelDirectory(o.modelPath, flag: "model_path")
        // A model from the Hugging Face cache is not written into: its results go to --logging_dir or here.
        let resultsDirectory = HubNames.isHubName(o.modelPath) ? URL(fileURLWithPath: o.loggingDir ?? ".") : directory
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: directory) } catch {
            throw ValidationError("--model_path \(o.modelPath): no usable tokenizer (\(error)); train a model there first")
        }
        var records: [EvaluationRecord] = []
        if let (corpus, split) = try heldOut() {
            switch task {
            case .clm:
                let workload = ModelWorkload.inference(batchSize: 1, sequenceLength: o.maxLength)
                let model = try AlbertForCausalLM.load(from: directory, options: o.model.loadOptions(for: workload), notice: say)
                var texts: [String] = []
                try corpus.forEachExample { example in
                    if split?.isValidation(index: example.index) ?? true { texts.append(example.text) }
                    return o.maxSamples.map { texts.count < $0 } ?? true
                }
                let r = try model.perplexity(of: texts, tokenizer: tokenizer, window: o.maxLength)
                records.append(EvaluationRecord(task: "perplexity", mainScore: r.perplexity,
                                                scores: [("perplexity", r.perplexity), ("loss", r.loss), ("tokens", Double(r.tokens))]))
            case .mlm:
                let workload = ModelWorkload.inference(batchSize: o.batchSize, sequenceLength: o.maxLength)
                let model = try AlbertForMaskedLM.load(from: directory, options: o.model.loadOptions(for: workload), notice: say)
                let configuration = BatchLoader.Configuration(batchSize: o.batchSize, maxLength: o.maxLength, shuffle: false,
                                                              seed: o.seed, maxSamples: o.maxSamples, split: split,
                                                              side: .validation)
                let data = try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: try MaskedLMCollator(tokenizer: tokenizer),
                                           configuration: configuration)
                let r = try model.maskedTokenAccuracy(on: data)
                records.append(EvaluationRecord(task: "masked_token_accuracy", mainScore: r.top1,
                                                scores: [("top1", r.top1), ("top5", r.top5), ("loss", r.loss), ("tokens", Double(r.tokens))]))
            }
        }
        let pairFiles = (o.stsFile.map { [$0] } ?? []) + o.customTasks
        if !pairFiles.isEmpty {
            let workload = ModelWorkload.inference(batchSize: o.batchSize, sequenceLength: o.maxLength, logits: false)
            let encoder = try SentenceAlbert.load(from: directory, options: o.model.loadOptions(for: workload), notice: say)
            for file in pairFiles {
                let pairs = try SentencePairs.read(URL(fileURLWithPath: file))
                let s = try SentenceSimilarity.evaluate(encoder, pairs: pairs, batchSize: o.batchSize)
                let name = file == o.stsFile ? "STSBenchmark" : URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
                records.append(EvaluationRecord(task: name, mainScore: s.mainScore, scores: s.named + [("pairs", Double(s.pairs))]))
            }
        } else if o.evalTasks == "basic" || o.evalTasks == "comprehensive" {
            say("Sentence similarity skipped: the STS Benchmark cannot be downloaded here; give its local file with --sts_file "
                + "(a TSV, CSV or JSON-lines file with sentence1, sentence2 and score), or pairs files with --custom_tasks.")
        }
        guard !records.isEmpty else {
            throw ValidationError("nothing to evaluate: give held-out text (--validation_file, or a local or cached --dataset "
                                  + "with --validation_split_percentage above 0) or sentence pairs (--sts_file, --custom_tasks)")
        }
        try write(records, to: resultsDirectory.appendingPathComponent("eval_results.json"))
        print(table(records))
        fflush(nil)
    }

    /// The held-out text: --validation_file, else the validation side of --dataset's split (a local one, or a
    /// Hugging Face dataset the cache holds: evaluation downloads no dataset); nil if neither.
    func heldOut() throws -> (TextCorpus, SplitRule?)? {
        let o = options
        if let file = o.validationFile {
            return (try TextCorpus(path: URL(fileURLWithPath: file), textColumn: o.textColumn, split: "validation"), nil)
        }
        guard o.validationSplitPercentage > 0 else { return nil }
        let split = SplitRule(percentage: o.validationSplitPercentage, seed: o.seed)
        if FileManager.default.fileExists(atPath: o.dataset) {
            return (try TextCorpus(path: URL(fileURLWithPath: o.dataset), textColumn: o.textColumn, split: o.datasetSplit), split)
        }
        guard HubNames.isHubName(o.dataset),
              let files = try HubNames(token: o.hubToken).cachedDatasetFiles(o.dataset, config: o.datasetConfig,
                                                                             split: o.datasetSplit) else { return nil }
        return (try TextCorpus(files: files, path: files[0].deletingLastPathComponent(), textColumn: o.textColumn), split)
    }

    private func write(_ records: [EvaluationRecord], to url: URL) throws {
        // JSON has no NaN or infinity: a score that is none is an error, never written.
        for r in records {
            for (name, value) in [("main_score", r.mainScore)] + r.scores where !value.isFinite {
                throw ValidationError("\(r.task): the \(name) is \(value), which eval_results.json cannot hold")
            }
        }
        let results: [[String: Any]] = records.map { r in
            ["task": r.task, "main_score": r.mainScore,
             "scores": Dictionary(r.scores.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })]
        }
        let document: [String: Any] = ["model": options.modelPath, "task_type": task.rawValue,
                                       "date": ISO8601DateFormatter().string(from: Date()), "results": results]
        let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try data.write(to: url, options: .atomic)
        } catch {
            throw ValidationError("cannot write \(url.path): \(error.localizedDescription)")
        }
        say("Results written to \(url.path)")
    }

    private func table(_ records: [EvaluationRecord]) -> String {
        let width = max(24, records.map(\.task.count).max() ?? 0)
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        var lines = [pad("task") + "  main score  scores", String(repeating: "-", count: width + 40)]
        for r in records {
            let scores = r.scores.map { name, value in
                value == value.rounded() && abs(value) >= 1 ? "\(name) \(Int(value))" : String(format: "%@ %.4f", name, value)
            }.joined(separator: ", ")
            lines.append(pad(r.task) + String(format: "  %10.4f  ", r.mainScore) + scores)
        }
        return lines.joined(separator: "\n")
    }

    func say(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }
}
