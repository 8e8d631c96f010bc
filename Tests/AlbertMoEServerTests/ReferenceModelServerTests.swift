import AlbertMoE
import AlbertMoEServer
import Foundation
import XCTest

/// `albertmoe serve` on model directories the reference Python package wrote (no config.json): the sizes come from
/// the weights and `ServerConfiguration.loadOptions`.
final class ReferenceModelServerTests: XCTestCase {
    static let referenceModels = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("AlbertMoETests/Fixtures/reference_models")

    struct Expected: Decodable {
        struct Embeddings: Decodable { let texts: [String]; let vectors: [[Float]] }
        struct Mask: Decodable { let position: Int; let ids: [Int] }
        struct Fill: Decodable { let text: String; let masks: [Mask] }
        struct Continuation: Decodable { let prompt: String; let prompt_ids: [Int]; let generated: [Int]; let text: String }
        struct Greedy: Decodable { let gen_max_length: Int; let continuations: [Continuation] }
        let embeddings: Embeddings
        let fill_mask: [Fill]
        let greedy: Greedy
    }

    func testServesTheReferencesMaskedModelAsItAnswers() throws {
        let e = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.referenceModels.appendingPathComponent("expected.json")))
        let options = ModelLoadOptions(sizes: ModelSizes(numHiddenLayers: 2))
        let server = try InferenceServer(modelDirectory: Self.referenceModels.appendingPathComponent("mlm"),
                                         configuration: ServerConfiguration(port: 0, loadOptions: options))
        XCTAssertEqual(server.modelKind, .masked)
        XCTAssertTrue(server.notices.contains { $0.contains("torchtune") }, "\(server.notices)")
        let port = try blocking { try await server.start() }
        defer { try? blocking { await server.stop() } }

        let request = String(decoding: try JSONSerialization.data(withJSONObject: ["input": e.embeddings.texts]), as: UTF8.self)
        let list = try RawHTTPClient.post(port: port, "/v1/embeddings", request)
        XCTAssertEqual(list.status, 200, list.text)
        let data = try XCTUnwrap(try list.json()["data"] as? [[String: Any]])
        let vectors = try data.map { try XCTUnwrap(($0["embedding"] as? [NSNumber])?.map(\.floatValue)) }
        XCTAssertEqual(vectors.count, e.embeddings.vectors.count)
        for (got, want) in zip(vectors, e.embeddings.vectors) {
            XCTAssertLessThan(zip(got, want).map { abs($0 - $1) }.max()!, 1e-4)
        }

        for fill in e.fill_mask {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: ["text": fill.text, "top_k": 5]), as: UTF8.self)
            let answer = try RawHTTPClient.post(port: port, "/v1/fill-mask", json)
            XCTAssertEqual(answer.status, 200, answer.text)
            let predictions = try XCTUnwrap(try answer.json()["predictions"] as? [[String: Any]])
            XCTAssertEqual(predictions.map { $0["position"] as? Int }, fill.masks.map(\.position))
            for (p, mask) in zip(predictions, fill.masks) {
                let ids = (p["candidates"] as? [[String: Any]])?.map { $0["token_id"] as? Int }
                XCTAssertEqual(ids, mask.ids, fill.text)
            }
        }
    }

    /// The reference's causal model, run without its causal mask, completes prompts over HTTP with its greedy tokens.
    func testServesTheReferencesCausalModelBidirectionally() throws {
        let e = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.referenceModels.appendingPathComponent("expected.json")))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reference-clm-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.referenceModels.appendingPathComponent("mlm"), to: dir)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("pytorch_model.bin"))
        try FileManager.default.copyItem(at: Self.referenceModels.appendingPathComponent("clm/pytorch_model.bin"),
                                         to: dir.appendingPathComponent("pytorch_model.bin"))
        let options = ModelLoadOptions(sizes: ModelSizes(numHiddenLayers: 2), bidirectional: true)
        let server = try InferenceServer(modelDirectory: dir, configuration: ServerConfiguration(port: 0, loadOptions: options))
        XCTAssertEqual(server.modelKind, .causal)
        let port = try blocking { try await server.start() }
        defer { try? blocking { await server.stop() } }
        for c in e.greedy.continuations {
            let request: [String: Any] = ["prompt": c.prompt, "temperature": 0, "max_tokens": e.greedy.gen_max_length - c.prompt_ids.count]
            let answer = try RawHTTPClient.post(port: port, "/v1/completions",
                                                String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self))
            XCTAssertEqual(answer.status, 200, answer.text)
            let choice = try XCTUnwrap((try answer.json()["choices"] as? [[String: Any]])?.first)
            let usage = try XCTUnwrap(try answer.json()["usage"] as? [String: Int])
            XCTAssertEqual(usage["prompt_tokens"], c.prompt_ids.count, c.prompt)
            XCTAssertEqual(usage["completion_tokens"].map { $0 - (choice["finish_reason"] as? String == "stop" ? 1 : 0) },
                           c.generated.count, c.prompt)
            let text = try XCTUnwrap(choice["text"] as? String).trimmingCharacters(in: .whitespaces)
            XCTAssertFalse(text.isEmpty)
            XCTAssertTrue(c.text.hasSuffix(text), "\(text.debugDescription) does not end \(c.text.debugDescription)")
        }
    }

    func testRefusesSizesTheWeightsContradict() {
        let options = ModelLoadOptions(sizes: ModelSizes(hiddenSize: 768))
        XCTAssertThrowsError(try InferenceServer(modelDirectory: Self.referenceModels.appendingPathComponent("mlm"),
                                                 configuration: ServerConfiguration(port: 0, loadOptions: options))) {
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "hidden_size")
        }
    }
}
