import AlbertMoE
import ArgumentParser
import Foundation
import Tokenizers

/// `--mode serve`, as the Python package had it: one answer for --input_text, or a prompt loop with --interactive
/// (a completion from a causal model, the predictions for each mask from a masked one).
extension TrainingJob {
    func serve() throws {
        let o = options
        guard o.interactive || o.inputText != nil else {
            throw ValidationError("--mode serve needs --input_text TEXT or --interactive")
        }
        let directory = try HubNames(token: o.hubToken).modelDirectory(o.modelPath, flag: "model_path")
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: directory) } catch {
            throw ValidationError("--model_path \(o.modelPath): no usable tokenizer (\(error)); train a model there first")
        }
        let answer: (String) throws -> String
        switch task {
        case .clm:
            let workload = ModelWorkload.generation(tokens: o.genMaxLength, tokensField: "gen_max_length")
            let model = try AlbertForCausalLM.load(from: directory, options: o.model.loadOptions(for: workload), notice: say)
            answer = { prompt in
                // The text streams to standard output as the tokens are made.
                _ = try complete(prompt, model: model, tokenizer: tokenizer) { piece in
                    FileHandle.standardOutput.write(Data(piece.utf8))
                }
                return ""
            }
        case .mlm:
            // A text of any length up to the model's limit.
            let workload = ModelWorkload.inference(batchSize: 1, sequenceLength: .max, lengthField: "max_position_embeddings")
            let model = try AlbertForMaskedLM.load(from: directory, options: o.model.loadOptions(for: workload), notice: say)
            answer = { text in
                let fills = try model.fillMask(text, tokenizer: tokenizer, topK: 5)
                return fills.enumerated().map { n, fill in
                    "Mask #\(n + 1) (position \(fill.position)):\n" + fill.predictions.enumerated().map { rank, p in
                        String(format: "   %d. '%@' (probability: %.3f)", rank + 1, p.token, p.probability)
                    }.joined(separator: "\n")
                }.joined(separator: "\n")
            }
        }
        if let text = o.inputText {
            let reply = try answer(text)
            if !reply.isEmpty { print(reply) }
            return
        }
        print(task == .clm ? "Enter a prompt to complete (quit or exit to stop)." : "Enter text with a mask token (quit or exit to stop).")
        while true {
            print("> ", terminator: "")
            fflush(nil)
            guard let line = readLine() else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if ["quit", "exit", "q"].contains(text.lowercased()) { break }
            if text.isEmpty { continue }
            do {
                let reply = try answer(text)
                if !reply.isEmpty { print(reply) }
            } catch {
                print("Error: \(error)")
            }
        }
    }

    /// The prompt and its continuation, decoded: at most --gen_max_length tokens in all (the prompt included; at
    /// least one new token), sampled with --temperature, --top_k and --top_p by a `GenerationSession` that stops at
    /// the tokenizer's end-of-text token; the prompt has no end token appended, except for a model run without its
    /// causal mask (--attention bidirectional), whose prompt is encoded with the tokenizer's special tokens
    /// ([CLS] prompt [SEP] for ALBERT's), as the Python package's serve mode encodes it. A prompt too long for the model is an
    /// error, or keeps its newest tokens with --truncate_prompt. `stream` receives the text piece by piece as it is
    /// made (the prompt first), whole characters only.
    func complete(_ prompt: String, model: AlbertForCausalLM, tokenizer: Tokenizer,
                  stream: (String) -> Void = { _ in }) throws -> String {
        let o = options
        let ids = try tokenizer.encodeUnpadded(prompt, addSpecialTokens: !model.albert.causal).ids.map(Int32.init)
        let context = model.config.maxPositionEmbeddings
        let stop = tokenizer.specialTokens.eos.map { Set([Int32($0.id)]) } ?? []
        let sampling = SamplingOptions(maxNewTokens: max(min(o.genMaxLength, context) - ids.count, 1),
                                       temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed, stopTokens: stop)
        let session: GenerationSession
        do {
            session = try GenerationSession(model: model, prompt: ids, options: sampling,
                                            overflow: o.truncatePrompt ? .keepNewest : .error)
        } catch AlbertMoEError.invalidValue(_, let reason) {
            let hint = ids.count >= context ? " (or pass --truncate_prompt to keep its newest tokens)" : ""
            throw ValidationError(reason + hint)
        }
        if session.prompt.count < ids.count {
            say("Warning: the prompt has \(ids.count) tokens; only its last \(session.prompt.count) are used.")
        }
        // The prompt and its continuation are decoded together (as the Python package did); `CompletionText` holds
        // back a character that is not complete yet.
        func decoded() throws -> String {
            try tokenizer.decode((session.prompt + session.generated.filter { !stop.contains($0) }).map(Int.init))
        }
        var text = CompletionText()
        stream(text.update(try decoded()).piece)
        while try session.next() != nil {
            if let decoded = try? decoded() { stream(text.update(decoded).piece) }
        }
        stream(text.finish(try decoded()))
        stream("\n")
        return text.sent
    }
}
