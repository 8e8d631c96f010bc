import AlbertMoE
import Foundation
import XCTest

/// `albertmoe convert` run as a user would.
final class ConvertCommandTests: XCTestCase {
    func albertmoe(_ args: [String]) throws -> CommandResult {
        try runCommand("albertmoe", args, environment: ProcessInfo.processInfo.environment)
    }

    func testConvertWritesTheOtherFormatAndBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-convert-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let config = AlbertMoEConfig(vocabSize: 50, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                     intermediateSize: 24, maxPositionEmbeddings: 16, numExperts: 2)
        let model = AlbertForCausalLM(config, seed: 4)
        try model.save(to: dir)
        let safetensors = dir.appendingPathComponent("model.safetensors"), pytorch = dir.appendingPathComponent("pytorch_model.bin")

        let toPyTorch = try albertmoe(["convert", "--model", dir.path, "--to", "pytorch"])
        XCTAssertEqual(toPyTorch.status, 0, toPyTorch.stderr)
        XCTAssertEqual(toPyTorch.stdout, "wrote \(pytorch.path)\n")
        let original = try ModelDirectory.readWeights(dir)
        XCTAssertEqual(try PyTorchFile.read(pytorch).mapValues(\.scalars), original.mapValues(\.scalars))

        try FileManager.default.removeItem(at: safetensors)
        let back = try albertmoe(["convert", "--model", dir.path, "--to", "safetensors"])
        XCTAssertEqual(back.status, 0, back.stderr)
        XCTAssertEqual(try SafetensorsFile.read(safetensors).floatTensors.mapValues(\.scalars), original.mapValues(\.scalars))

        let wrongFormat = try albertmoe(["convert", "--model", dir.path, "--to", "onnx"])
        XCTAssertNotEqual(wrongFormat.status, 0)
        XCTAssertTrue(wrongFormat.stderr.contains("--to") && wrongFormat.stderr.contains("onnx"), wrongFormat.stderr)
        let missing = try albertmoe(["convert", "--model", dir.appendingPathComponent("nowhere").path, "--to", "pytorch"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("--model") && missing.stderr.contains("holds no config.json"), missing.stderr)
    }
}
