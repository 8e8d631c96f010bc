import Foundation
import XCTest
@testable import AlbertMoE
import Layers
import Tensors
import Tokenizers

/// Padding is never content: right padding changes nothing at the real positions, and a tokenizer.json that
/// declares its own fixed padding and truncation (as many published ones do) changes no model input.
final class PaddingTests: XCTestCase {
    /// |a - b| <= 1e-5 * max(1, |b|) everywhere, else the worst element.
    private func assertClose(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, _ what: @autoclosure () -> String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what(), file: file, line: line)
        var worst: (Int, Float, Float)? = nil, worstError: Float = 0
        for (i, (x, y)) in zip(a, b).enumerated() {
            let error = abs(x - y) / max(1, abs(y))
            if !(error <= 1e-5) && (worst == nil || !(error <= worstError)) { worst = (i, x, y); worstError = error }
        }
        if let (i, x, y) = worst { XCTFail("\(what()): element \(i) is \(x), expected \(y)", file: file, line: line) }
    }

    private func config(_ position: String) -> AlbertMoEConfig {
        var c = AlbertMoEConfig(vocabSize: 97, embeddingSize: 16, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4,
                                intermediateSize: 48, hiddenDropoutProb: 0, attentionProbsDropoutProb: 0,
                                maxPositionEmbeddings: 1024, positionEmbeddingType: position, numExperts: 4, topKExperts: 2)
        // The load-balancing loss counts padding tokens (as the reference does); everything else must not see them.
        c.auxLossCoefficient = 0
        return c
    }

    private struct Run {
        let hidden: [Float], logits: [Float], loss: Float?, grads: [String: [Float]]
    }

    private func run(_ model: AlbertLMModel, _ ids: [Int32], mask: [Int32], labels: [Int32], rows: Int) throws -> Run {
        model.zeroGrad()
        let t = ids.count / rows
        let out = try model(IntTensor(ids, shape: [rows, t]), attentionMask: IntTensor(mask, shape: [rows, t]),
                        labels: IntTensor(labels, shape: [rows, t]))
        let hasTargets = (model is AlbertForCausalLM ? labels.enumerated().contains { $0.offset % t > 0 && $0.element != -100 }
                                                      : labels.contains { $0 != -100 })
        var grads: [String: [Float]] = [:]
        if hasTargets {
            out.ceLoss.backward()
            for (name, p) in model.namedParameters() {
                grads[name] = p.grad?.scalars ?? [Float](repeating: 0, count: p.count)
            }
        }
        return Run(hidden: out.hiddenStates.scalars, logits: out.logits.scalars,
                   loss: hasTargets ? out.ceLoss.item : nil, grads: grads)
    }

    /// For T in 1...512 and any amount of right padding (the padding holds the pad id or arbitrary ids), causal and
    /// bidirectional, RoPE and absolute: hidden states, logits, loss and every parameter gradient at the real
    /// positions equal those of the unpadded sequence, and each row of a mixed-length batch equals the row alone.
    /// T = 1 with hundreds of pads is a query whose keys are all masked but one; long paddings mask whole tiles.
    func testRightPaddingChangesNothingAtTheRealPositions() throws {
        var g = SeededGenerator(seed: 2024)
        let lengths = [1, 1, 2, 3, 512, 511, 64, 65, 127, 128, 129, 255] + (0..<36).map { _ in 1 + Int(g.next() % 512) }
        var cases = 0
        for (index, t) in lengths.enumerated() {
            let causal = index % 2 == 0
            let position = (index / 2) % 2 == 0 ? "rope" : "absolute"
            let maxPad = 1024 - t
            let pad: Int = switch index % 4 {
            case 0: Int(g.next() % UInt64(min(maxPad, 8) + 1))
            case 1: maxPad - Int(g.next() % 64)
            default: Int(g.next() % UInt64(maxPad + 1))
            }
            let c = config(position)
            let model: AlbertLMModel = causal ? AlbertForCausalLM(c, seed: UInt64(index)) : AlbertForMaskedLM(c, seed: UInt64(index))
            model.eval()
            let v = UInt64(c.vocabSize), h = c.hiddenSize, vocab = c.vocabSize
            let real = (0..<t).map { _ in Int32(1 + g.next() % (v - 1)) }
            let fill = (0..<pad).map { _ in index % 3 == 0 ? Int32(c.padTokenID) : Int32(g.next() % v) }
            var labels = real.map { token -> Int32 in causal || g.next() % 100 < 15 ? token : -100 }
            if !causal && !labels.contains(where: { $0 != -100 }) { labels[Int(g.next() % UInt64(t))] = real[0] }
            let what = "case \(index): T \(t), padding \(pad), \(causal ? "causal" : "masked"), \(position)"

            let alone = try run(model, real, mask: [Int32](repeating: 1, count: t), labels: labels, rows: 1)
            let padded = try run(model, real + fill, mask: [Int32](repeating: 1, count: t) + [Int32](repeating: 0, count: pad),
                             labels: labels + [Int32](repeating: -100, count: pad), rows: 1)
            assertClose(padded.hidden[0..<(t * h)], alone.hidden[...], "\(what): hidden states")
            assertClose(padded.logits[0..<(t * vocab)], alone.logits[...], "\(what): logits")
            XCTAssertEqual(padded.loss == nil, alone.loss == nil, what)
            if let a = alone.loss, let p = padded.loss { assertClose([p][...], [a][...], "\(what): loss") }
            XCTAssertEqual(Set(padded.grads.keys), Set(alone.grads.keys), what)
            for (name, expected) in alone.grads { assertClose(padded.grads[name]![...], expected[...], "\(what): gradient of \(name)") }

            // A batch: this sequence padded, beside a full-length one, each row as it is alone (forward only).
            if pad > 0 {
                let other = (0..<(t + pad)).map { _ in Int32(1 + g.next() % (v - 1)) }
                let otherAlone = try withNoGrad { try model(IntTensor(other, shape: [1, t + pad])).hiddenStates.scalars }
                let batch = try withNoGrad {
                    try model(IntTensor(real + fill + other, shape: [2, t + pad]),
                          attentionMask: IntTensor([Int32](repeating: 1, count: t) + [Int32](repeating: 0, count: pad)
                                                   + [Int32](repeating: 1, count: t + pad), shape: [2, t + pad])).hiddenStates.scalars
                }
                assertClose(batch[0..<(t * h)], alone.hidden[...], "\(what): padded row of a batch")
                assertClose(batch[((t + pad) * h)...], otherAlone[...], "\(what): full row of a batch")
            }
            cases += 1
        }
        XCTAssertEqual(cases, lengths.count)
    }

    // MARK: Tokenizers that declare their own padding and truncation

    /// `tokenizer`'s tokenizer.json with fixed padding to `length` and truncation at `length`, as published
    /// sentence-embedding tokenizers declare them.
    static func declaringPadding(_ tokenizer: Tokenizer, length: Int = 128, padToken: String) throws -> Tokenizer {
        let copy = try Tokenizer(jsonString: tokenizer.toJSONString())
        copy.padding = PaddingParams(fixedLength: length, padId: try XCTUnwrap(copy.tokenToId(padToken)), padToken: padToken)
        copy.truncation = TruncationParams(maxLength: length)
        let declared = try Tokenizer(jsonString: copy.toJSONString())      // as a file declares them
        declared.specialTokens = tokenizer.specialTokens
        XCTAssertEqual(try declared.encode("w1").ids.count, length, "the declared padding must be in force")
        return declared
    }

    /// Random sentences over the word tokenizer's vocabulary, of 0 to 300 words (some past every limit).
    private func sentences(_ count: Int, seed: UInt64) -> [String] {
        var g = SeededGenerator(seed: seed)
        return (0..<count).map { i in
            let n = i % 10 == 0 ? Int(140 + g.next() % 160) : Int(g.next() % 40)
            return (0..<n).map { _ in "w\(g.next() % 200)" }.joined(separator: " ")
        }
    }

    private func smallConfig(vocabSize: Int = 205) -> AlbertMoEConfig {
        AlbertMoEConfig(vocabSize: vocabSize, embeddingSize: 16, hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 4,
                        intermediateSize: 48, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1,
                        maxPositionEmbeddings: 256, numExperts: 4, topKExperts: 2)
    }

    /// Each sentence of a mixed-length batch embeds as it embeds alone, and the same whatever padding and
    /// truncation the tokenizer.json declares; a cut sentence keeps its final [SEP].
    func testEmbeddingsIgnoreDeclaredPaddingAndBatching() throws {
        let plain = try DataTestSupport.wordTokenizer()
        let declared = try Self.declaringPadding(plain, padToken: "[PAD]")
        let encoder = SentenceAlbert(smallConfig(), seed: 7)
        encoder.train()                                                  // encode must switch dropout off itself
        let texts = sentences(120, seed: 11)
        encoder.tokenizer = plain
        let batched = try encoder.encode(texts, batchSize: 16)
        for (i, text) in texts.enumerated() {
            let ids = try encoder.inputIDs(text)
            XCTAssertLessThanOrEqual(ids.count, encoder.maxSequenceLength)
            XCTAssertEqual(ids.first, 2)
            XCTAssertEqual(ids.last, 3, "a cut sentence keeps its [SEP]")
            XCTAssertFalse(ids.dropFirst().dropLast().contains(0), "no padding inside the input")
            if i % 4 == 0 {
                let alone = try encoder.encode([text], batchSize: 1)[0]
                assertClose(batched[i][...], alone[...], "sentence \(i) in a batch against alone")
            }
        }
        encoder.tokenizer = declared
        XCTAssertEqual(try encoder.encode(texts, batchSize: 16), batched)
        XCTAssertTrue(encoder.isTraining)
    }

    /// Training and validation batches, perplexity, masked accuracy and mask filling are the same with a
    /// tokenizer.json that declares fixed padding and truncation as without.
    func testEveryEntryPointIgnoresDeclaredPadding() throws {
        let plain = try DataTestSupport.wordTokenizer()
        let declared = try Self.declaringPadding(plain, length: 128, padToken: "[PAD]")
        let shortPadding = try Self.declaringPadding(plain, length: 16, padToken: "[PAD]")
        let texts = sentences(80, seed: 5)
        let dir = try DataTestSupport.temporaryDirectory(self)
        let corpus = try TextCorpus(path: DataTestSupport.write(texts.filter { !$0.isEmpty }.joined(separator: "\n"),
                                                              to: "c.txt", in: dir))

        func batches(_ tokenizer: Tokenizer, masked: Bool, _ configuration: BatchLoader.Configuration) throws -> [Batch] {
            let collator: any Collator = masked ? try MaskedLMCollator(tokenizer: tokenizer) : CausalLMCollator(padID: 0)
            let loader = try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: collator, configuration: configuration)
            let stream = loader.batches(epoch: 1)
            var out: [Batch] = []
            while let b = try stream.next() { out.append(b) }
            return out
        }
        for masked in [false, true] {
            for configuration in [BatchLoader.Configuration(batchSize: 8, maxLength: 200),
                                  BatchLoader.Configuration(batchSize: 8, maxLength: 24, streaming: true),
                                  BatchLoader.Configuration(batchSize: 4, maxLength: 32, packing: true)] {
                let expected = try batches(plain, masked: masked, configuration)
                XCTAssertFalse(expected.isEmpty)
                XCTAssertEqual(try batches(declared, masked: masked, configuration), expected)
                XCTAssertEqual(try batches(shortPadding, masked: masked, configuration), expected)
                for b in expected {
                    let rowTokens = b.attentionMask.scalars.reduce(0) { $0 + Int($1) }
                    XCTAssertEqual(rowTokens, b.tokenCount)
                }
            }
        }

        let causal = AlbertForCausalLM(smallConfig(), seed: 3)
        let window = Array(texts.prefix(30))
        let perplexity = try causal.perplexity(of: window, tokenizer: plain, window: 64)
        XCTAssertEqual(try causal.perplexity(of: window, tokenizer: declared, window: 64), perplexity)
        XCTAssertEqual(try causal.perplexity(of: window, tokenizer: shortPadding, window: 64), perplexity)

        let masked = AlbertForMaskedLM(smallConfig(), seed: 4)
        for text in ["w3 [MASK] w9", "[MASK]", (0..<150).map { $0 % 9 == 0 ? "[MASK]" : "w\($0)" }.joined(separator: " ")] {
            XCTAssertEqual(try masked.fillMask(text, tokenizer: declared), try masked.fillMask(text, tokenizer: plain))
        }
        let heldOut = { (tokenizer: Tokenizer) in
            try BatchLoader(corpus: corpus, tokenizer: tokenizer, collator: try MaskedLMCollator(tokenizer: tokenizer),
                            configuration: .init(batchSize: 8, maxLength: 64, shuffle: false))
        }
        XCTAssertEqual(try masked.maskedTokenAccuracy(on: heldOut(declared)), try masked.maskedTokenAccuracy(on: heldOut(plain)))
    }

    /// A masked model made by the reference Python package, whose tokenizer.json declares fixed padding and
    /// truncation at 128 (`Scripts/make_reference_embeddings.py`): its embeddings of 200 sentences of 2 to 128 tokens,
    /// in batches of 32, are the reference SentenceAlbert's within 1e-4.
    func testReferenceEmbeddingsWhateverPaddingTheTokenizerDeclares() throws {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
            .appendingPathComponent("reference_sentence")
        let encoder = try SentenceAlbert.load(from: dir)
        XCTAssertEqual(try XCTUnwrap(encoder.tokenizer).padding?.fixedLength, 128, "the fixture declares padding")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("sentences.json"))) as! [String: Any]
        let texts = try XCTUnwrap(meta["sentences"] as? [String]), counts = try XCTUnwrap(meta["token_counts"] as? [Int])
        XCTAssertEqual(texts.count, 200)
        XCTAssertEqual(try texts.map { try encoder.inputIDs($0).count }, counts, "the reference's token counts")
        let expected = try SafetensorsFile.read(dir.appendingPathComponent("expected.safetensors")).float("embeddings")
        let h = encoder.config.hiddenSize
        XCTAssertEqual(expected.shape, [texts.count, h])
        for batchSize in [32, 7] {
            let got = try encoder.encode(texts, batchSize: batchSize)
            var worst: Float = 0
            for (i, vector) in got.enumerated() {
                for (j, x) in vector.enumerated() { worst = max(worst, abs(x - expected.scalars[i * h + j])) }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "batches of \(batchSize): max abs difference \(worst)")
        }
    }

    /// The tokenizer itself still applies what its file declares (as the Python library does), and a caller can
    /// ask for model input without it.
    func testTheTokenizerKeepsItsDeclaredSettingsForItsOwnCallers() throws {
        let declared = try Self.declaringPadding(try DataTestSupport.wordTokenizer(), length: 8, padToken: "[PAD]")
        let words = (0..<20).map { "w\($0)" }.joined(separator: " ")
        let w = { (i: Int) in Int(DataTestSupport.wordID(i)) }
        XCTAssertEqual(try declared.encode("w1 w2").ids, [2, w(1), w(2), 3, 0, 0, 0, 0])
        XCTAssertEqual(try declared.encode("w1 w2").attentionMask, [1, 1, 1, 1, 0, 0, 0, 0])
        XCTAssertEqual(try declared.encode(words).ids, [2] + (0..<6).map(w) + [3])
        XCTAssertEqual(try declared.encodeUnpadded("w1 w2").ids, [2, w(1), w(2), 3])
        XCTAssertEqual(try declared.encodeUnpadded(words).ids.count, 22)
        XCTAssertEqual(try declared.encodeUnpadded(words, maxLength: 5).ids, [2, w(0), w(1), w(2), 3])
        XCTAssertEqual(try declared.encodeUnpadded("w1 w2", addSpecialTokens: false).ids, [w(1), w(2)])
    }
}
