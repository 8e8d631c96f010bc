@testable import AlbertMoE
import Foundation
import JSON
import Tensors
import XCTest

/// Sizes no real model has, the memory a job needs against what the machine has, and weights that are no numbers:
/// each is an error naming what is wrong, found before anything large is allocated.
final class BoundsTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-bounds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// The sizes of config.json that used to stop the process (an allocation it could not make, an arithmetic
    /// overflow) or run it out of memory or time.
    static let reproducers: [(field: String, value: Int)] = [
        ("hidden_size", 1_000_000_000), ("vocab_size", 1_000_000_000), ("embedding_size", 1_000_000_000),
        ("intermediate_size", 1_000_000_000), ("type_vocab_size", 1_000_000_000), ("hidden_size", 1 << 62),
        ("num_experts", 1_000_000), ("num_hidden_layers", 1_000_000), ("max_position_embeddings", 1 << 40),
    ]

    func testConfigJSONSizesNoModelHasFailByNameBeforeTheWeightsAreRead() throws {
        for (field, value) in Self.reproducers {
            let dir = try temporaryDirectory()
            // No weights file at all: the config is refused before one is looked for.
            try Data("{\"\(field)\": \(value), \"architectures\": [\"AlbertForCausalLM\"]}".utf8)
                .write(to: dir.appendingPathComponent("config.json"))
            let start = Date()
            XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { error in
                XCTAssertEqual((error as? AlbertMoEError)?.field, field, "\(error)")
                XCTAssertTrue("\(error)".contains("\(value)") && "\(error)".contains("config.json"), "\(error)")
            }
            XCTAssertThrowsError(try ModelDirectory.loadModel(from: dir)) { XCTAssertEqual(($0 as? AlbertMoEError)?.field, field) }
            XCTAssertLessThan(Date().timeIntervalSince(start), 1)
        }
    }

    /// A random config of a size real models have (heads dividing the hidden size, an even head size for RoPE).
    func saneConfig(_ g: inout SeededGenerator) -> AlbertMoEConfig {
        let heads = 1 << g.nextInt(below: 5)
        let hidden = heads * 2 * (1 + g.nextInt(below: 48))
        let experts = 1 + g.nextInt(below: 16)
        var c = AlbertMoEConfig(vocabSize: 2 + g.nextInt(below: 50_000), embeddingSize: 1 + g.nextInt(below: 256),
                                hiddenSize: hidden, numHiddenLayers: 1 + g.nextInt(below: 24), numAttentionHeads: heads,
                                intermediateSize: 1 + g.nextInt(below: 4096), maxPositionEmbeddings: 1 + g.nextInt(below: 4096),
                                positionEmbeddingType: ["rope", "absolute", "none"][g.nextInt(below: 3)],
                                numExperts: experts, topKExperts: 1 + g.nextInt(below: experts))
        c.typeVocabSize = 1 + g.nextInt(below: 4)
        return c
    }

    func testSaneConfigsPassAndSizesBeyondTheirLimitsFailByName() throws {
        var g = SeededGenerator(seed: 11)
        let plenty = AvailableMemory(bytes: 1 << 40, source: "a test's terabyte")
        for _ in 0 ..< 200 {
            let config = saneConfig(&g)
            XCTAssertNoThrow(try config.validate(), "\(config)")
            XCTAssertNoThrow(try config.checkMemory(for: .training(batchSize: 1 + g.nextInt(below: 8), sequenceLength: 64,
                                                                   optimizerStates: 2), available: plenty), "\(config)")

            // One size beyond its limit, anywhere up to Int.max.
            var absurd = config
            let (field, limit) = AlbertMoEConfig.sizeLimits[g.nextInt(below: AlbertMoEConfig.sizeLimits.count)]
            let value = limit + 1 + Int(g.next() % UInt64(Int.max - limit - 1) >> UInt64(g.nextInt(below: 62)))
            let path: [String: WritableKeyPath<AlbertMoEConfig, Int>] = [
                "vocab_size": \.vocabSize, "embedding_size": \.embeddingSize, "hidden_size": \.hiddenSize,
                "num_hidden_layers": \.numHiddenLayers, "num_attention_heads": \.numAttentionHeads,
                "intermediate_size": \.intermediateSize, "max_position_embeddings": \.maxPositionEmbeddings,
                "type_vocab_size": \.typeVocabSize, "num_experts": \.numExperts, "expert_capacity": \.expertCapacity,
            ]
            absurd[keyPath: path[field]!] = value
            XCTAssertThrowsError(try absurd.validate(), "\(field) \(value)") { error in
                XCTAssertEqual((error as? AlbertMoEError)?.field, field, "\(error)")
                XCTAssertTrue("\(error)".contains("\(value)") && "\(error)".contains("\(limit)"), "\(error)")
            }
        }
    }

    func testSizesWithinTheirLimitsThatCannotFitNameTheFieldTheEstimateAndWhatIsAvailable() throws {
        let training = ModelWorkload.training(batchSize: 8, sequenceLength: 512, optimizerStates: 2)
        let base = try AlbertMoEConfig().memoryEstimate(for: training)
        // A machine with room for the default (base) model's training, and no more than twice that.
        let available = AvailableMemory(bytes: base.bytes * 2, source: "a test's machine")
        XCTAssertNoThrow(try AlbertMoEConfig().checkMemory(for: training, available: available))
        let at: [(String, (inout AlbertMoEConfig) -> Void)] = [
            ("vocab_size", { $0.vocabSize = 1 << 22 }), ("embedding_size", { $0.embeddingSize = 1 << 16 }),
            ("hidden_size", { $0.hiddenSize = 1 << 16; $0.numAttentionHeads = 16 }),
            ("intermediate_size", { $0.intermediateSize = 1 << 18 }), ("num_experts", { $0.numExperts = 4096 }),
            ("num_hidden_layers", { $0.numHiddenLayers = 1024 }),
        ]
        for (field, change) in at {
            var config = AlbertMoEConfig()
            change(&config)
            XCTAssertNoThrow(try config.validate(), field)
            XCTAssertThrowsError(try config.checkMemory(for: training, available: available), field) { error in
                XCTAssertEqual((error as? AlbertMoEError)?.field, field, "\(error)")
                XCTAssertTrue("\(error)".contains("estimated") && "\(error)".contains("a test's machine"), "\(error)")
            }
        }
        // The job's own sizes are named too.
        XCTAssertThrowsError(try AlbertMoEConfig().checkMemory(for: .inference(batchSize: 1 << 20, sequenceLength: 512),
                                                               available: available)) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "batch_size", "\($0)")
        }
    }

    func testTheEstimateThrowsInsteadOfOverflowing() throws {
        // Sizes nobody validated: the products overflow an Int, which is an error naming a field, not a trap.
        var config = AlbertMoEConfig()
        config.vocabSize = 1 << 40
        config.embeddingSize = 1 << 40
        XCTAssertThrowsError(try config.memoryEstimate(for: .load)) { XCTAssertNotNil(($0 as? AlbertMoEError)?.field, "\($0)") }
        XCTAssertThrowsError(try AlbertMoEConfig().memoryEstimate(for: .inference(batchSize: .max, sequenceLength: 512))) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "batch_size", "\($0)")
        }
        XCTAssertThrowsError(try Shape.elementCount([1 << 40, 1 << 40]))
        XCTAssertThrowsError(try Shape.elementCount([3, -1]))
        XCTAssertEqual(try Shape.elementCount([3, 0, 1 << 62]), 0)
        XCTAssertEqual(try Shape.elementCount([]), 1)
    }

    func testGenerationCountsTheCacheOfThePromptAndTheNewTokens() throws {
        let config = AlbertMoEConfig(vocabSize: 1000, hiddenSize: 64, numHiddenLayers: 3, numAttentionHeads: 4,
                                     maxPositionEmbeddings: 256)
        func cache(_ tokens: Int) throws -> Int? {
            try config.memoryEstimate(for: .generation(tokens: tokens)).parts.first { $0.name == "key/value caches" }?.bytes
        }
        XCTAssertEqual(try cache(100), 3 * 100 * 64 * 2 * 4)      // keys and values of every pass, 4 bytes each
        XCTAssertEqual(try cache(10_000), 3 * 256 * 64 * 2 * 4)   // no sequence is longer than the model's positions
        XCTAssertNil(try config.memoryEstimate(for: .inference(batchSize: 1, sequenceLength: 100)).parts
            .first { $0.name == "key/value caches" })
        // Loading holds the file's weights and the model's side by side.
        let load = try config.memoryEstimate(for: .load).bytes
        let idle = try config.memoryEstimate(for: .inference(batchSize: 0, sequenceLength: 0, logits: false))
        let weights = idle.parts.map(\.bytes).reduce(0, +)
        XCTAssertEqual(weights, 4 * (1000 * 128 + 8 * 2 * 3072 * 64 + 4 * 64 * 64 + 2 * 128 + 3 * 64 * 128))
        XCTAssertEqual(load, 2 * weights)
        XCTAssertEqual(idle.bytes, load)   // the peak of a job is never below its loading's
    }

    func testAvailableMemoryIsMemAvailableOrWhatTheCgroupLeaves() {
        let meminfo = "MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"
        XCTAssertEqual(AvailableMemory.parse(meminfo: meminfo, cgroupMax: "max\n", cgroupCurrent: "123\n")?.bytes,
                       8_000_000 * 1024)
        let limited = AvailableMemory.parse(meminfo: meminfo, cgroupMax: "4294967296\n", cgroupCurrent: "1073741824\n")
        XCTAssertEqual(limited?.bytes, 3 << 30)
        XCTAssertTrue(limited?.source.contains("memory.max") ?? false)
        XCTAssertEqual(AvailableMemory.parse(meminfo: meminfo, cgroupMax: "99999999999999", cgroupCurrent: nil)?.bytes,
                       8_000_000 * 1024)
        XCTAssertEqual(AvailableMemory.parse(meminfo: nil, cgroupMax: "1000", cgroupCurrent: "10")?.bytes, 990)
        // The page cache is reclaimed when needed: it is not counted as used.
        XCTAssertEqual(AvailableMemory.parse(meminfo: meminfo, cgroupMax: "4294967296", cgroupCurrent: "4000000000",
                                             cgroupStat: "anon 1000000000\nfile 3000000000\nkernel 1000\n")?.bytes,
                       4_294_967_296 - 1_000_000_000)
        XCTAssertNil(AvailableMemory.parse(meminfo: nil, cgroupMax: nil, cgroupCurrent: nil))
        XCTAssertNotNil(AvailableMemory.current())
    }

    func testWeightsHoldingNaNOrInfinityAreRefusedNamingTheTensor() throws {
        let config = AlbertMoEConfig(vocabSize: 40, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                     intermediateSize: 24, maxPositionEmbeddings: 32, numExperts: 2, topKExperts: 1)
        var g = SeededGenerator(seed: 5)
        for (round, bad) in [Float.nan, .infinity, -.infinity, -Float.nan].enumerated() {
            let model = AlbertForCausalLM(config, seed: UInt64(round))
            let parameters = model.namedParameters()
            let (name, tensor) = parameters[g.nextInt(below: parameters.count)]
            let index = g.nextInt(below: tensor.count)
            tensor.pointer[index] = bad
            let dir = try temporaryDirectory()
            try model.save(to: dir)
            if round % 2 == 1 {   // the PyTorch format, as the only weights file
                try ModelDirectory.writePyTorch(model, config: config, to: dir)
                try FileManager.default.removeItem(at: dir.appendingPathComponent(ModelDirectory.weightsFile))
            }
            XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { error in
                XCTAssertTrue("\(error)".contains(name) && "\(error)".contains("element \(index)"), "\(error)")
            }
            XCTAssertThrowsError(try SentenceAlbert.load(from: dir)) { XCTAssertTrue("\($0)".contains("finite"), "\($0)") }
        }
    }

    func testTheJSONWriterRefusesNonFiniteNumbersNamingWhere() throws {
        let value = JSONValue.obj([("ok", .number(1.5)), ("data", .array([.number(0), .obj([("embedding", .array([.number(2), .number(.nan)]))])]))])
        XCTAssertThrowsError(try value.serialized()) { error in
            XCTAssertEqual((error as? JSONNonFiniteNumber)?.path, "$.data[1].embedding[1]", "\(error)")
        }
        XCTAssertThrowsError(try JSONValue.number(-.infinity).serialized(indent: nil)) {
            XCTAssertEqual(($0 as? JSONNonFiniteNumber)?.path, "$")
        }
        XCTAssertEqual(try JSONValue.obj([("a", .array([.number(1), .number(0.25)]))]).serialized(indent: nil), "{\"a\":[1,0.25]}")
    }

    /// A number past Double's range is a parse error, as in serde_json, never an infinity that a writer would then
    /// refuse (found by the json fuzz harness: `[1e388, -0, 0.1, 123000000000000000000043518700, "..."]`).
    func testTheJSONReaderRefusesNumbersPastDoublesRange() throws {
        for text in ["[1e388, -0, 0.1, 123000000000000000000043518700, \"\\\\/\\\"\\t\"]", "1e309", "-1e400", "{\"a\": 17.5e999}",
                     "123456789012345678901234567890e300"] {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { error in
                XCTAssertTrue(error is JSONError, "\(text): \(error)")
                XCTAssertTrue("\(error)".contains("out of range"), "\(text): \(error)")
            }
        }
        for (text, value) in [("1e308", 1e308), ("-1.7976931348623157e308", -1.7976931348623157e308), ("1e-400", 0)] {
            XCTAssertEqual(try JSONValue.parse(text), .number(value), text)
            XCTAssertNoThrow(try JSONValue.parse(text).serialized(), text)
        }
    }

    func testFirstNonFiniteIndexFindsTheFirst() {
        var g = SeededGenerator(seed: 3)
        for _ in 0 ..< 50 {
            let n = 1 + g.nextInt(below: 20_000)
            let t = Tensor.normal([n], generator: &g)
            XCTAssertNil(t.firstNonFiniteIndex)
            let first = g.nextInt(below: n)
            t.pointer[first] = [Float.nan, .infinity, -.infinity][g.nextInt(below: 3)]
            if first + 1 < n { t.pointer[first + 1 + g.nextInt(below: n - first - 1)] = .nan }
            XCTAssertEqual(t.firstNonFiniteIndex, first)
        }
    }
}
