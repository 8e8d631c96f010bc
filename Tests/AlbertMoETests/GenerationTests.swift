import XCTest
@testable import AlbertMoE
import Tokenizers

/// Sampling settings do what they promise.
final class GenerationTests: XCTestCase {
    let logits: [Float] = [0.5, 3, 1, 2.9, -1, 0]

    func testTemperatureZeroIsArgmax() {
        var s = LogitSampler(SamplingOptions(temperature: 0, topK: nil))
        for _ in 0..<5 { XCTAssertEqual(s.next(logits, history: []), 1) }
    }

    func testTopKOneAndTinyTopPAreArgmax() {
        var k = LogitSampler(SamplingOptions(temperature: 1.5, topK: 1, seed: 3))
        var p = LogitSampler(SamplingOptions(temperature: 1.5, topK: nil, topP: 0.01, seed: 3))
        for _ in 0..<20 {
            XCTAssertEqual(k.next(logits, history: []), 1)
            XCTAssertEqual(p.next(logits, history: []), 1)
        }
    }

    func testSamplingFollowsTheDistributionAndTheSeed() {
        var s = LogitSampler(SamplingOptions(temperature: 1, topK: nil, seed: 7))
        var counts = [Int](repeating: 0, count: logits.count)
        let n = 20000
        for _ in 0..<n { counts[Int(s.next(logits, history: []))] += 1 }
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        for i in logits.indices {
            XCTAssertEqual(Double(counts[i]) / Double(n), exp(Double(logits[i])) / z, accuracy: 0.015, "token \(i)")
        }
        var a = LogitSampler(SamplingOptions(seed: 11)), b = LogitSampler(SamplingOptions(seed: 11))
        XCTAssertEqual((0..<50).map { _ in a.next(logits, history: []) }, (0..<50).map { _ in b.next(logits, history: []) })
        // top-k 2 never leaves the two best tokens.
        var two = LogitSampler(SamplingOptions(temperature: 5, topK: 2, seed: 1))
        XCTAssertEqual(Set((0..<200).map { _ in two.next(logits, history: []) }), [1, 3])
    }

    func testRepetitionPenaltyDemotesSeenTokens() {
        var s = LogitSampler(SamplingOptions(temperature: 0, topK: nil, repetitionPenalty: 1.5))
        XCTAssertEqual(s.next(logits, history: [1]), 3)          // 3 / 1.5 = 2 < 2.9
    }

    func testGenerateChecksItsInputsAndStops() throws {
        let model = AlbertForCausalLM(tinyConfig(), seed: 2)   // max_position_embeddings 32
        XCTAssertThrowsError(try model.generate([], options: .greedy(maxNewTokens: 3)))
        XCTAssertThrowsError(try model.generate([60], options: .greedy(maxNewTokens: 3)))
        XCTAssertThrowsError(try model.generate([1, 2], options: SamplingOptions(temperature: -1)))
        let long = [Int32](repeating: 4, count: 30)
        XCTAssertThrowsError(try model.generate(long, options: .greedy(maxNewTokens: 5))) { error in
            XCTAssertTrue("\(error)".contains("max_position_embeddings"))
        }
        XCTAssertEqual(try model.generate(long, options: .greedy(maxNewTokens: 5), truncateFromLeft: true).count, 5)
        let greedy = try model.generate([5, 6, 7], options: .greedy(maxNewTokens: 8))
        let stop = greedy[2]
        let stopped = try model.generate([5, 6, 7], options: .greedy(maxNewTokens: 8, stopTokens: [stop]))
        XCTAssertEqual(stopped.last, stop)
        XCTAssertLessThanOrEqual(stopped.count, 3)
        var streamed: [Int32] = []
        let returned = try model.generate([5, 6, 7], options: SamplingOptions(maxNewTokens: 6, seed: 4)) {
            streamed.append($0)
            return streamed.count < 4
        }
        XCTAssertEqual(returned, streamed)
        XCTAssertEqual(streamed.count, 4)
        XCTAssertEqual(try model.generate([5, 6, 7], options: SamplingOptions(maxNewTokens: 6, seed: 4)).prefix(4), returned[...])
    }

    /// Over seeded random models, prompts and options: a prompt that does not fit is refused, or keeps its newest
    /// tokens; the session then makes the tokens `generate` makes, and ends for the reason it gives: after the first
    /// stop token, after maxNewTokens tokens, or when another token would pass max_position_embeddings, whichever
    /// comes first. Dropout is on between calls; the session runs the model in evaluation mode.
    func testSessionStopsForTheReasonItGives() throws {
        var g = SeededGenerator(seed: 2024)
        var reasons: [FinishReason: Int] = [:]
        for trial in 0..<60 {
            var config = tinyConfig(g.nextInt(below: 2) == 0 ? "rope" : "absolute", dropout: 0.2)
            config.vocabSize = 30 + g.nextInt(below: 200)
            config.maxPositionEmbeddings = 4 + g.nextInt(below: 48)
            let room = config.maxPositionEmbeddings
            let model = AlbertForCausalLM(config, seed: g.next())
            let prompt = (0..<(1 + g.nextInt(below: room + 8))).map { _ in Int32(g.nextInt(below: config.vocabSize)) }
            var options = SamplingOptions(maxNewTokens: g.nextInt(below: room + 6), temperature: [0, 0.7, 1.5][g.nextInt(below: 3)],
                                          topK: [nil, 0, 5][g.nextInt(below: 3)], topP: [1, 0.9][g.nextInt(below: 2)],
                                          repetitionPenalty: [1, 1.3][g.nextInt(below: 2)], seed: g.next())
            let what = "trial \(trial): prompt \(prompt.count), \(options.maxNewTokens) new, context \(room)"
            let fits = prompt.count + options.maxNewTokens <= room
            if !fits {
                XCTAssertThrowsError(try GenerationSession(model: model, prompt: prompt, options: options)) { error in
                    XCTAssertTrue("\(error)".contains("context of \(room) tokens"), "\(what): \(error)")
                }
            }
            let kept = fits ? prompt : Array(prompt.suffix(max(room - options.maxNewTokens, 1)))
            // The stream without stop tokens, then stop tokens drawn from it (or from anywhere).
            let free = try model.generate(prompt, options: options, truncateFromLeft: true)
            XCTAssertEqual(free.count, min(options.maxNewTokens, room - kept.count + 1), what)
            for _ in 0..<g.nextInt(below: 3) {
                options.stopTokens.insert(!free.isEmpty && g.nextInt(below: 3) > 0 ? free[g.nextInt(below: free.count)]
                                          : Int32(g.nextInt(below: config.vocabSize)))
            }
            let session = try GenerationSession(model: model, prompt: prompt, options: options, overflow: .keepNewest)
            XCTAssertEqual(session.prompt, kept, what)
            var tokens: [Int32] = [], ended: [Bool] = []
            while let token = try session.next() {
                tokens.append(token)
                ended.append(session.finishReason != nil)
            }
            XCTAssertEqual(ended, tokens.indices.map { $0 == tokens.count - 1 }, "the reason comes with the last token: \(what)")
            XCTAssertNil(try session.next(), "an ended session stays ended")
            XCTAssertEqual(tokens, session.generated, what)
            XCTAssertTrue(model.isTraining, "the model's mode is left as it was")
            let firstStop = free.firstIndex { options.stopTokens.contains($0) }
            XCTAssertEqual(tokens, Array(free.prefix(firstStop.map { $0 + 1 } ?? free.count)), what)
            XCTAssertEqual(try model.generate(prompt, options: options, truncateFromLeft: true), tokens, what)
            let reason = try XCTUnwrap(session.finishReason, what)
            reasons[reason, default: 0] += 1
            switch reason {
            case .stopToken:
                XCTAssertEqual(firstStop, tokens.count - 1, what)
            case .maxTokens:
                XCTAssertNil(firstStop, what)
                XCTAssertEqual(tokens.count, options.maxNewTokens, what)
            case .contextFull:
                XCTAssertNil(firstStop, what)
                XCTAssertLessThan(tokens.count, options.maxNewTokens, what)
                XCTAssertEqual(kept.count + tokens.count, room + 1, "the last token is made but never run: \(what)")
            }
        }
        XCTAssertEqual(Set(reasons.keys), [.stopToken, .maxTokens, .contextFull], "\(reasons)")
    }
}

/// Sentence embeddings from a saved model directory.
final class SentenceEncodingTests: XCTestCase {
    func testEncodeKeepsOrderAndMatchesOneByOne() throws {
        let texts = ["the cat sat on the mat", "a dog", "the bird sang a long song in the tall tree today", "cat and dog",
                     "", "mat"]
        let tokenizer = try WordPieceTrainer(options: TrainerOptions(vocabSize: 60, minFrequency: 1,
                                                                     specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
            .train(texts: texts)
        var config = tinyConfig()
        config.vocabSize = tokenizer.vocabSize
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-sentence-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let lm = AlbertForMaskedLM(config, seed: 4)
        try lm.save(to: dir)
        try tokenizer.saveFiles(to: dir)

        let encoder = try SentenceAlbert.load(from: dir)
        XCTAssertNotNil(encoder.tokenizer)
        let batched = try encoder.encode(texts, batchSize: 4)
        XCTAssertEqual(batched.count, texts.count)
        for (i, text) in texts.enumerated() {
            let alone = try encoder.encode([text])[0]
            XCTAssertEqual(sqrt(alone.map { $0 * $0 }.reduce(0, +)), 1, accuracy: 1e-5)
            XCTAssertLessThan(zip(alone, batched[i]).map { abs($0 - $1) }.max()!, 1e-5, text)
        }
        encoder.maxSequenceLength = 3
        XCTAssertEqual(try encoder.encode(["the bird sang a long song"]).count, 1)
        XCTAssertThrowsError(try SentenceAlbert(config).encode(["x"]))
    }
}

final class FillMaskTests: XCTestCase {
    func testPredictionsPerMask() throws {
        let texts = ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog"]
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let tokenizer = try WordPieceTrainer(options: TrainerOptions(vocabSize: 60, minFrequency: 1, specialTokens: specials))
            .train(texts: texts)
        try tokenizer.declareSpecialTokens([.mask: "[MASK]"])
        var config = tinyConfig()
        config.vocabSize = tokenizer.vocabSize
        let model = AlbertForMaskedLM(config, seed: 1)
        let fills = try model.fillMask("the [MASK] sat on the [MASK]", tokenizer: tokenizer, topK: 3)
        XCTAssertEqual(fills.count, 2)
        XCTAssertEqual(fills.map(\.position), [2, 6])               // after [CLS]
        for fill in fills {
            XCTAssertEqual(fill.predictions.count, 3)
            XCTAssertEqual(fill.predictions.map(\.probability), fill.predictions.map(\.probability).sorted(by: >))
            XCTAssertLessThanOrEqual(fill.predictions.map(\.probability).reduce(0, +), 1.0001)
            XCTAssertEqual(fill.predictions[0].token, tokenizer.idToToken(fill.predictions[0].tokenID))
        }
        XCTAssertThrowsError(try model.fillMask("no mask here", tokenizer: tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("[MASK]"), "\(error)")
        }
        let plain = try WordPieceTrainer(options: TrainerOptions(vocabSize: 40, minFrequency: 1, specialTokens: ["[PAD]", "[UNK]"]))
            .train(texts: texts)
        XCTAssertThrowsError(try model.fillMask("the cat", tokenizer: plain))
    }
}

/// Decoding several sequences in one batched forward gives what decoding each alone gives.
final class BatchedDecodingTests: XCTestCase {
    /// Over seeded random small models (RoPE and absolute positions, head counts, passes) and batches of sequences
    /// with prompts of 1 to 120 tokens that join at different steps, several at once, and run for different numbers
    /// of tokens: the prompts that join together run as one forward padded to the longest (in some trials in the
    /// same forward as the others' decoding steps), and each row's logits are those of the same sequence run alone
    /// (to 1e-5), its cache holds its own tokens only, and its greedy tokens are those made alone.
    func testBatchedStepMatchesSingleSequences() throws {
        var g = SeededGenerator(seed: 314)
        var padded = 0
        for trial in 0..<12 {
            var config = tinyConfig(trial % 2 == 0 ? "rope" : "absolute", dropout: 0.1)
            config.vocabSize = 30 + g.nextInt(below: 80)
            config.numAttentionHeads = [1, 2, 4][g.nextInt(below: 3)]
            config.numHiddenLayers = 1 + g.nextInt(below: 3)
            config.maxPositionEmbeddings = 260   // room for a decoding row padded to a joining prompt
            let model = AlbertForCausalLM(config, seed: g.next())
            model.eval()
            let count = 1 + g.nextInt(below: 8)
            let longest = [14, 40, 120][trial % 3]
            let prompts = (0..<count).map { _ in (0..<(1 + g.nextInt(below: longest))).map { _ in Int32(g.nextInt(below: config.vocabSize)) } }
            let joins = (0..<count).map { _ in g.nextInt(below: 3) }
            let lengths = (0..<count).map { _ in 1 + g.nextInt(below: 12) }
            let together = trial % 4 == 3   // the joining prompts run in the same forward as the decoding steps
            let (batched, alone) = (prompts.map { _ in KVCache(config: config) }, prompts.map { _ in KVCache(config: config) })
            var next = [Int32](repeating: 0, count: count), made = [Int](repeating: 0, count: count)
            func argmax(_ l: [Float]) -> Int32 { Int32(l.indices.max { l[$0] < l[$1] }!) }
            for step in 0..<(joins.max()! + lengths.max()! + 2) {
                let active = (0..<count).filter { joins[$0] < step && made[$0] < lengths[$0] }
                let joining = (0..<count).filter { joins[$0] == step }
                var rows = active.map { (tokens: [next[$0]], cache: batched[$0]) }
                var joinRows = joining.map { (tokens: prompts[$0], cache: batched[$0]) }
                if together { (rows, joinRows) = (rows + joinRows, []) }
                let logits = try model.nextTokenLogits(batch: rows) + (try model.nextTokenLogits(batch: joinRows))
                if Set(joining.map { prompts[$0].count }).count > 1 { padded += 1 }
                for (i, row) in zip(active + joining, logits) {
                    let expected = try model.nextTokenLogits(joins[i] == step ? prompts[i] : [next[i]], cache: alone[i])
                    let what = "trial \(trial) sequence \(i) step \(step) of \(active.count) + \(joining.count) joining"
                    XCTAssertLessThan(zip(row, expected).map { abs($0 - $1) }.max()!, 1e-5, what)
                    XCTAssertEqual(argmax(row), argmax(expected), what)
                    XCTAssertEqual(batched[i].count, alone[i].count, what)
                    next[i] = argmax(expected)
                    if joins[i] < step { made[i] += 1 }
                }
            }
            XCTAssertEqual(made, lengths, "trial \(trial)")
        }
        XCTAssertGreaterThan(padded, 3, "prompts of different lengths join together")
    }

    /// A batched forward refuses, caching nothing, a cache given twice, a token outside the vocabulary, a row that
    /// would pass its cache's capacity (or make the padding of another pass it), an empty row and a cache of several
    /// sequences, naming what is wrong.
    func testBatchedStepRefusesBadRows() throws {
        var config = tinyConfig()
        config.maxPositionEmbeddings = 6
        let model = AlbertForCausalLM(config, seed: 1)
        model.eval()
        let (a, b, full) = (KVCache(config: config), KVCache(config: config), KVCache(config: config))
        _ = try model.nextTokenLogits([1, 2], cache: a)
        _ = try model.nextTokenLogits([3], cache: b)
        _ = try model.nextTokenLogits([1, 2, 3, 4, 5, 6], cache: full)
        let bad: [(String, [(tokens: [Int32], cache: KVCache)])] = [
            ("twice", [([4], a), ([5], a)]), ("outside the model's vocabulary", [([4], a), ([50], b)]),
            ("max_position_embeddings", [([4], a), ([5], full)]), ("max_position_embeddings", [([4, 5, 6, 7, 8], a), ([5], b)]),
            ("one sequence each", [([4], a), ([5], KVCache(config: config, batch: 2))]), ("at least one token", [([4], a), ([], b)]),
        ]
        for (reason, rows) in bad {
            XCTAssertThrowsError(try model.nextTokenLogits(batch: rows)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(reason): \(error)")
            }
            XCTAssertEqual([a.count, b.count, full.count], [2, 1, 6], "\(reason): nothing is cached")
        }
        XCTAssertEqual(try model.nextTokenLogits(batch: []), [])
    }

    /// `GenerationSession.next(_:)` over sessions that start at different steps (several at once, their prompts of 1
    /// to 56 tokens run together), with their own sampling settings (greedy and seeded sampling, top-k, top-p,
    /// repetition penalty), stop tokens and lengths: each session makes the tokens and ends for the reason it does
    /// alone, on a causal model (batched) and on a bidirectional one (one at a time); a session that has ended gives
    /// nil.
    func testSessionsAdvancedTogetherMakeTheirOwnTokens() throws {
        var g = SeededGenerator(seed: 99)
        for trial in 0..<6 {
            var config = tinyConfig(trial % 3 == 0 ? "absolute" : "rope", dropout: 0.2)
            config.vocabSize = 40 + g.nextInt(below: 60)
            config.maxPositionEmbeddings = 72
            let model = AlbertForCausalLM(config, seed: g.next(), bidirectional: trial == 5)
            let count = 2 + g.nextInt(below: 6)
            let longest = [8, 56][trial % 2]
            let requests = (0..<count).map { _ -> ([Int32], SamplingOptions, Int) in
                let prompt = (0..<(1 + g.nextInt(below: longest))).map { _ in Int32(g.nextInt(below: config.vocabSize)) }
                var options = SamplingOptions(maxNewTokens: 1 + g.nextInt(below: 14), temperature: [0, 0.8, 1.3][g.nextInt(below: 3)],
                                              topK: [nil, 5][g.nextInt(below: 2)], topP: [1, 0.9][g.nextInt(below: 2)],
                                              repetitionPenalty: [1, 1.2][g.nextInt(below: 2)], seed: g.next())
                if g.nextInt(below: 3) == 0 { options.stopTokens = [Int32(g.nextInt(below: config.vocabSize))] }
                return (prompt, options, g.nextInt(below: 3))
            }
            let expected = try requests.map { prompt, options, _ -> ([Int32], FinishReason?) in
                let session = try GenerationSession(model: model, prompt: prompt, options: options, overflow: .keepNewest)
                while try session.next() != nil {}
                return (session.generated, session.finishReason)
            }
            var sessions: [GenerationSession?] = Array(repeating: nil, count: count)
            var tokens = [[Int32]](repeating: [], count: count)
            for step in 0..<40 {
                for (i, request) in requests.enumerated() where request.2 == step {
                    sessions[i] = try GenerationSession(model: model, prompt: request.0, options: request.1, overflow: .keepNewest)
                }
                let joined = sessions.indices.filter { sessions[$0] != nil }
                for (i, result) in zip(joined, GenerationSession.next(joined.map { sessions[$0]! })) {
                    if let token = try result.get() {
                        tokens[i].append(token)
                    } else {
                        XCTAssertNotNil(sessions[i]!.finishReason, "trial \(trial) session \(i)")
                    }
                }
            }
            for i in 0..<count {
                XCTAssertEqual(tokens[i], expected[i].0, "trial \(trial) session \(i)")
                XCTAssertEqual(sessions[i]?.finishReason, expected[i].1, "trial \(trial) session \(i)")
            }
            XCTAssertTrue(model.isTraining, "the model's mode is left as it was")
        }
    }
}
