import Foundation
import XCTest
@testable import AlbertMoE

final class CheckpointTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testSaveLoadRoundTripGivesIdenticalOutputs() throws {
        let a = ids([[5, 9, 12, 7, 30, 2]])
        for causal in [true, false] {
            let dir = try temporaryDirectory().appendingPathComponent("model")
            let model: AlbertLMModel = causal ? AlbertForCausalLM(tinyConfig("absolute"), seed: 3) : AlbertForMaskedLM(tinyConfig(), seed: 3)
            model.eval()
            try model.save(to: dir)
            let loaded: AlbertLMModel = causal ? try AlbertForCausalLM.load(from: dir) : try AlbertForMaskedLM.load(from: dir)
            loaded.eval()
            XCTAssertEqual(loaded.config, model.config)
            XCTAssertEqual(try withNoGrad { try loaded(a).logits }.scalars, try withNoGrad { try model(a).logits }.scalars)
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as! [String: Any]
            XCTAssertEqual(config["model_type"] as? String, "albert_moe")
            XCTAssertEqual(config["architectures"] as? [String], [causal ? "AlbertForCausalLM" : "AlbertForMaskedLM"])
            let keys = Set(try SafetensorsFile.read(dir.appendingPathComponent("model.safetensors")).tensors.keys)
            XCTAssertEqual(keys, Set(model.namedParameters().map(\.0)))
        }
    }

    func testEncoderPrefixEitherWay() throws {
        let lm = AlbertForMaskedLM(tinyConfig(), seed: 4)
        lm.eval()
        let dir = try temporaryDirectory()
        try lm.save(to: dir)
        // A sentence encoder reads the LM's encoder (the head is left aside) ...
        let sentence = try SentenceAlbert.load(from: dir)
        sentence.eval()
        let a = ids([[5, 9, 12, 7]]), m = ids([[1, 1, 1, 0]])
        let viaLM = try withNoGrad { SentenceAlbert.meanPool(try lm.albert(a, attentionMask: m).hiddenStates, attentionMask: m) }
        XCTAssertEqual(try withNoGrad { try sentence(a, attentionMask: m) }.scalars, viaLM.scalars)
        // ... and an LM reads a bare encoder's names with its head from elsewhere.
        let bare = try temporaryDirectory()
        try sentence.save(to: bare)
        var weights = try ModelDirectory.readWeights(bare)
        XCTAssertTrue(weights.keys.allSatisfy { !$0.hasPrefix("albert.") })
        for (name, t) in lm.namedParameters() where !name.hasPrefix("albert.") { weights[name] = t }
        let again = AlbertForMaskedLM(tinyConfig(), seed: 99)
        try ModelDirectory.load(weights, into: again, encoderPrefixed: true, file: bare.appendingPathComponent(ModelDirectory.weightsFile))
        again.eval()
        XCTAssertEqual(try withNoGrad { try again(a).logits }.scalars, try withNoGrad { try lm(a).logits }.scalars)
    }

    func testHalfPrecisionWeightsAreUpcast() throws {
        // A checkpoint whose weights were stored as BF16 loads (values rounded to BF16, then widened).
        let lm = AlbertForCausalLM(tinyConfig(), seed: 5)
        let dir = try temporaryDirectory()
        try lm.save(to: dir)
        let url = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        // Rewrite as BF16: keep the upper half of every float.
        var newHeader: [String: Any] = [:]
        var body = Data()
        for key in header.keys.sorted() where key != "__metadata__" {
            let info = header[key] as! [String: Any]
            let offsets = info["data_offsets"] as! [Int]
            let floats = data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1]))
            let start = body.count
            floats.withUnsafeBytes { raw in
                for i in 0..<(floats.count / 4) {
                    let bits = raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                    var half = UInt16(bits >> 16).littleEndian
                    withUnsafeBytes(of: &half) { body.append(contentsOf: $0) }
                }
            }
            newHeader[key] = ["dtype": "BF16", "shape": info["shape"]!, "data_offsets": [start, body.count]]
        }
        var json = try JSONSerialization.data(withJSONObject: newHeader)
        while json.count % 8 != 0 { json.append(0x20) }
        data = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { data.append(contentsOf: $0) }
        data.append(json)
        data.append(body)
        try data.write(to: url)
        let loaded = try AlbertForCausalLM.load(from: dir)
        let w = lm.headDecoder.weight, v = loaded.headDecoder.weight
        for i in 0..<w.count { XCTAssertEqual(v.pointer[i], Float(bitPattern: w.pointer[i].bitPattern & 0xFFFF_0000)) }
    }

    func testUsefulErrors() throws {
        let dir = try temporaryDirectory()
        XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { XCTAssertTrue("\($0)".contains("config.json"), "\($0)") }
        try Data(#"{"vocab_size": 50, "hidden_size": 16, "num_attention_heads": 5}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { XCTAssertTrue("\($0)".contains("num_attention_heads"), "\($0)") }
        // A checkpoint of another size: one error listing the mismatches.
        let small = AlbertForCausalLM(tinyConfig(), seed: 1)
        try small.save(to: dir)
        var bigger = tinyConfig()
        bigger.vocabSize = 60
        try bigger.jsonData(architecture: "AlbertForCausalLM").write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { e in
            XCTAssertTrue("\(e)".contains("word_embeddings.weight") && "\(e)".contains("lm_head_decoder.weight"), "\(e)")
            guard case let .badFile(path, _, _)? = e as? AlbertMoEError else { return XCTFail("\(e)") }
            XCTAssertEqual(path, dir.appendingPathComponent("model.safetensors").path)
        }
        try Data([0, 1, 2]).write(to: dir.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try AlbertForCausalLM.load(from: dir)) { XCTAssertTrue("\($0)".contains("too short"), "\($0)") }
    }

    func testOptimizerStateResumesExactly() throws {
        let dir = try temporaryDirectory()
        let a = ids([[5, 9, 12, 7]])
        func step(_ m: AlbertForMaskedLM, _ o: ChillAdam) throws {
            o.zeroGrad()
            try m(a, labels: ids([[-100, 9, -100, 7]])).loss.backward()
            o.step()
        }
        let m1 = AlbertForMaskedLM(tinyConfig(), seed: 2), o1 = ChillAdam(m1.parameters())
        for _ in 0..<2 { try step(m1, o1) }
        try m1.save(to: dir)
        try o1.saveState(to: dir.appendingPathComponent("optimizer.safetensors"))
        for _ in 0..<2 { try step(m1, o1) }
        let m2 = try AlbertForMaskedLM.load(from: dir), o2 = ChillAdam(m2.parameters())
        try o2.loadState(from: dir.appendingPathComponent("optimizer.safetensors"))
        for _ in 0..<2 { try step(m2, o2) }
        for ((name, p1), (_, p2)) in zip(m1.namedParameters(), m2.namedParameters()) {
            XCTAssertEqual(p1.scalars, p2.scalars, name)
        }
    }
}
