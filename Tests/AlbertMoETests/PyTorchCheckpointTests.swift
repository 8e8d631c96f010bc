import Foundation
import XCTest
@testable import AlbertMoE

final class PyTorchCheckpointTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-pt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func logits(_ model: AlbertLMModel, _ input: IntTensor) throws -> [Float] {
        model.eval()
        return try withNoGrad { try model(input).logits }.scalars
    }

    /// The reference model's own torch.save checkpoint, in a directory with no model.safetensors, gives the
    /// reference's logits.
    func testReferenceModelsPyTorchCheckpointLoads() throws {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let dir = fixtures.appendingPathComponent("reference_pytorch")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors").path))
        let model = try AlbertForCausalLM.load(from: dir)
        let expected = try SafetensorsFile.read(dir.appendingPathComponent("expected.safetensors"))
        let got = try logits(model, try expected.int("input_ids"))
        let want = try expected.float("logits").scalars
        XCTAssertEqual(got.count, want.count)
        let worst = zip(got, want).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4)
        // The same weights through safetensors give the same logits bit for bit.
        let copy = try temporaryDirectory()
        try FileManager.default.copyItem(at: dir.appendingPathComponent("config.json"), to: copy.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: dir.appendingPathComponent("pytorch_model.bin"), to: copy.appendingPathComponent("pytorch_model.bin"))
        try ModelDirectory.convertWeights(in: copy, to: .safetensors)
        try FileManager.default.removeItem(at: copy.appendingPathComponent("pytorch_model.bin"))
        XCTAssertEqual(try logits(try AlbertForCausalLM.load(from: copy), try expected.int("input_ids")), got)
    }

    func testDirectoryWithOnlyPyTorchWeightsGivesTheSameLogits() throws {
        let input = IntTensor([Int32(5), 9, 12, 7, 30, 2, 1, 3], shape: [2, 4])
        for causal in [true, false] {
            let dir = try temporaryDirectory()
            let model: AlbertLMModel = causal ? AlbertForCausalLM(tinyConfig(), seed: 7) : AlbertForMaskedLM(tinyConfig("absolute"), seed: 8)
            try model.save(to: dir)
            let written = try ModelDirectory.convertWeights(in: dir, to: .pytorch)
            XCTAssertEqual(written.lastPathComponent, "pytorch_model.bin")
            try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
            XCTAssertEqual(try ModelDirectory.weightsURL(in: dir), written)
            let loaded: AlbertLMModel = causal ? try AlbertForCausalLM.load(from: dir) : try AlbertForMaskedLM.load(from: dir)
            XCTAssertEqual(try logits(loaded, input), try logits(model, input))
            let sentence = try SentenceAlbert.load(from: dir)
            XCTAssertEqual(Set(sentence.namedParameters().map(\.0)), Set(model.albert.namedParameters().map(\.0)))
        }
    }

    func testSafetensorsIsPreferredAndMissingWeightsNameTheDirectory() throws {
        let dir = try temporaryDirectory()
        let a = AlbertForCausalLM(tinyConfig(), seed: 1), b = AlbertForCausalLM(tinyConfig(), seed: 2)
        try b.save(to: dir)
        try ModelDirectory.convertWeights(in: dir, to: .pytorch)
        try a.save(to: dir)   // model.safetensors now holds a, pytorch_model.bin still b
        let input = IntTensor([Int32(4), 5, 6], shape: [1, 3])
        XCTAssertEqual(try logits(try AlbertForCausalLM.load(from: dir), input), try logits(a, input))
        XCTAssertNotEqual(try logits(b, input), try logits(a, input))

        let empty = try temporaryDirectory()
        try FileManager.default.copyItem(at: dir.appendingPathComponent("config.json"), to: empty.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try AlbertForCausalLM.load(from: empty)) { e in
            XCTAssertEqual("\(e)", "\(empty.path): holds no model.safetensors or pytorch_model.bin")
        }
    }

    func testConvertRoundTripKeepsEveryTensor() throws {
        let dir = try temporaryDirectory()
        let model = AlbertForMaskedLM(tinyConfig(), seed: 9)
        try model.save(to: dir)
        let original = try ModelDirectory.readWeights(dir)
        try ModelDirectory.convertWeights(in: dir, to: .pytorch)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        try ModelDirectory.convertWeights(in: dir, to: .safetensors)
        let back = try SafetensorsFile.read(dir.appendingPathComponent("model.safetensors")).floatTensors
        XCTAssertEqual(Set(back.keys), Set(original.keys))
        for (name, t) in original { XCTAssertEqual(back[name]?.scalars, t.scalars, name) }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)),
                       ["config.json", "model.safetensors", "pytorch_model.bin"], "no temporary file left")

        XCTAssertThrowsError(try ModelDirectory.convertWeights(in: try temporaryDirectory(), to: .pytorch)) { e in
            XCTAssertTrue("\(e)".contains("holds no config.json"), "\(e)")
        }
        let only = try temporaryDirectory()
        try model.save(to: only)
        XCTAssertThrowsError(try ModelDirectory.convertWeights(in: only, to: .safetensors)) { e in
            XCTAssertEqual("\(e)", "\(only.path): holds no pytorch_model.bin to convert to model.safetensors")
        }
    }
}
