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
        let directory = URL(fileURLWithPath: o.modelPath)
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer.load(from: directory) } catch {
            throw ValidationError("--model_path \(o.modelPath): no usable tokenizer (\(error)); train a model there first")
        }
        let answer: (String) throws -> String
        switch task {
        case .clm:
            let model = try AlbertForCausalLM.load(from: directory)
            answer = { prompt in
                // The text streams to standard output as the tokens are made.
                _ = try complete(prompt, model: model, tokenizer: tokenizer) { piece in
                    FileHandle.standardOutput.write(Data(piece.utf8))
                }
                return ""
            }
        case .mlm:
            let model = try AlbertForMaskedLM.load(from: directory)
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

    /// The prompt and its continuation, decoded: at most --gen_max_length tokens in all (the prompt included),
    /// sampled with --temperature, --top_k and --top_p; the prompt has no end token appended. `stream` receives the
    /// text piece by piece as it is made (the prompt first), whole characters only.
    func complete(_ prompt: String, model: AlbertForCausalLM, tokenizer: Tokenizer,
                  stream: (String) -> Void = { _ in }) throws -> String {
        let o = options
        var ids = try tokenizer.encodeUnpadded(prompt, addSpecialTokens: false).ids.map(Int32.init)
        guard !ids.isEmpty else { throw ValidationError("the prompt has no token") }
        let limit = model.config.maxPositionEmbeddings - 1
        if ids.count > limit {
            guard o.truncatePrompt else {
                throw ValidationError("the prompt has \(ids.count) tokens, more than the model's max_position_embeddings "
                                      + "(\(limit + 1)) allows; shorten it, or pass --truncate_prompt to keep its last \(limit)")
            }
            say("Warning: the prompt has \(ids.count) tokens; only its last \(limit) are used.")
            ids = Array(ids.suffix(limit))
        }
        let room = min(o.genMaxLength, model.config.maxPositionEmbeddings) - ids.count
        guard room > 0 else {
            throw ValidationError("the prompt has \(ids.count) tokens, --gen_max_length \(o.genMaxLength) leaves none to generate")
        }
        let stop = SpecialTokenIDs.eosID(for: tokenizer).map { Set([$0]) } ?? []
        let sampling = SamplingOptions(maxNewTokens: room, temperature: o.temperature, topK: o.topK, topP: o.topP,
                                       seed: o.seed, stopTokens: stop)
        // The prompt and its continuation are decoded together (as the Python package did); `CompletionText` holds
        // back a character that is not complete yet.
        var text = CompletionText()
        stream(text.update(try tokenizer.decode(ids.map(Int.init))).piece)
        var new: [Int32] = []
        try model.generate(ids, options: sampling) { token in
            if !stop.contains(token) { new.append(token) }
            if let decoded = try? tokenizer.decode((ids + new).map(Int.init)) { stream(text.update(decoded).piece) }
            return true
        }
        stream(text.finish(try tokenizer.decode((ids + new).map(Int.init))))
        stream("\n")
        return text.sent
    }
}
