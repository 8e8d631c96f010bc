import Foundation
import XCTest
@testable import AlbertMoE

final class ConfigTests: XCTestCase {
    func testDefaultsAndReferenceKeys() throws {
        let empty = try AlbertMoEConfig.decode(Data("{}".utf8))
        XCTAssertEqual(empty, AlbertMoEConfig())
        XCTAssertEqual(empty.vocabSize, 30000)
        XCTAssertEqual(empty.expertCapacity, 64)
        XCTAssertTrue(empty.dropless)
        let json = """
        {"vocab_size": 101, "embedding_size": 16, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
         "intermediate_size": 48, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
         "max_position_embeddings": 64, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
         "position_embedding_type": "absolute", "num_experts": 4, "top_k_experts": 1, "aux_loss_coefficient": 0.01,
         "rope_base": 10000, "architectures": ["AlbertForMaskedLM"], "model_type": "albert_moe"}
        """
        let c = try AlbertMoEConfig.decode(Data(json.utf8))
        XCTAssertEqual(c.vocabSize, 101)
        XCTAssertEqual(c.positionEmbeddingType, "absolute")
        XCTAssertEqual(c.topKExperts, 1)
        XCTAssertEqual(c.headDim, 8)
    }

    func testRoundTripWithArchitecture() throws {
        var c = AlbertMoEConfig(vocabSize: 77, hiddenSize: 64, numAttentionHeads: 4, numExperts: 3, topKExperts: 3)
        c.capacityFactor = 1.25
        c.hiddenDropoutProb = 0.1
        let data = try c.jsonData(architecture: "AlbertForCausalLM")
        let object = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        XCTAssertEqual(object["model_type"] as? String, "albert_moe")
        XCTAssertEqual(object["architectures"] as? [String], ["AlbertForCausalLM"])
        XCTAssertEqual(object["vocab_size"] as? Int, 77)
        XCTAssertEqual((object["hidden_dropout_prob"] as? NSNumber)?.doubleValue ?? 0, 0.1, accuracy: 1e-9)
        XCTAssertEqual(try AlbertMoEConfig.decode(data), c)
    }

    func testInvalidCombinationsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"hidden_size": 30, "num_attention_heads": 4}"#, "num_attention_heads"),
            (#"{"hidden_size": 36, "num_attention_heads": 12}"#, "num_attention_heads"),   // hd 3 is odd with rope
            (#"{"top_k_experts": 9, "num_experts": 8}"#, "top_k_experts"),
            (#"{"top_k_experts": 0}"#, "top_k_experts"),
            (#"{"vocab_size": 0}"#, "vocab_size"),
            (#"{"intermediate_size": -1}"#, "intermediate_size"),
            (#"{"position_embedding_type": "alibi"}"#, "position_embedding_type"),
            (#"{"hidden_dropout_prob": 1.5}"#, "hidden_dropout_prob"),
            (#"{"vocab_size": "big"}"#, "vocab_size"),
            (#"{"num_experts": null}"#, "num_experts"),
        ]
        for (json, field) in cases {
            XCTAssertThrowsError(try AlbertMoEConfig.decode(Data(json.utf8)), json) { e in
                XCTAssertEqual((e as? AlbertMoEError)?.field, field, "\(json): \(e)")
                XCTAssertTrue("\(e)".contains(field), "\(e)")
            }
        }
        // An odd head size is fine with absolute positions.
        XCTAssertNoThrow(try AlbertMoEConfig.decode(Data(#"{"hidden_size": 36, "num_attention_heads": 12, "position_embedding_type": "absolute"}"#.utf8)))
        XCTAssertThrowsError(try AlbertMoEConfig.decode(Data("{not json".utf8))) { e in
            XCTAssertTrue("\(e)".contains("not valid JSON"), "\(e)")
        }
    }
}
