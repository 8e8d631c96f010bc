import AlbertMoE
import Foundation
import JSON
import Layers
import Tokenizers
import XCTest

/// Model directories the reference Python package trained and saved (pytorch_model.bin, its tokenizer files, no
/// config.json), and what its own code answered with them (Scripts/make_reference_model_fixtures.py).
final class ReferenceModelTests: XCTestCase {
    struct Expected: Decodable {
        struct Tokenized: Decodable { let text: String; let ids: [Int] }
        struct Embeddings: Decodable { let texts: [String]; let batch_size: Int; let vectors: [[Float]] }
        struct Mask: Decodable { let position: Int; let ids: [Int]; let probabilities: [Float] }
        struct Fill: Decodable { let text: String; let ids: [Int]; let masks: [Mask] }
        struct Continuation: Decodable { let prompt: String; let prompt_ids: [Int32]; let generated: [Int32] }
        struct Greedy: Decodable { let gen_max_length: Int; let continuations: [Continuation] }
        let flags: [String]
        let tokenizer: [String: [Tokenized]]
        let embeddings: Embeddings
        let fill_mask: [Fill]
        let greedy: Greedy
    }

    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("reference_models")

    func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
    }

    /// The sizes the reference was trained with that its weights do not hold (its flags).
    func sizes(_ e: Expected) throws -> ModelSizes {
        func flag(_ name: String) throws -> Int {
            let i = try XCTUnwrap(e.flags.firstIndex(of: "--" + name))
            return try XCTUnwrap(Int(e.flags[i + 1]))
        }
        return ModelSizes(numHiddenLayers: try flag("num_hidden_layers"), topKExperts: try flag("top_k_experts"))
    }

    /// A copy of a reference directory; the causal one gets the tokenizer files it shares with the masked one.
    func directory(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reference-\(name)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(name), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        if name == "clm" {
            let mlm = Self.fixtures.appendingPathComponent("mlm")
            for file in try FileManager.default.contentsOfDirectory(atPath: mlm.path) where file != "pytorch_model.bin" {
                try FileManager.default.copyItem(at: mlm.appendingPathComponent(file), to: dir.appendingPathComponent(file))
            }
        }
        return dir
    }

    // MARK: Tokenizer files

    /// tokenizer.json (a fast tokenizer's save_pretrained) and spiece.model with tokenizer_config.json,
    /// special_tokens_map.json and added_tokens.json (a slow one's) give the ids transformers' AutoTokenizer gives.
    func testTokenizerFilesGiveTheIDsOfTransformers() throws {
        let e = try expected()
        for (name, cases) in e.tokenizer.sorted(by: { $0.key < $1.key }) {
            let tokenizer = try Tokenizer.load(from: Self.fixtures.appendingPathComponent(name == "mlm" ? "mlm" : name))
            for c in cases {
                XCTAssertEqual(try tokenizer.encodeUnpadded(c.text).ids, c.ids, "\(name): \(c.text.debugDescription)")
            }
            XCTAssertEqual(tokenizer.specialTokens.mask, .init(id: 4, content: "[MASK]"), name)
            XCTAssertEqual(tokenizer.specialTokens.eos, .init(id: 3, content: "[SEP]"), name)
            XCTAssertEqual(tokenizer.specialTokens.pad, .init(id: 0, content: "<pad>"), name)
            XCTAssertEqual(tokenizer.specialTokens.cls, .init(id: 2, content: "[CLS]"), name)
        }
        let spiece = try Tokenizer.load(from: Self.fixtures.appendingPathComponent("spiece_only"))
        XCTAssertEqual(spiece.vocabSize, 161)
        XCTAssertEqual(try spiece.decode(try spiece.encodeUnpadded("The  Big MOUSE").ids), "the big mouse")
    }

    // MARK: The reference's models

    func testMaskedModelEmbeddingsMatchTheReference() throws {
        let e = try expected()
        var notices: [String] = []
        let encoder = try SentenceAlbert.load(from: try directory("mlm"), options: ModelLoadOptions(sizes: try sizes(e))) {
            notices.append($0)
        }
        XCTAssertEqual(encoder.config.positionEmbeddingType, "none")
        XCTAssertEqual(encoder.config.numAttentionHeads, 4)
        XCTAssertEqual(encoder.config.maxPositionEmbeddings, 64)
        XCTAssertEqual(encoder.config.vocabSize, 256)
        XCTAssertTrue(notices.contains { $0.contains("torchtune") }, "\(notices)")
        let vectors = try encoder.encode(e.embeddings.texts, batchSize: e.embeddings.batch_size)
        for (got, want) in zip(vectors, e.embeddings.vectors) {
            XCTAssertEqual(got.count, want.count)
            let worst = zip(got, want).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4)
        }
    }

    func testMaskedModelFillsMasksAsTheReference() throws {
        let e = try expected()
        let dir = try directory("mlm")
        let model = try AlbertForMaskedLM.load(from: dir, options: ModelLoadOptions(sizes: try sizes(e)))
        let tokenizer = try Tokenizer.load(from: dir)
        for fill in e.fill_mask {
            XCTAssertEqual(try tokenizer.encodeUnpadded(fill.text).ids, fill.ids)
            let got = try model.fillMask(fill.text, tokenizer: tokenizer, topK: 5)
            XCTAssertEqual(got.map(\.position), fill.masks.map(\.position), fill.text)
            for (g, w) in zip(got, fill.masks) {
                XCTAssertEqual(g.predictions.map(\.tokenID), w.ids, fill.text)
                for (p, q) in zip(g.predictions.map(\.probability), w.probabilities) { XCTAssertEqual(p, q, accuracy: 1e-5) }
            }
        }
    }

    /// With --attention bidirectional, the reference's causal model continues each prompt (encoded with its special
    /// tokens, as its serve mode encodes it) with the same greedy tokens, recomputing the whole sequence per token.
    func testCausalModelRunBidirectionallyGeneratesTheReferenceTokens() throws {
        let e = try expected()
        let dir = try directory("clm")
        var notices: [String] = []
        let model = try AlbertForCausalLM.load(from: dir, options: ModelLoadOptions(sizes: try sizes(e), bidirectional: true)) {
            notices.append($0)
        }
        XCTAssertFalse(model.albert.causal)
        XCTAssertTrue(notices.contains { $0.contains("without its causal mask") }, "\(notices)")
        let tokenizer = try Tokenizer.load(from: dir)
        let eos = Int32(try XCTUnwrap(tokenizer.specialTokens.eos).id)
        for c in e.greedy.continuations {
            XCTAssertEqual(try tokenizer.encodeUnpadded(c.prompt).ids.map(Int32.init), c.prompt_ids)
            let options = SamplingOptions.greedy(maxNewTokens: e.greedy.gen_max_length - c.prompt_ids.count, stopTokens: [eos])
            let session = try GenerationSession(model: model, prompt: c.prompt_ids, options: options)
            while try session.next() != nil {}
            let made = session.finishReason == .stopToken ? Array(session.generated.dropLast()) : session.generated
            XCTAssertEqual(made, c.generated, c.prompt)
        }
    }

    /// Loaded as this package's causal model (the default), the reference's causal model runs masked, and says so.
    func testCausalReferenceModelLoadsMaskedWithANotice() throws {
        let e = try expected()
        var notices: [String] = []
        let model = try AlbertForCausalLM.load(from: try directory("clm"), options: ModelLoadOptions(sizes: try sizes(e))) {
            notices.append($0)
        }
        XCTAssertTrue(model.albert.causal)
        XCTAssertTrue(notices.contains { $0.contains("--attention bidirectional") }, "\(notices)")
        XCTAssertThrowsError(try AlbertForMaskedLM.load(from: try directory("clm"), options: ModelLoadOptions(sizes: try sizes(e)))) {
            XCTAssertTrue("\($0)".contains("AlbertForCausalLM"), "\($0)")
        }
    }

    /// A given size that the weights contradict is an error naming both; one the weights cannot give is checked too.
    func testContradictingSizesAreErrorsNamingBoth() throws {
        let dir = try directory("mlm")
        func expectError(_ sizes: ModelSizes, field: String, mentioning needles: [String], line: UInt = #line) {
            XCTAssertThrowsError(try AlbertForMaskedLM.load(from: dir, options: ModelLoadOptions(sizes: sizes)), line: line) { error in
                guard case let AlbertMoEError.invalidValue(f, reason) = error else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(f, field, line: line)
                for n in needles { XCTAssertTrue(reason.contains(n), "\(reason) lacks \(n)", line: line) }
            }
        }
        expectError(ModelSizes(hiddenSize: 768, numHiddenLayers: 2), field: "hidden_size", mentioning: ["768", "hidden_size 32"])
        expectError(ModelSizes(vocabSize: 30000), field: "vocab_size", mentioning: ["30000", "[256, 16]"])
        expectError(ModelSizes(embeddingSize: 128), field: "embedding_size", mentioning: ["128", "embedding_size 16"])
        expectError(ModelSizes(intermediateSize: 3072), field: "intermediate_size", mentioning: ["3072", "48"])
        expectError(ModelSizes(numExperts: 8), field: "num_experts", mentioning: ["8", "num_experts 4"])
        expectError(ModelSizes(maxPositionEmbeddings: 512), field: "max_position_embeddings", mentioning: ["512", "cos_cached"])
        expectError(ModelSizes(numAttentionHeads: 8), field: "num_attention_heads", mentioning: ["8", "head size 8"])
        expectError(ModelSizes(positionEmbeddingType: "absolute"), field: "position_embedding_type", mentioning: ["position_embeddings"])
        expectError(ModelSizes(topKExperts: 5), field: "top_k_experts", mentioning: ["pytorch_model.bin"])
    }

    // MARK: Config-less directories of any config

    /// Weights alone (no config.json) of random models give back the config the weights determine, with the rest
    /// from the sizes, and the same outputs; for RoPE models the head count comes from the sizes.
    func testWeightsAloneGiveTheirConfig() throws {
        var rng = SeededGenerator(seed: 11)
        for trial in 0..<12 {
            let heads = [1, 2, 4][trial % 3]
            let position = ["rope", "absolute"][trial % 2]
            let config = AlbertMoEConfig(vocabSize: 20 + rng.nextInt(below: 30), embeddingSize: 4 + rng.nextInt(below: 8),
                                         hiddenSize: heads * 2 * (1 + rng.nextInt(below: 4)), numHiddenLayers: 1 + rng.nextInt(below: 3),
                                         numAttentionHeads: heads, intermediateSize: 4 + rng.nextInt(below: 12),
                                         maxPositionEmbeddings: 16 + rng.nextInt(below: 16), positionEmbeddingType: position,
                                         numExperts: 1 + rng.nextInt(below: 4), topKExperts: 1)
            let causal = trial % 4 < 2
            let model: AlbertLMModel = causal ? AlbertForCausalLM(config, seed: UInt64(trial)) : AlbertForMaskedLM(config, seed: UInt64(trial))
            let dir = try weightsOnly(model.namedParameters().map { ($0.0, $0.1) })
            let sizes = ModelSizes(maxPositionEmbeddings: position == "rope" ? config.maxPositionEmbeddings : nil,
                                   numAttentionHeads: heads, numHiddenLayers: config.numHiddenLayers, topKExperts: 1)
            let loaded: AlbertLMModel = causal ? try AlbertForCausalLM.load(from: dir, options: ModelLoadOptions(sizes: sizes))
                : try AlbertForMaskedLM.load(from: dir, options: ModelLoadOptions(sizes: sizes))
            XCTAssertEqual(loaded.config, config, "trial \(trial)")
            let ids = IntTensor((0..<10).map { _ in Int32(rng.nextInt(below: config.vocabSize)) }, shape: [1, 10])
            model.eval()
            loaded.eval()
            let (a, b) = try withNoGrad { (try model(ids).logits.scalars, try loaded(ids).logits.scalars) }
            XCTAssertTrue(a == b, "trial \(trial): the loaded model computes other logits")
        }
    }

    /// The layouts of other versions of the Python package are refused, naming what differs.
    func testOtherLayoutsAreRefused() throws {
        let config = AlbertMoEConfig(vocabSize: 30, embeddingSize: 8, hiddenSize: 8, numHiddenLayers: 1, numAttentionHeads: 2,
                                     intermediateSize: 8, maxPositionEmbeddings: 16, numExperts: 2)
        let named = AlbertForMaskedLM(config).namedParameters().map { ($0.0, $0.1) }
        let layerNorm = try weightsOnly(named.flatMap { name, t -> [(String, Tensor)] in
            name == "albert.embeddings.norm.weight"
                ? [("albert.embeddings.LayerNorm.weight", t), ("albert.embeddings.LayerNorm.bias", t)] : [(name, t)]
        })
        let scripts = try weightsOnly(named.map { name, t in
            (name.replacingOccurrences(of: "word_embeddings", with: "token_embeddings")
                .replacingOccurrences(of: "token_type_embeddings", with: "segment_embeddings"), t)
        })
        let foreign = try weightsOnly([("bert.embeddings.word_embeddings.weight", named[0].1)])
        for (dir, needles) in [(layerNorm, ["LayerNorm", "RMSNorm", "embeddings.LayerNorm.bias"]),
                               (scripts, ["token_embeddings", "single-file scripts"]),
                               (foreign, ["embeddings.word_embeddings.weight", "not an AlbertMoE model"])] {
            XCTAssertThrowsError(try AlbertForMaskedLM.load(from: dir)) { error in
                for n in needles { XCTAssertTrue("\(error)".contains(n), "\(error) lacks \(n)") }
            }
            XCTAssertThrowsError(try SentenceAlbert.load(from: dir))
        }
    }

    /// pytorch_model.bin as `--save_every` writes it reads back alone (no config.json) as the same model: "none" and
    /// absolute models exactly; a RoPE model carries the Python package's RoPE-fallback tables, which it reads as
    /// "none", as that package runs it.
    func testWrittenPyTorchWeightsLoadAsTheReferencesDirectories() throws {
        var rng = SeededGenerator(seed: 5)
        for (trial, position) in ["none", "absolute", "rope", "none", "absolute", "rope"].enumerated() {
            let heads = [1, 2, 4][trial % 3]
            let config = AlbertMoEConfig(vocabSize: 20 + rng.nextInt(below: 20), embeddingSize: 4 + rng.nextInt(below: 6),
                                         hiddenSize: heads * 2 * (1 + rng.nextInt(below: 3)), numHiddenLayers: 2, numAttentionHeads: heads,
                                         intermediateSize: 6, maxPositionEmbeddings: 12 + rng.nextInt(below: 8),
                                         positionEmbeddingType: position, numExperts: 3, topKExperts: 2)
            let model = AlbertForMaskedLM(config, seed: UInt64(trial))
            let dir = try weightsOnly([])
            try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
            try ModelDirectory.writePyTorch(model, config: config, to: dir)
            let sizes = ModelSizes(numAttentionHeads: position == "absolute" ? heads : nil, numHiddenLayers: 2)
            var notices: [String] = []
            let loaded = try AlbertForMaskedLM.load(from: dir, options: ModelLoadOptions(sizes: sizes)) { notices.append($0) }
            var want = config
            if position == "rope" { want.positionEmbeddingType = "none" }
            XCTAssertEqual(loaded.config, want, "trial \(trial)")
            XCTAssertEqual(notices.isEmpty, position == "absolute", "trial \(trial): \(notices)")
            guard position != "rope" else { continue }
            model.eval()
            loaded.eval()
            let ids = IntTensor((0..<8).map { _ in Int32(rng.nextInt(below: config.vocabSize)) }, shape: [1, 8])
            let (a, b) = try withNoGrad { (try model(ids).logits.scalars, try loaded(ids).logits.scalars) }
            XCTAssertTrue(a == b, "trial \(trial): the loaded model computes other logits")
        }
    }

    /// Seeded mutations of the reference's pytorch_model.bin (bit flips, truncations, bytes set to 0xFF) load as a
    /// model or fail with an error, never a crash.
    func testMutatedReferenceWeightsFailCleanly() throws {
        let original = try Data(contentsOf: Self.fixtures.appendingPathComponent("mlm/pytorch_model.bin"))
        let dir = try weightsOnly([])
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        let file = dir.appendingPathComponent("pytorch_model.bin")
        let sizes = ModelSizes(numHiddenLayers: 2)
        var rng = SeededGenerator(seed: 2024)
        var (loaded, refused) = (0, 0)
        for trial in 0..<300 {
            var bytes = [UInt8](original)
            switch trial % 3 {
            case 0:
                for _ in 0..<(1 + rng.nextInt(below: 4)) { bytes[rng.nextInt(below: bytes.count)] ^= UInt8(1 << rng.nextInt(below: 8)) }
            case 1:
                bytes.removeLast(1 + rng.nextInt(below: bytes.count - 1))
            default:
                let at = rng.nextInt(below: bytes.count - 8)
                for i in at..<(at + 8) { bytes[i] = 0xFF }
            }
            try Data(bytes).write(to: file)
            do {
                _ = try AlbertForMaskedLM.load(from: dir, options: ModelLoadOptions(sizes: sizes))
                loaded += 1
            } catch is AlbertMoEError {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 0)
        XCTAssertEqual(loaded + refused, 300)
    }

    /// A directory holding only `tensors` as model.safetensors (no config.json).
    func weightsOnly(_ tensors: [(String, Tensor)]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weights-only-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try Safetensors.write(Dictionary(tensors, uniquingKeysWith: { a, _ in a }), metadata: ["format": "pt"],
                              to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }
}
