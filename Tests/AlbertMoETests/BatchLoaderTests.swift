import Foundation
import XCTest
import Tokenizers
@testable import AlbertMoE

final class BatchLoaderTests: XCTestCase {
    /// 60 lines of 1 to 12 words ("w<i>"); line i starts with word i, so every line is different.
    private func lines() -> [[Int]] {
        (0..<60).map { i in (0..<(1 + (i * 7) % 12)).map { (i + $0 * 13) % 200 } }
    }

    private func corpus(_ test: XCTestCase, name: String = "corpus.txt") throws -> TextCorpus {
        let dir = try DataTestSupport.temporaryDirectory(test)
        let text = lines().map { $0.map { "w\($0)" }.joined(separator: " ") }.joined(separator: "\n")
        return try TextCorpus(path: DataTestSupport.write(text, to: name, in: dir))
    }

    /// Every batch of a stream.
    private func drain(_ stream: BatchStream) throws -> [Batch] {
        var out: [Batch] = []
        while let batch = try stream.next() { out.append(batch) }
        return out
    }

    /// The unpadded sequences of batches (input ids where the attention mask is 1).
    private func sequences(_ batches: [Batch]) -> [[Int32]] {
        batches.flatMap { batch -> [[Int32]] in
            let (rows, length) = (batch.inputIDs.shape[0], batch.inputIDs.shape[1])
            return (0..<rows).map { r in
                (0..<length).filter { batch.attentionMask.scalars[r * length + $0] == 1 }.map { batch.inputIDs.scalars[r * length + $0] }
            }
        }
    }

    private func makeLoader(_ corpus: TextCorpus, tokenizer: Tokenizer? = nil, collator: (any Collator)? = nil,
                        _ configuration: BatchLoader.Configuration) throws -> BatchLoader {
        try BatchLoader(corpus: corpus, tokenizer: tokenizer ?? DataTestSupport.wordTokenizer(),
                        collator: collator ?? CausalLMCollator(padID: 0), configuration: configuration)
    }

    /// [CLS] words [SEP] for each line, as the template tokenizer encodes it.
    private func encodedLines() -> [[Int32]] {
        lines().map { [2] + $0.map(DataTestSupport.wordID) + [3] }
    }

    func testEveryEpochVisitsEverySequenceOnceInADifferentOrder() throws {
        let corpus = try corpus(self)
        let loader = try makeLoader(corpus, .init(batchSize: 8, maxLength: 64, seed: 3))
        XCTAssertEqual(loader.sequenceCount, 60)
        XCTAssertEqual(loader.batchesPerEpoch, 8)
        let epoch0 = try drain(loader.batches(epoch: 0)), epoch1 = try drain(loader.batches(epoch: 1))
        XCTAssertEqual(epoch0.map(\.sequenceCount), [8, 8, 8, 8, 8, 8, 8, 4])
        let expected = encodedLines().sorted { $0.lexicographicallyPrecedes($1) }
        XCTAssertEqual(sequences(epoch0).sorted { $0.lexicographicallyPrecedes($1) }, expected)
        XCTAssertEqual(sequences(epoch1).sorted { $0.lexicographicallyPrecedes($1) }, expected)
        XCTAssertNotEqual(sequences(epoch0), sequences(epoch1))
        XCTAssertNotEqual(sequences(epoch0), encodedLines(), "shuffled")

        // The same seed gives the same batches; another seed another order.
        let again = try makeLoader(corpus, .init(batchSize: 8, maxLength: 64, seed: 3))
        XCTAssertEqual(try drain(again.batches(epoch: 1)), epoch1)
        let other = try makeLoader(corpus, .init(batchSize: 8, maxLength: 64, seed: 4))
        XCTAssertNotEqual(sequences(try drain(other.batches(epoch: 1))), sequences(epoch1))

        // Without shuffling: corpus order.
        let ordered = try makeLoader(corpus, .init(batchSize: 8, maxLength: 64, shuffle: false))
        XCTAssertEqual(sequences(try drain(ordered.batches(epoch: 5))), encodedLines())
    }

    func testStartingMidEpochGivesTheSuffixOfAFullPassMasksIncluded() throws {
        let corpus = try corpus(self)
        let mlm = try MaskedLMCollator(tokenizer: DataTestSupport.wordTokenizer())
        for streaming in [false, true] {
            let configuration = BatchLoader.Configuration(batchSize: 7, maxLength: 10, seed: 11, streaming: streaming,
                                                          prefetchDepth: 2, shuffleBufferSize: 16)
            let loader = try makeLoader(corpus, collator: mlm, configuration)
            let full = try drain(loader.batches(epoch: 2))
            XCTAssertEqual(full.count, 9, "streaming \(streaming)")
            XCTAssertTrue(full.contains { $0.labels.scalars.contains { $0 != -100 } }, "some tokens are masked")
            for start in [1, 4, 8, 9, 12] {
                XCTAssertEqual(try drain(loader.batches(epoch: 2, startingAt: start)), Array(full.dropFirst(start)),
                               "streaming \(streaming), start \(start)")
            }
            XCTAssertEqual(try drain(loader.batches(epoch: 2)), full, "streaming \(streaming): repeatable")
        }
    }

    func testStreamingAndInMemoryGiveTheSameSequences() throws {
        let corpus = try corpus(self)
        let split = SplitRule(percentage: 30, seed: 5)
        for packing in [false, true] {
            let base = BatchLoader.Configuration(batchSize: 4, maxLength: 6, packing: packing, seed: 9, split: split,
                                                 shuffleBufferSize: 5)
            var streamingConfiguration = base
            streamingConfiguration.streaming = true
            let inMemory = try sequences(drain(makeLoader(corpus, base).batches(epoch: 0)))
            let streamed = try sequences(drain(makeLoader(corpus, streamingConfiguration).batches(epoch: 0)))
            XCTAssertEqual(streamed.count, inMemory.count)
            XCTAssertNotEqual(streamed, inMemory, "different shuffles")
            XCTAssertEqual(streamed.sorted { $0.lexicographicallyPrecedes($1) }, inMemory.sorted { $0.lexicographicallyPrecedes($1) })

            // Unshuffled, the two modes give the very same batches.
            var ordered = base
            ordered.shuffle = false
            var orderedStreaming = ordered
            orderedStreaming.streaming = true
            XCTAssertEqual(try drain(makeLoader(corpus, orderedStreaming).batches(epoch: 3)),
                           try drain(makeLoader(corpus, ordered).batches(epoch: 3)))
        }
        let streaming = try makeLoader(corpus, .init(batchSize: 4, maxLength: 6, streaming: true))
        XCTAssertNil(streaming.batchesPerEpoch)
        XCTAssertNil(streaming.sequenceCount)
    }

    func testStreamingEpochsAreShuffledDifferently() throws {
        let corpus = try corpus(self)
        let loader = try makeLoader(corpus, .init(batchSize: 8, maxLength: 64, seed: 3, streaming: true, shuffleBufferSize: 20))
        let epoch0 = try sequences(drain(loader.batches(epoch: 0))), epoch1 = try sequences(drain(loader.batches(epoch: 1)))
        let expected = encodedLines().sorted { $0.lexicographicallyPrecedes($1) }
        XCTAssertEqual(epoch0.sorted { $0.lexicographicallyPrecedes($1) }, expected)
        XCTAssertEqual(epoch1.sorted { $0.lexicographicallyPrecedes($1) }, expected)
        XCTAssertNotEqual(epoch0, epoch1)
        XCTAssertNotEqual(epoch0, encodedLines())
    }

    func testShuffleBufferGivesAPermutationThatMixesBeyondTheBufferEnd() {
        var buffer = ShuffleBuffer<Int>(capacity: 10, seed: 1)
        var out: [Int] = []
        for i in 0..<1000 {
            if let item = buffer.add(i) { out.append(item) }
        }
        XCTAssertEqual(out.count, 990)
        out += buffer.drain()
        XCTAssertEqual(out.sorted(), Array(0..<1000))
        // Items leave the buffer at random: few neighbours stay neighbours, and an item is never out before it came in.
        let kept = zip(out, out.dropFirst()).filter { $1 == $0 + 1 }.count
        XCTAssertLessThan(kept, 150)
        for (position, item) in out.prefix(990).enumerated() { XCTAssertLessThanOrEqual(item, position + 10) }
        XCTAssertTrue(buffer.drain().isEmpty)
    }

    func testParallelTokenizationKeepsTheCorpusOrder() throws {
        // Enough texts for several tokenizing threads (in memory) against one (streaming).
        let dir = try DataTestSupport.temporaryDirectory(self)
        let texts = (0..<2100).map { i in (0..<(1 + i % 9)).map { "w\((i * 31 + $0 * 7) % 200)" }.joined(separator: " ") }
        let corpus = try TextCorpus(path: DataTestSupport.write(texts.joined(separator: "\n"), to: "many.txt", in: dir))
        let configuration = BatchLoader.Configuration(batchSize: 32, maxLength: 8, shuffle: false)
        var streaming = configuration
        streaming.streaming = true
        let inMemory = try sequences(drain(makeLoader(corpus, configuration).batches(epoch: 0)))
        let tokenizer = try DataTestSupport.wordTokenizer()
        let expected = try texts.map { text -> [Int32] in
            let ids = try tokenizer.encode(text).ids.map { Int32($0) }
            return ids.count <= 8 ? ids : Array(ids.prefix(7)) + [3]
        }
        XCTAssertEqual(inMemory, expected)
        XCTAssertEqual(try sequences(drain(makeLoader(corpus, streaming).batches(epoch: 0))), expected)
    }

    func testSplitSidesAreDisjointAndComplete() throws {
        let corpus = try corpus(self)
        let split = SplitRule(percentage: 25, seed: 1)
        let train = try sequences(drain(makeLoader(corpus, .init(batchSize: 5, maxLength: 64, shuffle: false, split: split)).batches(epoch: 0)))
        let validation = try sequences(drain(makeLoader(corpus, .init(batchSize: 5, maxLength: 64, shuffle: false, split: split,
                                                                side: .validation)).batches(epoch: 0)))
        let expectedValidation = encodedLines().enumerated().filter { split.isValidation(index: $0.offset) }.map(\.element)
        XCTAssertEqual(validation, expectedValidation)
        XCTAssertEqual(train, encodedLines().enumerated().filter { !split.isValidation(index: $0.offset) }.map(\.element))
        XCTAssertGreaterThan(validation.count, 5)
        XCTAssertGreaterThan(train.count, validation.count)
    }

    func testTruncationKeepsTheFinalSpecialToken() throws {
        let corpus = try corpus(self)
        let loader = try makeLoader(corpus, .init(batchSize: 64, maxLength: 5, shuffle: false))
        let got = try sequences(drain(loader.batches(epoch: 0)))
        let expected = lines().map { words -> [Int32] in [2] + words.prefix(3).map(DataTestSupport.wordID) + [3] }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(got.map(\.count).max(), 5)

        let w = { (i: Int) in Int(DataTestSupport.wordID(i)) }
        let template = try DataTestSupport.wordTokenizer()
        XCTAssertEqual(try template.encodeUnpadded("w0 w1 w2", maxLength: 3).ids, [2, w(0), 3])
        XCTAssertEqual(try template.encodeUnpadded("w0 w1 w2", maxLength: 2).ids, [2, 3])
        XCTAssertEqual(try template.encodeUnpadded("w0 w1 w2", maxLength: 1).ids, [2])
        let plain = try DataTestSupport.wordTokenizer(template: false)
        XCTAssertEqual(try plain.encodeUnpadded("w0 w1 w2", maxLength: 2).ids, [w(0), w(1)])
        XCTAssertEqual(try plain.encodeUnpadded("w0 w1", maxLength: 2).ids, [w(0), w(1)])
    }

    func testSequencesShorterThanTwoTokensAreSkipped() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let url = try DataTestSupport.write("w1\nw2 w3\nw4\n", to: "short.txt", in: dir)
        // Without special tokens, one-word lines give one token and are skipped.
        let loader = try makeLoader(TextCorpus(path: url), tokenizer: DataTestSupport.wordTokenizer(template: false),
                                .init(batchSize: 4, maxLength: 8, shuffle: false))
        XCTAssertEqual(try sequences(drain(loader.batches(epoch: 0))), [[DataTestSupport.wordID(2), DataTestSupport.wordID(3)]])
    }

    func testPackingCutsTheConcatenatedStreamIntoFullBlocks() throws {
        let corpus = try corpus(self)
        let stream = encodedLines().flatMap { $0 }
        for streaming in [false, true] {
            let loader = try makeLoader(corpus, .init(batchSize: 4, maxLength: 16, packing: true, shuffle: false, streaming: streaming))
            let blocks = try sequences(drain(loader.batches(epoch: 0)))
            XCTAssertEqual(blocks.count, stream.count / 16)
            XCTAssertTrue(blocks.allSatisfy { $0.count == 16 })
            XCTAssertEqual(blocks.flatMap { $0 }, Array(stream.prefix(blocks.count * 16)))
        }
        // A tokenizer that adds no special token: documents are followed by the eos token.
        let plain = try makeLoader(corpus, tokenizer: DataTestSupport.wordTokenizer(template: false),
                               .init(batchSize: 4, maxLength: 16, packing: true, shuffle: false))
        let plainStream: [Int32] = lines().flatMap { words -> [Int32] in words.map(DataTestSupport.wordID) + [1] }
        XCTAssertEqual(plain.sequenceCount, plainStream.count / 16)
        XCTAssertEqual(try sequences(drain(plain.batches(epoch: 0))).flatMap { $0 }, Array(plainStream.prefix(plain.sequenceCount! * 16)))
    }

    func testMaxSamplesCountsSequences() throws {
        let corpus = try corpus(self)
        let inMemory = try makeLoader(corpus, .init(batchSize: 4, maxLength: 16, packing: true, shuffle: false, maxSamples: 5))
        XCTAssertEqual(inMemory.sequenceCount, 5)
        XCTAssertEqual(inMemory.batchesPerEpoch, 2)
        let streaming = try makeLoader(corpus, .init(batchSize: 4, maxLength: 16, packing: true, shuffle: false, streaming: true, maxSamples: 5))
        XCTAssertEqual(try sequences(drain(streaming.batches(epoch: 0))), try sequences(drain(inMemory.batches(epoch: 0))))
        let lines = try makeLoader(corpus, .init(batchSize: 4, maxLength: 64, shuffle: false, maxSamples: 7))
        XCTAssertEqual(try sequences(drain(lines.batches(epoch: 0))), Array(encodedLines().prefix(7)))
    }

    func testDataErrorsNameFileAndLine() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        let good = (1...39).map { "{\"text\": \"w\($0) w\($0 + 1)\"}" }
        let url = try DataTestSupport.write((good + ["{\"text\": oops}", "{\"text\": \"w1 w2\"}"]).joined(separator: "\n"),
                                            to: "bad.jsonl", in: dir)
        let corpus = try TextCorpus(path: url)
        // Streaming: the batches before the error come first, then next() throws.
        let streaming = try makeLoader(corpus, .init(batchSize: 4, maxLength: 8, shuffle: false, streaming: true))
        let stream = streaming.batches(epoch: 0)
        var delivered = 0
        do {
            while try stream.next() != nil { delivered += 1 }
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue("\(error)".contains("bad.jsonl:40:"), "\(error)")
        }
        XCTAssertEqual(delivered, 9, "the full batches of the 39 good lines come first")
        XCTAssertThrowsError(try stream.next(), "the error stays")
        // check() meets it before any batch is asked for; a good corpus passes.
        XCTAssertThrowsError(try streaming.check()) { error in XCTAssertTrue("\(error)".contains("bad.jsonl:40:"), "\(error)") }
        XCTAssertNoThrow(try makeLoader(try self.corpus(self), .init(batchSize: 4, maxLength: 8, streaming: true)).check())
        // In memory: the loader's init throws it.
        XCTAssertThrowsError(try makeLoader(corpus, .init(batchSize: 4, maxLength: 8))) { error in
            XCTAssertTrue("\(error)".contains("bad.jsonl:40:"), "\(error)")
        }
        // An unknown word with no unk token: a tokenizer error, named with its line.
        let words = try DataTestSupport.write("w1 w2\nw3 unknown\n", to: "words.txt", in: dir)
        let strict = try Tokenizer(jsonString: """
            {"pre_tokenizer": {"type": "WhitespaceSplit"}, "model": {"type": "WordLevel", "unk_token": "<unk>", "vocab": {"w1": 0, "w2": 1, "w3": 2}}}
            """)
        XCTAssertThrowsError(try makeLoader(TextCorpus(path: words), tokenizer: strict, .init(batchSize: 2, maxLength: 8))) { error in
            XCTAssertTrue("\(error)".contains("words.txt:2: cannot tokenize"), "\(error)")
        }
    }

    func testConfigurationErrors() throws {
        let corpus = try corpus(self)
        XCTAssertThrowsError(try makeLoader(corpus, .init(batchSize: 0, maxLength: 8))) { XCTAssertTrue("\($0)".contains("batch size")) }
        XCTAssertThrowsError(try makeLoader(corpus, .init(batchSize: 2, maxLength: 1))) { XCTAssertTrue("\($0)".contains("max length")) }
        XCTAssertThrowsError(try makeLoader(corpus, .init(batchSize: 2, maxLength: 512, packing: true))) {
            XCTAssertTrue("\($0)".contains("fewer tokens than one block of 512"), "\($0)")
        }
        XCTAssertThrowsError(try makeLoader(corpus, .init(batchSize: 2, maxLength: 8, split: SplitRule(percentage: 0), side: .validation))) {
            XCTAssertTrue("\($0)".contains("no training sequences on the validation side"), "\($0)")
        }
    }

    func testCancelStopsTheStream() throws {
        let corpus = try corpus(self)
        for streaming in [false, true] {
            let loader = try makeLoader(corpus, .init(batchSize: 2, maxLength: 8, streaming: streaming, prefetchDepth: 1))
            let stream = loader.batches(epoch: 0)
            XCTAssertNotNil(try stream.next())
            stream.cancel()
            XCTAssertNil(try stream.next())
        }
    }

    func testCallersTokenizerSettingsDoNotLeakIn() throws {
        let corpus = try corpus(self)
        let tokenizer = try DataTestSupport.wordTokenizer()
        tokenizer.padding = PaddingParams(fixedLength: 30)
        tokenizer.truncation = TruncationParams(maxLength: 3)
        let loader = try makeLoader(corpus, tokenizer: tokenizer, .init(batchSize: 64, maxLength: 64, shuffle: false))
        XCTAssertEqual(try sequences(drain(loader.batches(epoch: 0))), encodedLines())
        XCTAssertNotNil(tokenizer.padding, "the caller's tokenizer is left as it was")
    }
}
