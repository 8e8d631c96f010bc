import AlbertMoE
import ArgumentParser
import Foundation
import Tokenizers

/// `--mode evaluate`: the saved model in --model_path, on held-out text.
extension TrainingJob {
    func evaluate() throws {
        let o = options
        let directory = URL(fileURLWithPath: o.modelPath)
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: directory) } catch {
            throw ValidationError("--model_path \(o.modelPath): no usable tokenizer (\(error)); train a model there first")
        }
        let texts = try heldOutTexts()
        switch task {
        case .clm:
            let model = try AlbertForCausalLM.load(from: directory)
            let result = try model.perplexity(of: texts, tokenizer: tokenizer, window: o.maxLength)
            FileHandle.standardError.write(Data(String(format: "Held-out perplexity %.3f (loss %.4f over %d tokens, %d texts)\n",
                                                       result.perplexity, result.loss, result.tokens, texts.count).utf8))
        case .mlm:
            throw ValidationError("masked-model evaluation is not available yet")
        }
    }

    /// The held-out texts: --validation_file, else the validation side of --dataset's split.
    func heldOutTexts() throws -> [String] {
        let o = options
        if let file = o.validationFile {
            return try TextCorpus(path: URL(fileURLWithPath: file), textColumn: o.textColumn).readAll().map(\.text)
        }
        guard FileManager.default.fileExists(atPath: o.dataset), o.validationSplitPercentage > 0 else {
            throw ValidationError("--mode evaluate needs held-out text: --validation_file, or a local --dataset with "
                                  + "--validation_split_percentage above 0")
        }
        let split = SplitRule(percentage: o.validationSplitPercentage, seed: o.seed)
        var texts: [String] = []
        try TextCorpus(path: URL(fileURLWithPath: o.dataset), textColumn: o.textColumn).forEachExample { example in
            if split.isValidation(index: example.index) { texts.append(example.text) }
            return o.maxSamples.map { texts.count < $0 } ?? true
        }
        return texts
    }
}
