import Foundation
import XCTest
@testable import AlbertMoE

/// Parity with the PyTorch reference on the fixtures of make_fixtures.py: forward outputs, every gradient,
/// and the parameters after 3 ChillAdam steps, each within 1e-4 x max(1, max |expected|).
final class ParityTests: XCTestCase {
    static let cases = ["mlm_absolute", "mlm_rope", "clm_rope_causal", "clm_absolute_causal_top1",
                        "mlm_rope_topall_wd", "sentence_rope"]

    func fixture(_ name: String) throws -> SafetensorsFile {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return try SafetensorsFile.read(dir.appendingPathComponent("\(name).safetensors"))
    }

    func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, "\(what): shape", file: file, line: line)
        guard actual.shape == expected.shape else { return }
        var maxExpected: Float = 0, maxDiff: Float = 0
        for i in 0..<expected.count {
            maxExpected = max(maxExpected, abs(expected.pointer[i]))
            maxDiff = max(maxDiff, abs(actual.pointer[i] - expected.pointer[i]))
        }
        XCTAssertLessThanOrEqual(maxDiff, 1e-4 * max(1, maxExpected), "\(what): max abs difference \(maxDiff)", file: file, line: line)
    }

    func testEveryFixture() throws {
        for name in Self.cases {
            try checkCase(name)
        }
    }

    func checkCase(_ name: String) throws {
        let f = try fixture(name)
        let config = try AlbertMoEConfig.decode(Data(try XCTUnwrap(f.metadata["config"]).utf8))
        let kind = try XCTUnwrap(f.metadata["model"])
        let weightDecay = Float(f.metadata["weight_decay"] ?? "0") ?? 0
        var params: [String: Tensor] = [:]
        for (key, value) in f.floatTensors where key.hasPrefix("param.") { params[String(key.dropFirst("param.".count))] = value }
        let ids = try f.int("input.input_ids"), mask = try f.int("input.attention_mask"), labels = try f.int("input.labels")

        let model: Module
        let run: () throws -> (loss: Tensor, outputs: [String: Tensor])
        switch kind {
        case "ALBERT":
            let encoder = ALBERT(config)
            model = encoder
            run = {
                let enc = try encoder(ids, attentionMask: mask)
                let emb = SentenceAlbert.meanPool(enc.hiddenStates, attentionMask: mask)
                let h = Float(emb.shape[1])
                let loss = (emb * emb * Tensor.arange(1, h + 1)).sum() + enc.auxLoss
                return (loss, ["hidden_states": enc.hiddenStates, "aux_loss": enc.auxLoss, "sentence_embedding": emb, "loss": loss])
            }
        case "AlbertForCausalLM", "AlbertForMaskedLM":
            let lm: AlbertLMModel = kind == "AlbertForCausalLM" ? AlbertForCausalLM(config) : AlbertForMaskedLM(config)
            XCTAssertEqual(lm.albert.causal, f.metadata["causal"] == "true")
            model = lm
            run = {
                let o = try lm(ids, attentionMask: mask, labels: labels)
                return (o.loss, ["logits": o.logits, "hidden_states": o.hiddenStates, "aux_loss": o.auxLoss,
                                 "loss": o.loss, "ce_loss": o.ceLoss])
            }
        default:
            XCTFail("\(name): unknown model \(kind)")
            return
        }
        try model.loadStateDict(params)
        model.train()
        let optimizer = ChillAdam(model.parameters(), weightDecay: weightDecay)
        let steps = Int(f.metadata["steps"] ?? "3") ?? 3
        for step in 0..<steps {
            optimizer.zeroGrad()
            let (loss, outputs) = try run()
            loss.backward()
            if step == 0 {
                for (key, value) in outputs {
                    assertClose(value, try f.float("output.\(key)"), "\(name) output.\(key)")
                }
                for (pname, p) in model.namedParameters() {
                    let expected = try f.float("grad.\(pname)")
                    assertClose(p.grad ?? Tensor.zeros(p.shape), expected, "\(name) grad.\(pname)")
                }
            }
            optimizer.step()
        }
        for (pname, p) in model.namedParameters() {
            assertClose(p, try f.float("step\(steps).\(pname)"), "\(name) step\(steps).\(pname)")
        }
    }
}
